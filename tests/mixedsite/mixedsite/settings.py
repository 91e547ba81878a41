"""A small project with both kinds of app (issue 12).

- `vendor` stands for a third-party package: it ships Django migrations, one of them a RunPython data
  step. It lives in the project directory, so `TABLEMIGRATE_APPS` declares ownership explicitly.
- `shop` is the project's own app (no `migrations/` folder): tablemigrate owns its tables. Its models
  point at vendor's and auth's tables and inherit from a vendor model.

tests/test_thirdparty_apps.py copies the project to a temporary directory and points the database, the
test database and the tablemigrate modules at it with the MIXEDSITE_* environment variables.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "mixedsite-test-only-not-secret"
DEBUG = True
ALLOWED_HOSTS: list[str] = []
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "tablemigrate",
    "vendor",
    "shop",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("MIXEDSITE_DB", str(BASE_DIR / "db.sqlite3")),
        # In memory by default; a file (for --keepdb / --reuse-db) when MIXEDSITE_TEST_DB is set.
        "TEST": {"NAME": os.environ.get("MIXEDSITE_TEST_DB")},
    }
}
TABLEMIGRATE_APPS = ["shop"]
TABLEMIGRATE_TEST_MIGRATIONS = os.environ.get("MIXEDSITE_TEST_MIGRATIONS") == "1"
TABLEMIGRATE_MIGRATIONS_DIR = os.environ.get("MIXEDSITE_MIGRATIONS_DIR", str(BASE_DIR / "tablemigrations"))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
