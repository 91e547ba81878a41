"""System checks (`manage.py check`, `runserver`): cheap by design. They read the migrations directory,
the `schema.sql` header and the history table (read-only); they never build a temporary database.

tablemigrate.W001  migrations are pending on the default database
tablemigrate.W002  the models changed since the last `generate` (no migration for the change yet)
tablemigrate.W003  an app still has Django migrations, so `migrate` would fight tablemigrate for its tables
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.utils.module_loading import module_has_submodule

from . import conf
from .errors import TablemigrateError
from .sqltext import readonly_uri


def _applied(db_path: str) -> set[str] | None:
    """Names in the history table, read-only; None when the database file does not exist yet."""
    from .introspect import HISTORY_TABLE  # here, not at import: every Django process imports this module

    if not Path(db_path).is_file():
        return None
    try:
        conn = sqlite3.connect(readonly_uri(db_path), uri=True)
        try:
            return {r[0] for r in conn.execute(f'SELECT name FROM "{HISTORY_TABLE}"')}
        finally:
            conn.close()
    except sqlite3.Error:  # no history table yet
        return set()


@checks.register()
def check_pending_and_model_changes(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from .build import managed_models
    from .fingerprint import models_fingerprint
    from .loader import migration_files
    from .writer import read_snapshot_header

    try:
        alias = conf.sqlite_alias("default")
        directory = conf.migrations_dir()
    except TablemigrateError:
        return []
    messages: list[checks.CheckMessage] = []
    files = migration_files(directory)
    name = settings.DATABASES[alias].get("NAME", "")
    applied = _applied(str(name)) if name and name != ":memory:" and not str(name).startswith("file:") else None
    if applied is not None:
        pending = [p.stem for p in files if p.stem not in applied]
        if pending:
            messages.append(checks.Warning(
                f"{len(pending)} tablemigrate migration(s) not applied to {name}, e.g. {pending[0]}",
                hint="Run `python manage.py tablemigrate run`.", id="tablemigrate.W001"))
    recorded = read_snapshot_header(directory).get("models")
    if recorded and recorded != models_fingerprint(managed_models(alias)):
        messages.append(checks.Warning(
            "the models changed since the last `tablemigrate generate`; the change has no migration yet",
            hint="Run `python manage.py tablemigrate generate` (or `generate --check` to see the difference).",
            id="tablemigrate.W002"))
    return messages


@checks.register()
def check_django_migrations(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    modules = getattr(settings, "MIGRATION_MODULES", {})
    fighting = []
    for app in apps.get_app_configs():
        if app.label in modules and modules[app.label] is None:
            continue
        if app.label in modules or (app.models_module is not None and module_has_submodule(app.module, "migrations")):
            if any(m._meta.managed and not m._meta.proxy for m in app.get_models()):
                fighting.append(app.label)
    if not fighting:
        return []
    return [checks.Warning(
        f"apps with Django migrations whose tables tablemigrate also manages: {', '.join(sorted(fighting))}; "
        "`manage.py migrate` would change the same tables",
        hint="In settings: `from tablemigrate.coexist import DjangoMigrationsDisabled` and "
             "`MIGRATION_MODULES = DjangoMigrationsDisabled()` (see the README, 'Django's own migrations').",
        id="tablemigrate.W003")]
