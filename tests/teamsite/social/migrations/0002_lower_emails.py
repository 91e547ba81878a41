"""As django-allauth's account.0006_emailaddress_lower: a data step on the user table, which it reaches
through AUTH_USER_MODEL without declaring a dependency on that app."""

from django.conf import settings
from django.db import migrations
from django.db.models.functions import Lower


def forwards(apps, schema_editor):
    alias = schema_editor.connection.alias
    EmailAddress = apps.get_model("social", "EmailAddress")
    User = apps.get_model(settings.AUTH_USER_MODEL)
    EmailAddress.objects.using(alias).exclude(email=Lower("email")).update(email=Lower("email"))
    User.objects.using(alias).exclude(email=Lower("email")).update(email=Lower("email"))


class Migration(migrations.Migration):
    dependencies = [("social", "0001_initial")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
