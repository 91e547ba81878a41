"""`run --dry-run`: the pending migrations applied to an in-memory copy of the real database, each
statement timed and each table's rows counted before and after; the real database is only read."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import djangoapps, history
from .apply import apply_migration
from .build import raw
from .introspect import is_internal
from .preflight import _refuse_foreign_tables, validate
from .sqltext import quote
from .status import Target, pending_migrations


@dataclass
class Rehearsal:
    migration: str
    seconds: float
    rows_before: dict[str, int]
    rows_after: dict[str, int]
    statements: list[tuple[str, float]] = field(default_factory=list)  # (statement or operation, seconds)


def _row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {n: conn.execute(f"SELECT count(*) FROM {quote(n)}").fetchone()[0] for n in names if not is_internal(n)}


def dry_run(target: Target, directory: Path) -> list[Rehearsal]:
    """Apply the pending migrations (Django's of the apps tablemigrate does not own, then its own) to an
    in-memory copy of the real database and report what happened; the real database is only read.
    While the Django migrations run, the alias's connection *is* the copy (djangoapps.stand_in), so a
    data step that queries through the default manager writes to the copy too."""
    _st, pending = pending_migrations(target, directory)
    if pending:  # what `run` would refuse before touching anything, `--dry-run` refuses too
        _refuse_foreign_tables(target, pending, "up", validate(target, pending))
    out: list[Rehearsal] = []
    django = djangoapps.wrapper_of(target.alias, target.conn) is not None or target.path is None
    with djangoapps.stand_in(target.alias) as copy:
        conn = raw(copy)
        target.conn.backup(conn)
        first, more = djangoapps.plan(copy).split() if django else (djangoapps.DjangoPlan(), False)
        out.extend(_rehearse_django(copy, first))
        history.ensure(conn)
        for m in pending:
            before = _row_counts(conn)
            statements: list[tuple[str, float]] = []
            started = time.perf_counter()
            apply_migration(conn, m, "up", in_transaction=history.record,
                            on_statement=lambda sql, seconds: statements.append((sql, seconds)))
            out.append(Rehearsal(m.name, time.perf_counter() - started, before, _row_counts(conn), statements))
        if more:  # as `run` does: what depends on an owned app, once its tables exist
            out.extend(_rehearse_django(copy, djangoapps.plan(copy, quick=False)))
    return out


#: Statements Django's executor runs to look things up and manage transactions: left out of the list a
#: dry run prints for a Django migration (its time still counts in the migration's).
_DJANGOS_OWN = frozenset({"SELECT", "PRAGMA", "SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT"})


def _rehearse_django(copy, dplan: djangoapps.DjangoPlan) -> list[Rehearsal]:
    conn = raw(copy)
    out: list[Rehearsal] = []
    statements: list[tuple[str, float]] = []
    marks: dict[str, Any] = {}

    def started(name: str, atomic: bool) -> None:
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
