"""The test database, built from the tablemigrate history when TABLEMIGRATE_TEST_MIGRATIONS is True.

Django's test runner and pytest-django both create the test database with `migrate --run-syncdb`.
This `pre_migrate` receiver runs first and applies the tablemigrate history to the *test* database;
`--run-syncdb` then finds every table already there and creates nothing. With the setting off (the
default) nothing happens here and the tables come straight from the models. A reused test database
(`--keepdb`, `--reuse-db`) already has its history, so nothing is re-applied. The history table is not
a model, so the flushes between transactional tests leave it alone.

On a real database the same receiver is the backstop of `manage.py migrate` (issue 23): Django's migrate
may apply the other apps' Django migrations only when the tables tablemigrate owns are current.
"""

from __future__ import annotations

from contextvars import ContextVar
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections

from tablemigrate.project.ownership import leave_out_hint, migration_names, ownership
from tablemigrate.sqlite.sqltext import quote

from . import conf
from .coexist import DjangoMigrationsDisabled
from .errors import TablemigrateError

#: True while tablemigrate's `migrate` lets Django's run only to record migrations (`--fake`, `--prune`).
records_only: ContextVar[bool] = ContextVar("tablemigrate_records_only", default=False)


def enabled() -> bool:
    return bool(getattr(settings, "TABLEMIGRATE_TEST_MIGRATIONS", False))


def is_test_database(alias: str) -> bool:
    wrapper = connections[alias]
    return wrapper.vendor == "sqlite" and wrapper.settings_dict["NAME"] == wrapper.creation._get_test_db_name()


def refuse_migrate(using: str, plan: list | None = None, test: bool = False) -> None:
    """Refuse a `migrate` that would touch what tablemigrate owns, before anything changed.

    `migrate` may apply the Django migrations of the apps tablemigrate does not own; it refuses (one
    line, before anything changed) when its plan holds a migration of an app tablemigrate owns,
    and, on a real database, when tablemigrate owns every app (`DjangoMigrationsDisabled`): Django would
    create half of it and then fail in a post_migrate receiver; and when it would apply a migration while
    the owned tables are not current (`_owned_tables_behind`): a third-party migration on the owned
    user model would meet a missing table, after the ones before it had been applied."""
    from django.core.management import CommandError

    if connections[using].vendor != "sqlite":
        return
    if not test and isinstance(getattr(settings, "MIGRATION_MODULES", None), DjangoMigrationsDisabled):
        raise CommandError(f"tablemigrate manages the schema of database {using!r}: run "
                           "`manage.py tablemigrate run` instead of `migrate`")
    own = ownership()
    theirs = sorted({f"{m.app_label}.{m.name}" for m, _backwards in plan or [] if own.owns(m.app_label)})
    if theirs:
        app = theirs[0].split(".")[0]
        raise CommandError(f"tablemigrate owns app {app}, but `migrate` would apply its Django migrations "
                           f"({', '.join(theirs)}): delete {app}'s migrations folder, or "
                           f"{leave_out_hint(own, app)}; nothing was changed")
    forward = [f"{m.app_label}.{m.name}" for m, backwards in plan or [] if not backwards]
    if not test and forward and not records_only.get():
        behind = _owned_tables_behind(using, plan)
        if behind:
            raise CommandError(f"`migrate` would apply Django migrations ({_listed(forward)}) while {behind}: "
                               "run `manage.py tablemigrate run`, which applies both in the right order; "
                               "nothing was changed", returncode=2)


def _listed(names: list[str], most: int = 3) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


_behind: list[Any] = [None, None]  # the plan last asked about and the answer: pre_migrate comes once per app


