"""Settings of the example project: three small apps on SQLite, managed by tablemigrate."""

import os
from pathlib import Path

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
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
TABLEMIGRATE_MIGRATIONS_DIR = os.environ.get("EXAMPLE_MIGRATIONS_DIR", str(BASE_DIR / "tablemigrations"))
