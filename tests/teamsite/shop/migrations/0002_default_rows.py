"""Default rows the project keeps in a data step: the general category, and an editors' group that may
change items (a permission on the item model, made here as Django's post_migrate would)."""

from django.db import migrations


def forwards(apps, schema_editor):
    alias = schema_editor.connection.alias
    Category = apps.get_model("shop", "Category")
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    ContentType = apps.get_model("contenttypes", "ContentType")
    Category.objects.using(alias).get_or_create(name="General")
    item, _ = ContentType.objects.using(alias).get_or_create(app_label="shop", model="item")
    change, _ = Permission.objects.using(alias).get_or_create(
        content_type=item, codename="change_item", defaults={"name": "Can change item"})
    editors, _ = Group.objects.using(alias).get_or_create(name="Editors")
    editors.permissions.add(change)


def backwards(apps, schema_editor):
    alias = schema_editor.connection.alias
    apps.get_model("auth", "Group").objects.using(alias).filter(name="Editors").delete()
    apps.get_model("shop", "Category").objects.using(alias).filter(name="General").delete()


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length"),
                    ("contenttypes", "0002_remove_content_type_name")]
    operations = [migrations.RunPython(forwards, backwards)]
