"""A project with a fleet of databases (issue 26): one shared database and one database per tenant.

- `shared` (on `default`): the accounts every tenant belongs to.
- `tenantapp` (on the `tenant` alias, by the router below): each tenant's notes. Every tenant's database is
  a copy of the `tenant` alias's database: TABLEMIGRATE_FLEET names them (a glob, FLEETSITE_GLOB, default
  `tenants/t*.sqlite3`). The alias's own NAME (`tenants/template.sqlite3`) lies in
  the same directory, and it is not a tenant even where the glob matches it.

Two histories: TABLEMIGRATE_MIGRATIONS_DIR names one directory per alias. FLEETSITE_STRICT=1 makes
`Note.body` NOT NULL and adds `Note.pinned` (a table rebuild that rows holding NULL refuse); FLEETSITE_ONLY_DEFAULT=1 names a
history for `default` only; FLEETSITE_BUSY_TIMEOUT sets TABLEMIGRATE_BUSY_TIMEOUT. A post_migrate receiver
(tenantapp/apps.py) fails on a tenant whose file name contains one of FLEETSITE_FAIL_POST_MIGRATE's
comma-separated values, and ends the process there (os._exit) for FLEETSITE_EXIT_POST_MIGRATE's. tests/test_fleet.py drives it.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "fleetsite-test-only-not-secret"
INSTALLED_APPS = ["tablemigrate", "shared", "tenantapp.apps.TenantConfig"]
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(BASE_DIR / "shared.sqlite3")},
    "tenant": {"ENGINE": "django.db.backends.sqlite3",
               "NAME": str(BASE_DIR / "tenants" / "template.sqlite3")},
}
DATABASE_ROUTERS = ["fleetsite.routers.TenantRouter"]
TABLEMIGRATE_APPS = ["shared", "tenantapp"]
TABLEMIGRATE_MIGRATIONS_DIR = {"default": str(BASE_DIR / "migrations_shared"),
                               "tenant": str(BASE_DIR / "migrations_tenant")}
if os.environ.get("FLEETSITE_ONLY_DEFAULT") == "1":
    del TABLEMIGRATE_MIGRATIONS_DIR["tenant"]
TABLEMIGRATE_FLEET = {"tenant": os.environ.get("FLEETSITE_GLOB", "tenants/t*.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
if os.environ.get("FLEETSITE_BUSY_TIMEOUT"):
    TABLEMIGRATE_BUSY_TIMEOUT = float(os.environ["FLEETSITE_BUSY_TIMEOUT"])
