"""Settings of the example project: three small apps of its own on SQLite, whose tables tablemigrate owns,
beside Django's auth and contenttypes, whose own Django migrations `tablemigrate run` applies."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "example-only-not-secret"
DEBUG = True
ALLOWED_HOSTS: list[str] = []
INSTALLED_APPS = [
    "django.contrib.contenttypes",  # installed packages: their Django migrations own their tables
    "django.contrib.auth",
    "tablemigrate",                 # the only setting tablemigrate needs
    # The project's own apps (their code is under BASE_DIR): tablemigrate owns their tables.
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
# Tests build the owned tables straight from the models (and auth's from its migrations), or, with
# this on, by running the tablemigrate history (integration tests).
TABLEMIGRATE_TEST_MIGRATIONS = os.environ.get("EXAMPLE_TEST_MIGRATIONS") == "1"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
TABLEMIGRATE_BUSY_TIMEOUT = float(os.environ.get("EXAMPLE_BUSY_TIMEOUT", "30"))
TABLEMIGRATE_MIGRATIONS_DIR = os.environ.get("EXAMPLE_MIGRATIONS_DIR", str(BASE_DIR / "tablemigrations"))
# Database files migrated as copies of the default database (one per tenant, say): a glob, or unset.
TABLEMIGRATE_FLEET = {"default": os.environ["EXAMPLE_FLEET"]} if os.environ.get("EXAMPLE_FLEET") else {}
