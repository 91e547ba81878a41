"""Settings of the example project: three small apps on SQLite, managed by tablemigrate."""

import os
from pathlib import Path

from tablemigrate.coexist import DjangoMigrationsDisabled

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "example-only-not-secret"
DEBUG = True
ALLOWED_HOSTS: list[str] = []
INSTALLED_APPS = [
    "tablemigrate",
    "example_project.users",
    "example_project.posts",
    "example_project.chats",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        # The demo and the end-to-end tests point this elsewhere to work on a copy.
        "NAME": os.environ.get("EXAMPLE_DB", str(BASE_DIR / "db.sqlite3")),
        # In memory by default; a file (e.g. for pytest --reuse-db) when EXAMPLE_TEST_DB is set.
        "TEST": {"NAME": os.environ.get("EXAMPLE_TEST_DB")},
    }
}
# tablemigrate owns every table: Django's `migrate` leaves them alone, and tests build the test
# database straight from the models...
MIGRATION_MODULES = DjangoMigrationsDisabled()
# ...or, with this on, by running the tablemigrate history (integration tests).
TABLEMIGRATE_TEST_MIGRATIONS = os.environ.get("EXAMPLE_TEST_MIGRATIONS") == "1"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
TABLEMIGRATE_BUSY_TIMEOUT = float(os.environ.get("EXAMPLE_BUSY_TIMEOUT", "30"))
TABLEMIGRATE_MIGRATIONS_DIR = os.environ.get("EXAMPLE_MIGRATIONS_DIR", str(BASE_DIR / "tablemigrations"))
