"""The one applier: database A, `run`, `revert` and dry-runs all apply migrations through here.

Per migration: foreign keys off *before* BEGIN (inside a transaction the PRAGMA is silently ignored),
`BEGIN IMMEDIATE`, statements one at a time (never `executescript`, which commits an open
transaction first), a foreign-key check of the tables involved, the caller's bookkeeping inside the
same transaction, COMMIT; on any error (or interrupt, from right after BEGIN returns) ROLLBACK. Foreign
keys are restored to their previous value. A busy or locked database anywhere in it (BEGIN, a statement,
the check, the history row, COMMIT), told by SQLite's result code, is DatabaseLocked (exit 3).

The work is divided as Django divides it between its MigrationExecutor and MigrationRecorder: an
`Applier` owns the transaction and is configured once per connection (what runs: Python steps or not,
strict names, online rebuilds); a `Bookkeeping` says what is checked and written inside each
migration's transaction (nothing on a scratch copy, the history row, the run's other-writer check...);
an `Observer` is told about each statement as it runs (the rehearsal's recording, the dry run's timings).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Protocol

from tablemigrate.errors import DatabaseLocked, MigrationFailed, is_busy
from tablemigrate.history import applied as history
from tablemigrate.history.loader import Migration, Step
from tablemigrate.operations import AlterTableInPlace, Operation, RunPython
from tablemigrate.sqlite import sqltext
from tablemigrate.sqlite.sqltext import quote
from tablemigrate.sqlite.transaction import write_transaction

from . import online as online_rebuild

#: Sorter helper threads while a migration runs (`PRAGMA threads`): measured on 2 CPUs, the three index
#: builds after a 1M-row rebuild took 0.55-0.58 s instead of 0.65-0.71 s with one helper, and 2 or 4
#: gained nothing more while each added a sort buffer (about 2 MB at the default cache size).
SORTER_THREADS = 1 if (os.cpu_count() or 1) > 1 else 0


def statements_of(step: Step) -> list[str]:
    """The SQL a step will run (operations: their preview)."""
    if isinstance(step, Operation):
        return step.sql_preview()
    return sqltext.split_statements(step)


def short_sql(sql: str, limit: int = 160) -> str:
    """`sql` on one line, cut to `limit` characters (error messages, timings)."""
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


class Bookkeeping:
    """What is checked and written inside each migration's transaction, under the write lock. This
    base checks and writes nothing (a scratch copy: database A, the rehearsal, `generate`'s proofs)."""

    def still_needed(self, conn: sqlite3.Connection, migration: Migration, direction: str) -> bool:
        """Right after BEGIN IMMEDIATE, before any step: False rolls back and applies nothing."""
        return True

    def record(self, conn: sqlite3.Connection, migration: Migration, direction: str, seconds: float) -> None:
        """After the steps and the foreign key check, before COMMIT (the same transaction)."""

    def rolled_back(self, conn: sqlite3.Connection) -> None:
        """At once after the ROLLBACK of a failed migration (nothing of the applier's in between), only
        when `still_needed` had answered in that transaction. Not after a failed online rebuild: the
        application's commits during its copy must count as other writers (our own never do)."""


class HistoryRow(Bookkeeping):
    """The history row (`history.record`): written on up, deleted on down."""

    def record(self, conn: sqlite3.Connection, migration: Migration, direction: str, seconds: float) -> None:
        history.record(conn, migration, direction, seconds)


class Observer(Protocol):
    """Told after each statement of a plain-SQL step and after each operation, inside the transaction."""

    def ran(self, conn: sqlite3.Connection, number: int, index: int | None, done: str | Operation,
            seconds: float) -> None:
        """`done` ran as statement `index` (from 0) of step `number` (from 1), or was the operation of
        step `number` (`index` None), in `seconds`."""


class Applier:
    """Applies migrations on `conn`, each in its own transaction, with `bookkeeping` inside it.
    `python=False` skips Python steps (validation on an empty schema copy, where data functions cannot
    run). `strict_names` (the rehearsal on a schema copy): plain statements run with double-quoted names
    in backticks, so one that matches nothing is an error instead of a string. `online` (a real run or
    revert): a module that rebuilds a big table copies it in short transactions while the application
    keeps writing (online.py) instead of in one."""

    def __init__(self, conn: sqlite3.Connection, bookkeeping: Bookkeeping | None = None, *,
                 observer: Observer | None = None, python: bool = True, strict_names: bool = False,
                 online: bool = False):
        self.conn = conn
        self.bookkeeping = Bookkeeping() if bookkeeping is None else bookkeeping
        self.observer = observer
        self.python = python
        self.strict_names = strict_names
        self.online = online
        self._doing = ""  # what the applier is doing, for a busy error's message

    def apply(self, migration: Migration, direction: str = "up") -> bool:
        """Apply one migration in its own transaction. Returns False when the bookkeeping says, once the
        write lock is held, that it is no longer needed."""
        conn = self.conn
        if conn.in_transaction:
            raise MigrationFailed("the connection is already inside a transaction; refusing to apply")
        if conn.isolation_level is not None:
            raise MigrationFailed("the connection must be in autocommit mode (isolation_level=None)")
        with _migration_pragmas(conn):
            started = time.perf_counter()
            self._doing = "BEGIN IMMEDIATE"

            def begin() -> None:  # run inside a `try` that rolls back (write_transaction, online.run)
                try:
                    conn.execute("BEGIN IMMEDIATE")
                except sqlite3.OperationalError as exc:
                    if is_busy(exc):
                        raise _locked(migration, direction, "BEGIN IMMEDIATE", exc) from None
                    raise
            try:
                work = online_rebuild.plan(conn, migration, direction) if self.online else None
                if work is not None:
                    return self._apply_online(work, migration, direction, begin, started)
                return self._apply_in_one_transaction(migration, direction, begin, started)
            except Exception as exc:
                if is_busy(exc) and not isinstance(exc, DatabaseLocked):  # the check, the history row, COMMIT
                    raise _locked(migration, direction, self._doing, exc) from exc
                raise

    def _apply_in_one_transaction(self, migration: Migration, direction: str, begin: Callable[[], None],
                                  started: float) -> bool:
        conn, bookkeeping = self.conn, self.bookkeeping
        asked = False  # whether `still_needed` answered in this transaction (see `rolled_back`)
        try:
            with write_transaction(conn, begin) as ending:  # from BEGIN's return on, any exception rolls back
                if not bookkeeping.still_needed(conn, migration, direction):
                    ending.roll_back()
                    return False
                asked = True
                if migration.atomic:
                    self._run_steps(migration, direction)
                else:  # `atomic = False`: each statement on its own (VACUUM cannot run in a transaction);
                    conn.execute("COMMIT")  # then the checks and the history row in a transaction of their own
                    self._run_steps(migration, direction)
                    begin()
                self._doing = "the foreign key check"
                self._check_foreign_keys(migration, direction)
                self._doing = "recording it"
                bookkeeping.record(conn, migration, direction, time.perf_counter() - started)
                self._doing = "COMMIT"
        except BaseException:
            # At once (write_transaction rolled back; nothing of ours in between), and only after
            # `still_needed` answered: a bookkeeping that re-reads its state there (the run's other-writer
            # check) must not take another connection's commit before this BEGIN for our own rollback.
            if asked:
                bookkeeping.rolled_back(conn)
            raise
        return True

    def _apply_online(self, work: online_rebuild.Online, migration: Migration, direction: str,
                      begin: Callable[[], None], started: float) -> bool:
        conn, bookkeeping = self.conn, self.bookkeeping

        def finish() -> bool:  # in the final transaction
            if not bookkeeping.still_needed(conn, migration, direction):
                return False
            bookkeeping.record(conn, migration, direction, time.perf_counter() - started)
            return True
        self._doing = "the online rebuild"
        try:
            return online_rebuild.run(conn, work, begin, finish)
        except MigrationFailed as exc:
            # No `rolled_back`: the application's commits during the copy must count as other writers
            # (the run then keeps the database as it is instead of restoring the backup, which would lose
            # them); our own commits never count (`PRAGMA data_version`).
            raise MigrationFailed(f"migration {migration.name} ({direction}) failed: {exc}") from exc

    def _run_steps(self, migration: Migration, direction: str) -> None:
        for number, step in enumerate(migration.steps(direction), 1):
            if isinstance(step, RunPython) and not self.python:
                continue
            if isinstance(step, Operation):
                self._run(migration, direction, number, None, step)
                continue
            for index, sql in enumerate(sqltext.split_statements(step)):
                self._run(migration, direction, number, index, sql)

    def _run(self, migration: Migration, direction: str, number: int, index: int | None,
             done: str | Operation) -> None:
        """One statement (`index` from 0) or the operation (`index` None) of step `number`; a failure
        names the migration, the step and what ran. An operation's Python may raise anything."""
        conn = self.conn
        caught = sqlite3.Error if isinstance(done, str) else Exception
        schema = _schema(conn) if isinstance(done, RunPython) else None
        started = time.perf_counter()
        try:
            if isinstance(done, str):
                conn.execute(self._executable(done))
            else:
                done.apply(conn)
        except caught as exc:
            what = f"[{short_sql(done)}]" if isinstance(done, str) else repr(done)
            if is_busy(exc):
                raise _locked(migration, direction, f"step {number} {what}", exc) from exc
            why = str(exc) if isinstance(done, str) else f"{type(exc).__name__}: {exc}"
            raise MigrationFailed(
                f"migration {migration.name} ({direction}) failed at step {number} {what}: {why}") from exc
        if schema is not None:
            _refuse_schema_change(conn, schema, f"migration {migration.name} ({direction}) step {number} {done!r}")
        if self.observer is not None:
            self.observer.ran(conn, number, index, done, time.perf_counter() - started)

    def _executable(self, sql: str) -> str:
        if not self.strict_names:
            return sql
        try:
            return sqltext.without_string_fallback(sql)
        except ValueError:  # text the tokenizer does not know: SQLite will say what is wrong with it
            return sql

    def _check_foreign_keys(self, migration: Migration, direction: str) -> None:
        violations = [] if _left_keys_alone(migration, direction) else foreign_key_violations(self.conn,
                                                                                                migration.table)
        if violations:
            shown = ", ".join(f"{v[0]} row {v[1]} -> {v[2]}" for v in violations[:5])
            raise MigrationFailed(
                f"migration {migration.name} ({direction}) would leave {len(violations)} foreign key "
                f"violation(s): {shown}")


def apply_migration(conn: sqlite3.Connection, migration: Migration, direction: str = "up", *,
                    online: bool = False) -> bool:
    """`Applier(conn, online=online).apply(migration, direction)`: no bookkeeping, no observer."""
    return Applier(conn, online=online).apply(migration, direction)


@contextlib.contextmanager
def _migration_pragmas(conn: sqlite3.Connection) -> Iterator[None]:
    """Foreign keys off (before BEGIN: inside a transaction the PRAGMA is silently ignored), the modern
    ALTER TABLE, sorter helper threads; foreign keys and threads restored after."""
    fk_before = conn.execute("PRAGMA foreign_keys").fetchone()[0]
    threads_before = conn.execute("PRAGMA threads").fetchone()[0]
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("PRAGMA legacy_alter_table = OFF")
    # Helper threads for SQLite's sorter: the index builds after a rebuild sort every row. The result
    # is the same; SQLite caps the number at its compile-time maximum.
    conn.execute(f"PRAGMA threads = {SORTER_THREADS}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA foreign_keys = {int(fk_before)}")
        conn.execute(f"PRAGMA threads = {int(threads_before)}")


def _schema(conn: sqlite3.Connection) -> tuple[int, set[tuple]]:
    """The main database's schema cookie (`PRAGMA schema_version`: SQLite bumps it at every change of
    `sqlite_schema`) and its rows, as SQLite holds them."""
    return (conn.execute("PRAGMA main.schema_version").fetchone()[0],
            set(conn.execute("SELECT type, name, tbl_name, sql FROM main.sqlite_master")))


def _refuse_schema_change(conn: sqlite3.Connection, before: tuple[int, set[tuple]], step: str) -> None:
    """A Python step that changed the main database's schema fails its migration (which rolls back).

    Replays of the history (database A, the rehearsal, drift, the test database) never run Python steps,
    so a schema it changed would differ from then on between every real database and what the history
    makes. The cookie says at once that nothing changed; when it moved, the schema's rows are compared (a
    helper table made and dropped again changes nothing). TEMP objects are not the database's schema."""
    version, rows = _schema(conn)
    if version == before[0] or rows == before[1]:
        return
    names = sorted({f"{row[0]} {row[1]}" for row in rows ^ before[1]})
    raise MigrationFailed(
        f"{step} changed the database's schema ({', '.join(names)}): a Python step may change data only, "
        "since replays of the history never run it; make the schema change in a module's SQL (generate)")


def _locked(migration: Migration, direction: str, at: str, exc: BaseException) -> DatabaseLocked:
    """SQLITE_BUSY/LOCKED (`is_busy`, by result code) anywhere in a migration: exit 3, not a failed migration."""
    return DatabaseLocked(f"migration {migration.name} ({direction}): the database stayed locked by another "
                          f"connection past the busy timeout, at {at} ({exc})")


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
