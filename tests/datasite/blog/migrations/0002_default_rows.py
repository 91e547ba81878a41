import os

from django.db import migrations

DEFAULTS = ["General", "News"]


def create_defaults(apps, schema_editor):
    if os.environ.get("DATASITE_FAIL_STEP") == "1":
        raise RuntimeError("the default rows cannot be written")
    Category = apps.get_model("blog", "Category")
    for name in DEFAULTS:
        Category.objects.create(name=name)
    Group = apps.get_model("auth", "Group")
    Group.objects.create(name="Editors")


def remove_defaults(apps, schema_editor):
    apps.get_model("blog", "Category").objects.filter(name__in=DEFAULTS).delete()
    apps.get_model("auth", "Group").objects.filter(name="Editors").delete()


class Migration(migrations.Migration):
    dependencies = [("blog", "0001_initial"), ("auth", "0001_initial")]

    operations = [
        migrations.RunPython(create_defaults, remove_defaults),
        migrations.RunSQL("INSERT INTO blog_setting (key, value) VALUES ('site_name', 'My blog')",
                          "DELETE FROM blog_setting WHERE key = 'site_name'"),
    ]
