"""The tenant app: every user's notes live in that user's own database (DJ_LITE_TENANT["APPS"])."""

from django.conf import settings
from django.db import models


class Note(models.Model):
    # The user lives in the default database: SQLite cannot enforce a key across databases.
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, db_constraint=False)
    text = models.TextField()
