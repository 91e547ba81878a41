"""Version 2's upgrade: add the column, fill it from the rows (a data step), then make it NOT NULL."""

from django.db import migrations, models
from django.utils.text import slugify


def fill_slugs(apps, schema_editor):
    Category = apps.get_model("vendor", "Category")
    for category in Category.objects.using(schema_editor.connection.alias).all():
        category.slug = slugify(category.name)
        category.save(update_fields=["slug"])


class Migration(migrations.Migration):
    dependencies = [("vendor", "0002_general_category")]
    operations = [
        migrations.AddField("category", "slug", models.SlugField(max_length=100, null=True)),
        migrations.RunPython(fill_slugs, migrations.RunPython.noop),
        migrations.AlterField("category", "slug", models.SlugField(max_length=100)),
    ]
