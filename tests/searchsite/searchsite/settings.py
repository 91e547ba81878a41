"""A project whose own app made objects by SQL in its Django migrations (issue 22, item 9).

`notes` is the project's own app, so tablemigrate owns it once the project adopts tablemigrate. Its
Django migration made, as Wagtail's search backend does for its index, an FTS5 virtual table that a
model stands for (`SeparateDatabaseAndState` + `RunSQL`), the triggers that fill it, and a view that a
managed model stands for. tests/test_sql_made_objects.py copies the project to a temporary directory,
builds the database with Django's `migrate` under `SEARCHSITE_DJANGO_OWNS=1` (the project before it
adopted tablemigrate: the app's Django migrations own it), then adopts it with `tablemigrate baseline`.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "searchsite-test-only-not-secret"
INSTALLED_APPS = ["tablemigrate", "notes"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                         "NAME": os.environ.get("SEARCHSITE_DB", str(BASE_DIR / "db.sqlite3"))}}
if os.environ.get("SEARCHSITE_DJANGO_OWNS") == "1":
    TABLEMIGRATE_APPS: list[str] = []
TABLEMIGRATE_MIGRATIONS_DIR = os.environ.get("SEARCHSITE_MIGRATIONS_DIR", str(BASE_DIR / "tablemigrations"))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
