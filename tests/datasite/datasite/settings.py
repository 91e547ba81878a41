"""A project whose own app keeps default rows in data migrations (issue 23, item 4).

`blog` is the project's own app: tablemigrate owns it once the project adopts tablemigrate. Its Django
migrations create its tables (0001), write default rows with the historical models and with SQL, and
create a default auth group (0002, reversible), then add a column and a view made by SQL (0003).
tests/test_datasteps.py copies the project to a temporary directory, builds the database with Django's
`migrate` under `DATASITE_DJANGO_OWNS=1` (the project before it adopted tablemigrate), adopts it with
`tablemigrate baseline`, deletes blog/migrations and builds new databases with `tablemigrate run`.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "datasite-test-only-not-secret"
INSTALLED_APPS = ["tablemigrate", "django.contrib.auth", "django.contrib.contenttypes", "blog"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3",
                         "NAME": os.environ.get("DATASITE_DB", str(BASE_DIR / "db.sqlite3"))}}
if os.environ.get("DATASITE_DJANGO_OWNS") == "1":
    TABLEMIGRATE_APPS: list[str] = []
else:
    TABLEMIGRATE_APPS = ["blog"]
TABLEMIGRATE_MIGRATIONS_DIR = os.environ.get("DATASITE_MIGRATIONS_DIR", str(BASE_DIR / "tablemigrations"))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
