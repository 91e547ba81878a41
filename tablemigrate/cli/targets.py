"""Which database, file and directory a command works on, checked before anything is done.

A missing, empty, corrupt, read-only or non-SQLite database gives one line; a database that needs
`baseline` says so; no database file is created by a command that refuses or has nothing to do."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError

from tablemigrate import conf
from tablemigrate.errors import DatabaseLocked, TablemigrateError, is_busy
from tablemigrate.sqlite.introspect import HISTORY_TABLE
from tablemigrate.sqlite.sqltext import quote, readonly_uri

from .base import CommandState


class Targets(CommandState):
    """Resolving the command's target, mixed into the Command."""

    def _target(self, options: dict[str, Any], directory: Path | None = None,
                first_run: Callable[[Any, list], None] | None = None):
        """The database to work on. A file that does not exist is created only by a `run` that has
        something to apply and whose modules pass validation (`directory`; `first_run`: what checks them
        on the empty stand-in instead), and by `restore`: a command with nothing to do, or one that fails
        first, leaves no empty database file behind."""
        from django.db import connections

        from tablemigrate.history.status import Target

        alias = conf.sqlite_alias(options["database"])
        wrapper = connections[alias]
        name = str(wrapper.settings_dict["NAME"])
        action = options["action"]
        missing = False
        if not wrapper.is_in_memory_db():
            path = Path(name)
            if path.exists() and not path.is_file():
                raise CommandError(f"database path {name} is not a file (a directory?); check "
                                   f"DATABASES[{alias!r}]['NAME']", returncode=2)
            missing = not path.exists()
            if not missing and action not in ("run", "restore") and path.stat().st_size == 0:
                raise CommandError(f"database file {name} is empty (0 bytes): there is no database to "
                                   f"{action} yet (`manage.py tablemigrate run` creates it)", returncode=2)
        if missing and action == "show":  # safe any time: an empty stand-in, nothing created
            if options.get("format") != "json":  # the JSON document is the whole output
                self.stdout.write(f"(database file {name} does not exist yet: every migration is pending)")
            return Target(alias, sqlite3.connect(":memory:", isolation_level=None), None)
        if missing and action == "run":
            stand_in = Target(alias, sqlite3.connect(":memory:", isolation_level=None), None)
            if options.get("dry_run") or options.get("check") or \
                    not self._first_run_needs_file(stand_in, directory, first_run):
                return stand_in
        elif missing and action != "restore":
            raise CommandError(f"database file {name} does not exist (`manage.py tablemigrate run` creates it)",
                               returncode=2)
        try:
            wrapper.ensure_connection()
        except Exception as exc:
            raise CommandError(f"cannot open database {alias!r} ({wrapper.settings_dict['NAME']}): {exc}",
                               returncode=2) from None
        if wrapper.in_atomic_block:
            raise CommandError("tablemigrate cannot run inside a transaction (atomic block)", returncode=2)
        conn = wrapper.connection
        # The busy timeout first: reading the header waits for a writer that holds the file (a rollback
        # journal's pending write), for as long as the project says, and a lock is exit 3, not "unusable".
        conn.execute(f"PRAGMA busy_timeout = {int(conf.busy_timeout() * 1000)}")
        try:
            conn.execute("PRAGMA schema_version").fetchone()  # reads the header: is it SQLite at all?
        except sqlite3.DatabaseError as exc:
            if is_busy(exc):
                raise CommandError(f"{name}: another connection kept the database locked past the busy timeout "
                                   f"({conf.busy_timeout():g}s, {exc}); nothing was changed",
                                   returncode=DatabaseLocked.exit_code) from None
            raise CommandError(f"{name} is not a usable SQLite database ({exc})", returncode=2) from None
        writes = action in ("run", "revert", "restore", "baseline") and not (options.get("dry_run") or options.get("check"))
        if writes and not wrapper.is_in_memory_db() and not (
                os.access(name, os.W_OK) and os.access(os.path.dirname(os.path.abspath(name)), os.W_OK)):
            raise CommandError(f"database file {name} (or its directory, where SQLite keeps its journal) is "
                               "read-only; nothing was changed", returncode=2)
        resolved = None if wrapper.is_in_memory_db() else Path(wrapper.settings_dict["NAME"]).resolve()
        return Target(alias, conn, resolved, conf.backup_dir())

    @staticmethod
    def _first_run_needs_file(stand_in, directory: Path | None, first_run: Callable[[Any, list], None] | None) -> bool:
        """A first `run` (no database file yet): False when there is nothing to apply; otherwise the
        modules are loaded and validated (`first_run`) on an empty in-memory stand-in first, so that a
        malformed or invalid module refuses before the file is created."""
        from tablemigrate.history.status import pending_migrations
        from tablemigrate.project import djangoapps
        from tablemigrate.run.preflight import validate

        assert directory is not None
        _status, pending = pending_migrations(stand_in, directory)
        if pending:
            (first_run or validate)(stand_in, pending)
        with djangoapps.stand_in(stand_in.alias) as empty:  # its refusals too, before the file exists
            django = djangoapps.plan(empty)
        return bool(pending) or bool(django)

    def _existing_migrations_dir(self, options: dict[str, Any]) -> Path:
        """The migrations directory; when it is missing and the database already has tables of the
        owned models (built by Django's `migrate`), the way forward is `baseline`, not `generate`."""
        try:
            return conf.existing_migrations_dir(options["database"])
        except TablemigrateError:
            name = self._needs_baseline(options)
            if name:
                raise CommandError(f"{name} already has tables of your models (made by Django's `migrate`?) and "
                                   f"there is no migrations directory ({conf.migrations_dir(options['database'])}): "
                                   "adopt it with "
                                   "`manage.py tablemigrate baseline`", returncode=2) from None
            raise

    @staticmethod
    def _needs_baseline(options: dict[str, Any]) -> str | None:
        """The database's file name when it has tables of the owned models but no tablemigrate history
        (read-only; None otherwise)."""
        from django.conf import settings

        from tablemigrate.project.build import managed_models  # tests patch build.managed_models
        from tablemigrate.project.fingerprint import model_tables

        alias = conf.sqlite_alias(options["database"])
        name = str(settings.DATABASES[alias].get("NAME", ""))
        if not name or not Path(name).is_file():
            return None
        try:
            conn = sqlite3.connect(readonly_uri(name), uri=True)
            try:
                live = {r[0].lower() for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            finally:
                conn.close()
        except sqlite3.Error:
            return None
        return name if HISTORY_TABLE not in live and live & model_tables(managed_models(alias)) else None

    def _file_target(self, options: dict[str, Any]):
        target = self._target(options)
        if target.path is None:
            raise CommandError("an in-memory database has no snapshots or backups", returncode=2)
        return target

    def _paths(self, options: dict[str, Any]) -> tuple[Path, Path]:
        """The database file and its backups directory, without opening the database."""
        from django.db import connections

        wrapper = connections[conf.sqlite_alias(options["database"])]
        if wrapper.is_in_memory_db():
            raise CommandError("an in-memory database has no snapshots or backups", returncode=2)
        db_path = Path(str(wrapper.settings_dict["NAME"])).resolve()
        return db_path, conf.backup_dir() or db_path.parent / "backups"

    @staticmethod
    def _quick_check(target, table: str | None = None) -> None:
        """`PRAGMA quick_check` (of one table and its indexes when given): exit 2 when it finds damage."""
        sql = f"PRAGMA quick_check({quote(table)})" if table else "PRAGMA quick_check"
        problem = target.conn.execute(sql).fetchone()[0]
        if problem != "ok":
            raise CommandError(f"database {target.path or ':memory:'} is corrupt (quick_check: {problem}); restore "
                               "a backup (`manage.py tablemigrate snapshots` lists them)", returncode=2)
