"""System checks (`manage.py check`, `runserver`): cheap by design.

They read the migrations directory, the `schema.sql` header and the history table (read-only); they
never build a temporary database.

tablemigrate.W001  migrations are pending on the database of an alias (each SQLite alias)
tablemigrate.W002  the models changed since the last `generate` (no migration for the change yet)
tablemigrate.W003  an app tablemigrate owns still has Django migrations
tablemigrate.W004  Django migrations of apps tablemigrate does not own are not applied to the default database
tablemigrate.W005  two migration modules change one table from the same starting point (merged branches)
tablemigrate.W006  a module applied to the default database was edited since (`run` refuses it)
tablemigrate.E001  TABLEMIGRATE_APPS is invalid

W005 imports the migration modules, but only when the `schema.sql` header does not record exactly the
modules on disk (after a merge, a pull, or a module written by hand): `generate` has verified the
history the header records.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core import checks

from tablemigrate.project.ownership import migration_names, owned_with_django_migrations, ownership
from tablemigrate.sqlite.sqltext import readonly_uri

from . import conf
from .errors import MigrationFileError, TablemigrateError
from .testing import is_test_database


def _applied(db_path: str) -> dict[str, str] | None:
    """Names in the history table with their checksums, read-only; None when the database file does
    not exist yet."""
    from tablemigrate.sqlite.introspect import (
        HISTORY_TABLE,  # here, not at import: every Django process imports this module
    )

    if not Path(db_path).is_file():
        return None
    try:
        conn = sqlite3.connect(readonly_uri(db_path), uri=True)
        try:
            return dict(conn.execute(f'SELECT name, checksum FROM "{HISTORY_TABLE}"').fetchall())
        finally:
            conn.close()
    except sqlite3.Error:  # no history table yet
        return {}


def _histories() -> list[tuple[str, Path]]:
    """(alias, migrations directory) of every SQLite alias that has a tablemigrate history, in DATABASES'
    order (an alias TABLEMIGRATE_MIGRATIONS_DIR's dict leaves out has none)."""
    found = []
    for alias in settings.DATABASES:
        try:
            found.append((conf.sqlite_alias(alias), conf.migrations_dir(alias)))
        except TablemigrateError:
            continue
    return found


@checks.register()
def check_pending_and_model_changes(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:  # noqa: ARG001 (Django passes app_configs by name)
    """W001 and W006 on the database of every SQLite alias (a TABLEMIGRATE_FLEET alias's files are many:
    `show --all-databases` covers them), W002 once per migrations directory."""
    from tablemigrate.history.loader import migration_files
    from tablemigrate.history.schemafile import read_header
    from tablemigrate.project.build import managed_models
    from tablemigrate.project.fingerprint import models_fingerprint

    messages: list[checks.CheckMessage] = []
    fleet = getattr(settings, "TABLEMIGRATE_FLEET", None) or {}
    compared: set[Path] = set()
    for alias, directory in _histories():
        files = migration_files(directory)
        name = settings.DATABASES[alias].get("NAME", "")
        testing = is_test_database(alias)  # the test runner's checks: the hint would point at the real database
        applied = (_applied(str(name)) if name and name != ":memory:" and not str(name).startswith("file:")
                   and not testing and alias not in fleet else None)
        if applied is not None:
            pending = [p.stem for p in files if p.stem not in applied]
            which = "" if alias == "default" else f" --database {alias}"
            if pending:
                messages.append(checks.Warning(
                    f"{len(pending)} tablemigrate migration(s) not applied to {name}"
                    f"{'' if alias == 'default' else f' (database {alias!r})'}, e.g. {pending[0]}",
                    hint=f"Run `python manage.py tablemigrate run{which}` (every database: `run --all-databases`).",
                    id="tablemigrate.W001"))
            messages += _edited(files, applied, str(name))
        if directory in compared:  # one history for several aliases: its models are the first alias's
            continue
        compared.add(directory)
        recorded = read_header(directory).get("models")
        if recorded and recorded != models_fingerprint(managed_models(alias)):
            which = "" if alias == "default" else f" --database {alias}"
            messages.append(checks.Warning(
                f"the models changed since the last `tablemigrate generate{which}`; the change has no migration yet",
                hint=f"Run `python manage.py tablemigrate generate{which}` (or `generate{which} --check` to see the "
                     "difference).",
                id="tablemigrate.W002"))
    return messages


@checks.register()
def check_django_migrations(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:  # noqa: ARG001 (Django passes app_configs by name)
    try:
        own = ownership()
    except TablemigrateError as exc:
        return [checks.Error(str(exc), id="tablemigrate.E001")]
    messages: list[checks.CheckMessage] = []
    fighting = owned_with_django_migrations(own)
    if fighting:
        messages.append(checks.Warning(
            f"apps tablemigrate owns still have Django migrations: {', '.join(fighting)}; `manage.py migrate` "
            "refuses to apply them and `tablemigrate run` refuses while any is pending",
            hint="For your own apps: after `tablemigrate baseline`, delete their migrations folders. To keep an "
                 "app on its Django migrations instead, set TABLEMIGRATE_APPS to the apps tablemigrate should "
                 "own, leaving that app out (README, 'Which apps tablemigrate owns').",
            id="tablemigrate.W003"))
    unapplied = _unapplied_django(own)
    if unapplied:
        messages.append(checks.Warning(
            f"Django migrations of apps tablemigrate does not own are not applied to the default database: "
            f"{', '.join(unapplied[:3])}{' ...' if len(unapplied) > 3 else ''}",
            hint="Run `python manage.py tablemigrate run` (it applies them, then tablemigrate's own modules).",
            id="tablemigrate.W004"))
    return messages


def _unapplied_django(own: Any) -> list[str]:
    """Migration files of non-owned apps that the default database's `django_migrations` does not
    record (read-only; no migration module is imported). A squashed migration whose replaced ones are
    all recorded is reported until a `run` records it too, as Django's `migrate` does."""
    from tablemigrate.project.djangoapps import recorded

    name = str(settings.DATABASES.get("default", {}).get("NAME", ""))
    if not own.django or not name or name == ":memory:" or name.startswith("file:") or not Path(name).is_file():
        return []
    try:
        conn = sqlite3.connect(readonly_uri(name), uri=True)
        try:
            done = recorded(conn)
        finally:
            conn.close()
    except sqlite3.Error:
        return []
    return sorted(f"{app}.{n}" for app in own.django for n in migration_names(app) if (app, n) not in done)


@checks.register()
def check_branch_conflicts(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:  # noqa: ARG001 (Django passes app_configs by name)
    """Modules that change one table from the same starting point: each records the shape of its table
    before and after it (shapes.py). Walking them in name order, a module that does not start from the
    shape the previous module on its table left, but from the one an earlier module started from, was
    generated without knowing that module: a merge of two branches. `run` would refuse it."""
    messages: list[checks.CheckMessage] = []
    for directory in dict.fromkeys(directory for _alias, directory in _histories()):
        messages += _branch_conflicts(directory)
    return messages


def _branch_conflicts(directory: Path) -> list[checks.CheckMessage]:
    """W005 in one migrations directory."""
    from tablemigrate.history.loader import history_checksum, load_migrations, recorded_files
    from tablemigrate.history.schemafile import read_header

    recorded = recorded_files(directory)
    if not recorded or read_header(directory).get("history") == history_checksum(recorded):
        return []
    try:
        modules = load_migrations(directory)
    except MigrationFileError:
        return []  # `show`/`run` say what is wrong with the file
    current: dict[str, str] = {}  # table -> the fingerprint the last module on it left
    started: dict[tuple[str, str], str] = {}  # (table, fingerprint a module started from) -> that module
    messages: list[checks.CheckMessage] = []
    for m in modules:
        if not (m.before and m.after):
            continue
        table, start = m.before["table"].lower(), m.before["fingerprint"]
        earlier = started.get((table, start))
        if earlier is not None and current.get(table) != start:
            messages.append(checks.Warning(
                f"tablemigrate migrations {earlier} and {m.name} both change {m.before['table']} from the same "
                f"starting point (branches merged?): `run` refuses {m.name} where {earlier} is applied",
                hint=f"If {m.name} is not applied anywhere, delete it and run `python manage.py tablemigrate "
                     "generate`.", id="tablemigrate.W005"))
        started.setdefault((table, start), m.name)
        current.pop(table, None)
        current[m.after["table"].lower()] = m.after["fingerprint"]
    return messages


def _edited(files: list[Path], applied: dict[str, str], database: str) -> list[checks.CheckMessage]:
    """W006: applied modules whose file changed since, unless the module accepts the edit (it is
    imported only then). `run` refuses them; `generate` cannot see it (it reads no database)."""
    from tablemigrate.history.loader import checksum
    from tablemigrate.history.status import accepts

    out: list[checks.CheckMessage] = []
    for path in files:
        recorded = applied.get(path.stem)
        if recorded is None:
            continue
        source = path.read_bytes()
        if checksum(source) != recorded and not accepts(path, source, recorded):
            out.append(checks.Warning(
                f"tablemigrate migration {path.stem} was edited after it was applied to {database}; "
                "`tablemigrate run` refuses it",
                hint="Restore the applied version, or accept the edit in the module: `tablemigrate show` prints "
                     "the two lines (docs/modules.md).", id="tablemigrate.W006"))
    return out
