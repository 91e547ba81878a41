"""The same project with a custom user model that tablemigrate owns (issue 23): `DJANGO_SETTINGS_MODULE=
mixedsite.custom_user`.

- `accounts` is the project's own app (no `migrations/` folder): tablemigrate creates `accounts_user`, the
  table of `AUTH_USER_MODEL`.
- `social` stands for django-allauth's `account` app: it ships Django migrations; its 0001 has a foreign
  key to AUTH_USER_MODEL (a swappable dependency) and its 0002, like allauth's 0006, is a data step that
  updates the user table and declares no dependency on it.

tests/test_migrate_command.py runs it.
"""

from mixedsite.settings import *  # noqa: F401,F403

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "tablemigrate",
    "social",
    "accounts",
]
AUTH_USER_MODEL = "accounts.User"
TABLEMIGRATE_APPS = ["accounts"]
