from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "tablemigrate-tests"
INSTALLED_APPS = ["tablemigrate", "tests.sampleapp"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TABLEMIGRATE_MIGRATIONS_DIR = BASE_DIR / "_unused_migrations"
