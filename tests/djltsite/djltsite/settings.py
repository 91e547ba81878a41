"""A project with per-user SQLite databases by dj-lite-tenant, migrated by tablemigrate (issue 26).

dj-lite-tenant's README set-up: users (auth) in `default`, the tenant app `notes` in one database per
user, DJ_LITE_TENANT["DIR"]/tenant_<pk>.sqlite3, each registered at run time as alias `tenant_<pk>`.
tablemigrate's recipe on top (docs: "dj-lite-tenant"):
- a `tenant` alias whose NAME lies inside DIR: dj-lite-tenant's router gives it the tenant apps (it
  decides by the path), so `generate --database tenant` writes the tenant history; its file is not a
  tenant's (it does not match DB_NAME_PATTERN), so `migrate_tenant_dbs` leaves it alone;
- a history per alias: TABLEMIGRATE_MIGRATIONS_DIR = {"default": ..., "tenant": ...};
- the tenant files as the fleet of `tenant`: TABLEMIGRATE_FLEET = {"tenant": <DIR>/tenant_*.sqlite3}.

tests/test_dj_lite_tenant.py copies the project to a temporary directory; DJLTSITE_TEMPLATE=1 turns on
dj-lite-tenant's USE_DATABASE_TEMPLATE.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "djltsite-test-only-not-secret"
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "tablemigrate",
    "dj_lite_tenant",
    "notes",
]
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db" / "data.sqlite3"},
    "tenant": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db" / "tenants" / "schema.sqlite3"},
}
DATABASE_ROUTERS = ["dj_lite_tenant.routers.TenantDatabaseRouter"]
DJ_LITE_TENANT = {
    "DIR": BASE_DIR / "db" / "tenants",
    "APPS": {"notes"},
    # DJLTSITE_TEMPLATE=1: new tenants' databases are copies of the first one's (dj-lite-tenant's template).
    "USE_DATABASE_TEMPLATE": os.environ.get("DJLTSITE_TEMPLATE") == "1",
}
TABLEMIGRATE_MIGRATIONS_DIR = {
    "default": BASE_DIR / "tablemigrations" / "default",
    "tenant": BASE_DIR / "tablemigrations" / "tenant",
}
# DB_NAME_PATTERN ("tenant_{tenant_pk}.sqlite3") with a wildcard for the key, inside DIR.
TABLEMIGRATE_FLEET = {"tenant": DJ_LITE_TENANT["DIR"] / "tenant_*.sqlite3"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
