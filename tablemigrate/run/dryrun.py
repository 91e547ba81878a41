"""`run --dry-run`: the pending migrations applied to a copy of the real database.

The copy is a temporary file beside the backups (in memory for an in-memory database); each statement
is timed and each table's rows counted before and after; the real database is only read."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tablemigrate.backups import backup as backups
from tablemigrate.history import applied as history
from tablemigrate.history.status import Target, pending_migrations
from tablemigrate.operations import Operation
from tablemigrate.project import djangoapps
from tablemigrate.project.build import raw
from tablemigrate.sqlite.introspect import is_internal
from tablemigrate.sqlite.sqltext import quote

from . import space
from .apply import Applier, HistoryRow, short_sql
from .preflight import preflight, require_confirmation


@dataclass
class Rehearsal:
    migration: str
    seconds: float
    rows_before: dict[str, int]
    rows_after: dict[str, int]
    statements: list[tuple[str, float]] = field(default_factory=list)  # (statement or operation, seconds)


class _Timings:
    """The applier's observer here: each statement (one line) or operation (its repr), and its seconds."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, float]] = []

    def ran(self, conn: sqlite3.Connection, number: int, index: int | None, done: str | Operation,
            seconds: float) -> None:
        self.statements.append((short_sql(done) if isinstance(done, str) else repr(done), seconds))


def _row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {n: conn.execute(f"SELECT count(*) FROM {quote(n)}").fetchone()[0] for n in names if not is_internal(n)}


def dry_run(target: Target, directory: Path, *, allow_destructive: bool = False,
            confirm: Callable[[str], bool] | None = None) -> list[Rehearsal]:
    """Apply the pending migrations (Django's of the apps tablemigrate does not own, then its own) to an
    in-memory copy of the real database and report what happened; the real database is only read.
    While the Django migrations run, the alias's connection *is* the copy (djangoapps.stand_in), so a
    data step that queries through the default manager writes to the copy too.

    What `run` would refuse before touching anything (tablemigrate.run.preflight), this refuses too, with the
    same error: with the same `allow_destructive` and `confirm` (None: `--noinput`), losses that `run`
    would refuse unconfirmed refuse here; `confirm` gets the question `run` would ask."""
    _st, pending = pending_migrations(target, directory)
    django = djangoapps.wrapper_of(target.alias, target.conn) is not None or target.path is None
    if pending:
        reasons = preflight(target, pending, "up", any(m.destructive for m in pending) and _django_first(target),
                            recheck=not allow_destructive)  # as `run`: what only the copy can prove, it proves
        require_confirmation(reasons, allow_destructive, confirm)
    out: list[Rehearsal] = []
    with _copy_file(target, pending) as name, djangoapps.stand_in(target.alias, name) as copy:
        conn = raw(copy)
        if name != ":memory:":  # a throw-away file: no durability, the rollback journal on disk
            conn.execute("PRAGMA synchronous = OFF")
        target.conn.backup(conn)
        first, more = djangoapps.plan(copy).split() if django else (djangoapps.DjangoPlan(), False)
        out.extend(_rehearse_django(copy, first))
        history.ensure(conn)
        for m in pending:
            before = _row_counts(conn)
            timings = _Timings()
            started = time.perf_counter()
            Applier(conn, HistoryRow(), observer=timings).apply(m, "up")
            out.append(Rehearsal(m.name, time.perf_counter() - started, before, _row_counts(conn),
                                 timings.statements))
        if more:  # as `run` does: what depends on an owned app, once its tables exist
            out.extend(_rehearse_django(copy, djangoapps.plan(copy, quick=False)))
    return out


def _django_first(target: Target) -> bool:
    """Whether `run` applies Django migrations before tablemigrate's modules (as it plans them: on the
    database file, or on an empty stand-in where there is none yet)."""
    wrapper = djangoapps.wrapper_of(target.alias, target.conn)
    if wrapper is None and target.path is not None:  # not Django's connection: `run` applies none
        return False
    with contextlib.ExitStack() as stack:
        if wrapper is None:
            wrapper = stack.enter_context(djangoapps.stand_in(target.alias))
        return bool(djangoapps.plan(wrapper).split()[0])


@contextlib.contextmanager
def _copy_file(target: Target, pending: list) -> Iterator[str]:
    """Where the dry run's copy lives: for a database file, a temporary file in the backups directory
    (private, on the disk `run` writes its backups to), after checking that the copy and its rebuilds
    fit, so memory stays bounded whatever the database's size (an in-memory copy of a 300 MB database
    peaked at 945 MB); removed afterwards, with its journal. An in-memory database is copied in memory."""
    if target.path is None:
        yield ":memory:"
        return
    folder = target.backups_dir
    space.check(target.conn, folder / "dry-run", folder, pending, "up", copy="the dry run's copy of the database")
    backups.private_dir(folder)
    path = folder / f".dry-run-{os.getpid()}.sqlite3"
    try:
        yield str(path)
    finally:
        for leftover in (path, path.with_name(path.name + "-journal"), path.with_name(path.name + "-wal"),
                         path.with_name(path.name + "-shm")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


#: Statements Django's executor runs to look things up and manage transactions: left out of the list a
#: dry run prints for a Django migration (its time still counts in the migration's).
_DJANGOS_OWN = frozenset({"SELECT", "PRAGMA", "SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT"})


def _rehearse_django(copy, dplan: djangoapps.DjangoPlan) -> list[Rehearsal]:
    conn = raw(copy)
    out: list[Rehearsal] = []
    statements: list[tuple[str, float]] = []
    marks: dict[str, Any] = {}

    def started(name: str, atomic: bool) -> None:  # noqa: ARG001 (the applier calls it with both)
        finish()
        statements.clear()
        marks.update(name=name, at=time.perf_counter(), before=_row_counts(conn))

    def finish() -> None:
        if marks:
            out.append(Rehearsal(marks["name"], time.perf_counter() - marks["at"], marks["before"],
                                 _row_counts(conn), list(statements)))
            marks.clear()

    def statement(sql: str, seconds: float) -> None:  # what changes the database, not Django's own lookups
        first = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        if first not in _DJANGOS_OWN and "django_migrations" not in sql:
            statements.append((sql, seconds))

    djangoapps.apply(dplan, on_statement=statement, on_migration=started, hooks=False)
    finish()
    return out
