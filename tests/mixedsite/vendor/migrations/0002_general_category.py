"""The package's initial data: every site has a "General" category (a data step, as Wagtail's root page)."""

from django.db import migrations


def create_general(apps, schema_editor):
    Category = apps.get_model("vendor", "Category")
    Category.objects.using(schema_editor.connection.alias).get_or_create(name="General")


def delete_general(apps, schema_editor):
    Category = apps.get_model("vendor", "Category")
    Category.objects.using(schema_editor.connection.alias).filter(name="General").delete()


class Migration(migrations.Migration):
    dependencies = [("vendor", "0001_initial")]
    operations = [migrations.RunPython(create_general, delete_general)]
