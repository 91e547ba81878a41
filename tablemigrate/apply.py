"""The one applier: database A, `run`, `revert` and dry-runs all apply migrations through here.

Per migration: foreign keys off *before* BEGIN (inside a transaction the PRAGMA is silently ignored),
`BEGIN IMMEDIATE`, statements one at a time (never `executescript`, which commits an open
transaction first), a foreign-key check of the tables involved, the caller's bookkeeping inside the
same transaction, COMMIT; on any error (or interrupt, from right after BEGIN returns) ROLLBACK. Foreign
keys are restored to their previous value. A busy or locked database anywhere in it (BEGIN, a statement,
the check, the history row, COMMIT), told by SQLite's result code, is DatabaseLocked (exit 3).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable

from . import sqltext
from . import online as online_rebuild
from .errors import DatabaseLocked, MigrationFailed, is_busy
from .loader import Migration, Step
from .operations import AlterTableInPlace, Operation, RunPython
from .sqltext import quote

#: Sorter helper threads while a migration runs (`PRAGMA threads`): measured on 2 CPUs, the three index
#: builds after a 1M-row rebuild took 0.55-0.58 s instead of 0.65-0.71 s with one helper, and 2 or 4
#: gained nothing more while each added a sort buffer (about 2 MB at the default cache size).
SORTER_THREADS = 1 if (os.cpu_count() or 1) > 1 else 0

InTransaction = Callable[[sqlite3.Connection, Migration, str, float], None]


def statements_of(step: Step) -> list[str]:
    """The SQL a step will run (operations: their preview)."""
    if isinstance(step, Operation):
        return step.sql_preview()
    return sqltext.split_statements(step)


def _short(sql: str, limit: int = 160) -> str:
    one_line = " ".join(sql.split())
    return one_line if len(one_line) <= limit else one_line[:limit - 3] + "..."


def foreign_key_violations(conn: sqlite3.Connection, table: str | None) -> list[tuple]:
    """`PRAGMA foreign_key_check` for `table` and the tables that reference it (all tables if None)."""
    if table is None:
        return conn.execute("PRAGMA foreign_key_check").fetchall()
    involved = [r[0] for r in conn.execute(
        "SELECT DISTINCT m.name FROM sqlite_master AS m LEFT JOIN pragma_foreign_key_list(m.name) AS f "
        f"WHERE m.type = 'table' AND {sqltext.user_objects('m.name')} AND (lower(m.name) = lower(:t) "
        "OR lower(f.\"table\") = lower(:t))", {"t": table})]
    violations: list[tuple] = []
    for name in involved:
        violations.extend(conn.execute(f"PRAGMA foreign_key_check({quote(name)})").fetchall())
    return violations


OnStatement = Callable[[str, float], None]
#: Called after each plain-SQL statement (step number, statement index) and each operation (index None).
Observer = Callable[[sqlite3.Connection, int, "int | None"], None]


def _executable(sql: str, strict_names: bool) -> str:
    if not strict_names:
        return sql
    try:
        return sqltext.without_string_fallback(sql)
    except ValueError:  # text the tokenizer does not know: SQLite will say what is wrong with it
        return sql


def _locked(migration: Migration, direction: str, at: str, exc: BaseException) -> DatabaseLocked:
    """SQLITE_BUSY/LOCKED (`is_busy`, by result code) anywhere in a migration: exit 3, not a failed migration."""
    return DatabaseLocked(f"migration {migration.name} ({direction}): the database stayed locked by another "
                          f"connection past the busy timeout, at {at} ({exc})")


def _run_steps(conn: sqlite3.Connection, migration: Migration, direction: str, run_python: bool,
               on_statement: OnStatement | None, strict_names: bool = False,
               observer: Observer | None = None) -> None:
    for number, step in enumerate(migration.steps(direction), 1):
        if isinstance(step, RunPython) and not run_python:
            continue
        if isinstance(step, Operation):
            started = time.perf_counter()
            try:
                step.apply(conn)
            except Exception as exc:
                if is_busy(exc):
                    raise _locked(migration, direction, f"step {number} {step!r}", exc) from exc
                raise MigrationFailed(
                    f"migration {migration.name} ({direction}) failed at step {number} "
                    f"{step!r}: {type(exc).__name__}: {exc}") from exc
            if on_statement is not None:
                on_statement(repr(step), time.perf_counter() - started)
            if observer is not None:
                observer(conn, number, None)
            continue
        for index, sql in enumerate(sqltext.split_statements(step)):
            started = time.perf_counter()
            try:
                conn.execute(_executable(sql, strict_names))
            except sqlite3.Error as exc:
                if is_busy(exc):
                    raise _locked(migration, direction, f"step {number} [{_short(sql)}]", exc) from exc
                raise MigrationFailed(
                    f"migration {migration.name} ({direction}) failed at step {number} "
                    f"[{_short(sql)}]: {exc}") from exc
            if on_statement is not None:
                on_statement(_short(sql), time.perf_counter() - started)
            if observer is not None:
                observer(conn, number, index)


def _left_keys_alone(migration: Migration, direction: str) -> bool:
    """After the steps ran: each was an in-place change that moved no row and added no rule, or an index
    made (a dropped one could be the key a foreign key refers to); the foreign key check (which reads
    every row of the table and of the tables that reference it) then has nothing to find. It keeps an
    in-place change O(1) at any size."""
    steps = migration.steps(direction)
    return bool(steps) and all(step.kept_every_row_and_key() if isinstance(step, AlterTableInPlace) else
                               isinstance(step, str) and _creates_index(step) for step in steps)


def _creates_index(sql: str) -> bool:
    found = online_rebuild.index_statement(sql)
    return found is not None and found[0] == "create"


def apply_migration(conn: sqlite3.Connection, migration: Migration, direction: str = "up", *,
                    in_transaction: InTransaction | None = None,
                    should_apply: Callable[[sqlite3.Connection], bool] | None = None,
                    run_python: bool = True, on_statement: OnStatement | None = None,
                    after_rollback: Callable[[sqlite3.Connection], None] | None = None,
                    strict_names: bool = False, observer: Observer | None = None, online: bool = False) -> bool:
    """Apply one migration in its own transaction. Returns False when `should_apply` (called inside
    the transaction, after the write lock is held) says it is no longer needed. `run_python=False`
    skips Python steps (validation on an empty schema copy, where data functions cannot run).
    `strict_names` (the rehearsal on a schema copy): plain statements run with double-quoted names in
    backticks, so one that matches nothing is an error instead of a string. `observer`: see Observer.
    `online` (a real run or revert): a module that rebuilds a big table copies it in short transactions
    while the application keeps writing (online.py) instead of in one."""
    if conn.in_transaction:
        raise MigrationFailed("the connection is already inside a transaction; refusing to apply")
    if conn.isolation_level is not None:
        raise MigrationFailed("the connection must be in autocommit mode (isolation_level=None)")
    fk_before = conn.execute("PRAGMA foreign_keys").fetchone()[0]
    threads_before = conn.execute("PRAGMA threads").fetchone()[0]
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("PRAGMA legacy_alter_table = OFF")
    # Helper threads for SQLite's sorter: the index builds after a rebuild sort every row. The result
    # is the same; SQLite caps the number at its compile-time maximum.
    conn.execute(f"PRAGMA threads = {SORTER_THREADS}")
    started = time.perf_counter()

    doing = "BEGIN IMMEDIATE"  # for a busy error's message

    def begin() -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                raise _locked(migration, direction, "BEGIN IMMEDIATE", exc) from None
            raise

    try:
        work = online_rebuild.plan(conn, migration, direction) if online else None
        if work is not None:
            def finish() -> bool:  # in the final transaction
                if should_apply is not None and not should_apply(conn):
                    return False
                if in_transaction is not None:
                    in_transaction(conn, migration, direction, time.perf_counter() - started)
                return True
            doing = "the online rebuild"
            try:
                return online_rebuild.run(conn, work, begin, finish)
            except MigrationFailed as exc:
                # No `after_rollback`: the application's commits during the copy must count as other
                # writers (the run then keeps the database as it is instead of restoring the backup,
                # which would lose them); our own commits never count (`PRAGMA data_version`).
                raise MigrationFailed(f"migration {migration.name} ({direction}) failed: {exc}") from exc
        asked = False  # whether `should_apply` answered in this transaction (see `after_rollback` below)
        try:
            begin()  # in the `try`: a signal right after BEGIN returns must roll back too
            if should_apply is not None and not should_apply(conn):
                conn.execute("ROLLBACK")
                return False
            asked = True
            if migration.atomic:
                _run_steps(conn, migration, direction, run_python, on_statement, strict_names, observer)
            else:  # `atomic = False`: each statement on its own (VACUUM cannot run in a transaction);
                conn.execute("COMMIT")  # then the checks and the history row in a transaction of their own
                _run_steps(conn, migration, direction, run_python, on_statement, strict_names, observer)
                conn.execute("BEGIN IMMEDIATE")
            doing = "the foreign key check"
            violations = [] if _left_keys_alone(migration, direction) else foreign_key_violations(conn, migration.table)
            if violations:
                shown = ", ".join(f"{v[0]} row {v[1]} -> {v[2]}" for v in violations[:5])
                raise MigrationFailed(
                    f"migration {migration.name} ({direction}) would leave {len(violations)} foreign key "
                    f"violation(s): {shown}")
            doing = "recording it"
            if in_transaction is not None:
                in_transaction(conn, migration, direction, time.perf_counter() - started)
            doing = "COMMIT"
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # asked, not assumed: also after an interrupt right after BEGIN returned
                conn.execute("ROLLBACK")
            # At once (nothing of ours in between), and only after `should_apply` answered: a caller that
            # re-reads its state there (the run's other-writer check) must not take another connection's
            # commit before this BEGIN for a side effect of our own rollback.
            if after_rollback is not None and asked:
                after_rollback(conn)
            raise
    except Exception as exc:
        if is_busy(exc) and not isinstance(exc, DatabaseLocked):  # the check, the history row, COMMIT, online
            raise _locked(migration, direction, doing, exc) from exc
        raise
    finally:
        conn.execute(f"PRAGMA foreign_keys = {int(fk_before)}")
        conn.execute(f"PRAGMA threads = {int(threads_before)}")
    return True