def _owned_tables_behind(using: str, plan: list | None) -> str | None:
    """Why the tables tablemigrate owns on `using` are not current (None when they are, or when no
    owned app there depends on tablemigrate for its tables: an app being adopted, W003, still has the
    Django migrations that made them), read from its history and its migrations directory."""
    from tablemigrate.history.status import status
    from tablemigrate.project.build import managed_models

    if _behind[0] is plan:
        return _behind[1]
    why = None
    if any(not migration_names(m._meta.app_label) for m in managed_models(using)):
        try:
            directory = conf.existing_migrations_dir(using)
        except TablemigrateError:
            why = "tablemigrate has no migrations yet (no migrations directory)"
        else:
            wrapper = connections[using]
            wrapper.ensure_connection()
            pending = [p.stem for p in status(wrapper.connection, directory).pending]
            if pending:
                why = f"tablemigrate's migrations are pending ({_listed(pending)})"
    _behind[:] = [plan, why]
    return why


def apply_history_to_test_database(sender: Any, using: str = "default", **kwargs: Any) -> None:  # noqa: ARG001 (a signal receiver)
    if kwargs.get("tablemigrate_run"):  # `tablemigrate run` applying the Django migrations it does not own
        return
    test = is_test_database(using)
    refuse_migrate(using, kwargs.get("plan"), test)
    if not test:
        return
    if not enabled():
        _rebuild_stale_owned_tables(using)
        return
    from tablemigrate.history.status import Target
    from tablemigrate.run.runner import run

    from .history import applied as history

    wrapper = connections[using]
    wrapper.ensure_connection()
    if not history.exists(wrapper.connection) and wrapper.introspection.table_names():
        from django.core.management import CommandError

        raise CommandError("the reused test database was built from the models, without the tablemigrate "
                           "history; recreate it (pytest --create-db, or `manage.py test` without --keepdb)")
    path = None if wrapper.is_in_memory_db() else Path(wrapper.settings_dict["NAME"]).resolve()
    target = Target(using, wrapper.connection, path)
    # Django's migrate, which sent this signal, applies the Django migrations of the other apps itself.
    run(target, conf.migrations_dir(using), allow_destructive=True, take_backup=False, lock_timeout=conf.busy_timeout(),
        django=False)


_checked: set[tuple[str, str]] = set()


def _rebuild_stale_owned_tables(using: str) -> None:
    """A kept test database (`--keepdb`, `--reuse-db`) built from the models: Django's syncdb, which runs
    next, creates the owned tables that are missing but never alters one, so after a model change the
    tests would run against the old tables. The models' fingerprint is recorded in the test database;
    when it differs, the owned tables are dropped here and syncdb builds them again from the models."""
    import sqlite3

    from tablemigrate.project.build import managed_models
    from tablemigrate.project.fingerprint import model_tables, models_fingerprint
    from tablemigrate.sqlite.introspect import TEST_MODELS_TABLE
    from tablemigrate.sqlite.transaction import write_transaction

    wrapper = connections[using]
    key = (using, str(wrapper.settings_dict["NAME"]))
    if key in _checked:  # pre_migrate comes once per app
        return
    _checked.add(key)
    wrapper.ensure_connection()
    conn = wrapper.connection
    owned_models = managed_models(using)
    current = models_fingerprint(owned_models)
    try:
        stored = conn.execute(f'SELECT fingerprint FROM "{TEST_MODELS_TABLE}"').fetchone()
    except sqlite3.OperationalError:
        stored = None
    if stored is not None and stored[0] == current:
        return
    live = {r[0].lower(): r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    stale = sorted(live[t] for t in model_tables(owned_models) if t in live)
    conn.execute("PRAGMA foreign_keys = OFF")  # other apps' tables may point at them
    try:
        with write_transaction(conn):
            for table in stale:
                conn.execute(f"DROP TABLE {quote(table)}")
            conn.execute(f'CREATE TABLE IF NOT EXISTS "{TEST_MODELS_TABLE}" (fingerprint text NOT NULL)')
            conn.execute(f'DELETE FROM "{TEST_MODELS_TABLE}"')
            conn.execute(f'INSERT INTO "{TEST_MODELS_TABLE}" VALUES (?)', (current,))
    finally:
        conn.execute("PRAGMA foreign_keys = ON")
