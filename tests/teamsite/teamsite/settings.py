"""A team's project (issue 23): every database a team has, adopted, created and upgraded the same way.

- `accounts` (the project's own): the custom user model, AUTH_USER_MODEL.
- `shop` (the project's own): items, tags, categories; its Django migrations write default rows (a
  category and an editors' group with a permission on items) in a data step.
- `social` stands for django-allauth's `account`: it keeps its Django migrations; its 0001 has a foreign
  key to AUTH_USER_MODEL and its 0002 is a data step on the user table. It is tests/mixedsite's, imported
  from the repository (outside this project, as an installed package would be).

Before the project adopts tablemigrate (`TEAMSITE_DJANGO_OWNS=1`), Django's migrations own every app;
afterwards tablemigrate owns `accounts` and `shop`. tests/test_team_scenario.py drives it.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "teamsite-test-only-not-secret"
INSTALLED_APPS = ["tablemigrate", "django.contrib.auth", "django.contrib.contenttypes", "tests.mixedsite.social",
                  "accounts", "shop"]
AUTH_USER_MODEL = "accounts.User"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                         "NAME": os.environ.get("TEAMSITE_DB", str(BASE_DIR / "db.sqlite3"))}}
if os.environ.get("TEAMSITE_DJANGO_OWNS") == "1":
    TABLEMIGRATE_APPS: list[str] = []
else:
    TABLEMIGRATE_APPS = ["accounts", "shop"]
TABLEMIGRATE_MIGRATIONS_DIR = str(BASE_DIR / "tablemigrations")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
