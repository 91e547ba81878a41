"""The applier's contract (tablemigrate.run.apply): the transaction it owns, the bookkeeping written inside it,
the observer told about each statement."""

import sqlite3

import pytest

from tablemigrate.errors import DatabaseLocked, MigrationFailed
from tablemigrate.history import applied as history
from tablemigrate.history.loader import Migration
from tablemigrate.operations import RunPython
from tablemigrate.run.apply import SORTER_THREADS, Applier, Bookkeeping, HistoryRow
from tablemigrate.sqlite.transaction import write_transaction


class Book(Bookkeeping):
    """A bookkeeping that writes a row, and notes what it was asked and what it saw."""

    def __init__(self, needed: bool = True, fail_in: str = ""):
        self.needed, self.fail_in = needed, fail_in
        self.calls: list[str] = []
        self.seen: list[tuple[bool, list]] = []  # in `record`: (in a transaction, the rows of t)

    def still_needed(self, conn, migration, direction):
        self.calls.append("still_needed")
        if self.fail_in == "still_needed":
            raise RuntimeError("asked and failed")
        return self.needed

    def record(self, conn, migration, direction, seconds):
        self.calls.append("record")
        self.seen.append((conn.in_transaction, conn.execute("SELECT x FROM t ORDER BY x").fetchall()))
        conn.execute("INSERT INTO book VALUES (?, ?)", (migration.name, direction))
        if self.fail_in == "record":
            raise RuntimeError("recording failed")

    def rolled_back(self, conn):
        self.calls.append("rolled_back")


@pytest.fixture
def conn(tmp_path):
    c = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    c.execute("PRAGMA foreign_keys = ON")
    c.execute("CREATE TABLE t (x)")
    c.execute("CREATE TABLE book (name, direction)")
    yield c
    c.close()


def rows(conn, table):
    return conn.execute(f"SELECT * FROM {table}").fetchall()


def pragmas(conn):
    return conn.execute("PRAGMA foreign_keys").fetchone()[0], conn.execute("PRAGMA threads").fetchone()[0]


def traced(conn, call):
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        return call(), seen
    finally:
        conn.set_trace_callback(None)


INSERT = Migration("0001_a", ["INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (2)"], None)


def test_the_bookkeeping_is_written_in_the_steps_transaction(conn):
    book = Book()
    done, trace = traced(conn, lambda: Applier(conn, book).apply(INSERT))
    assert done and book.calls == ["still_needed", "record"]
    assert book.seen == [(True, [(1,), (2,)])]  # inside the transaction, after the steps
    assert rows(conn, "book") == [("0001_a", "up")]
    transaction = [s for s in trace if s.startswith(("BEGIN", "COMMIT", "ROLLBACK", "INSERT"))]
    assert transaction == ["BEGIN IMMEDIATE", "INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (2)",
                           "INSERT INTO book VALUES ('0001_a', 'up')", "COMMIT"]


def test_a_failing_bookkeeping_rolls_back_the_steps(conn):
    book = Book(fail_in="record")
    with pytest.raises(RuntimeError, match="recording failed"):
        Applier(conn, book).apply(INSERT)
    assert rows(conn, "t") == [] and rows(conn, "book") == []
    assert book.calls == ["still_needed", "record", "rolled_back"]
    assert not conn.in_transaction and pragmas(conn) == (1, 0)


def test_a_failing_step_rolls_back_and_restores_the_pragmas(conn):
    book = Book()
    during = []
    bad = Migration("0002_b", ["INSERT INTO t VALUES (1)", RunPython(lambda db: during.append(pragmas(db))),
                               "INSERT INTO nowhere VALUES (1)"], None)
    with pytest.raises(MigrationFailed, match=r"0002_b \(up\) failed at step 3 \[INSERT INTO nowhere"):
        Applier(conn, book).apply(bad)
    assert during == [(0, SORTER_THREADS)]  # foreign keys off, sorter threads on while it ran
    assert rows(conn, "t") == [] and rows(conn, "book") == []
    assert book.calls == ["still_needed", "rolled_back"]  # rolled_back: at once after the ROLLBACK
    assert not conn.in_transaction and pragmas(conn) == (1, 0)


def test_not_needed_writes_nothing_and_is_no_failure(conn):
    book = Book(needed=False)
    done, trace = traced(conn, lambda: Applier(conn, book).apply(INSERT))
    assert done is False and book.calls == ["still_needed"]
    assert rows(conn, "t") == [] and rows(conn, "book") == []
    assert [s for s in trace if s.startswith(("BEGIN", "COMMIT", "ROLLBACK"))] == ["BEGIN IMMEDIATE", "ROLLBACK"]
    assert not conn.in_transaction and pragmas(conn) == (1, 0)


def test_rolled_back_only_after_still_needed_answered(conn):
    book = Book(fail_in="still_needed")
    with pytest.raises(RuntimeError, match="asked and failed"):
        Applier(conn, book).apply(INSERT)
    assert book.calls == ["still_needed"] and not conn.in_transaction and pragmas(conn) == (1, 0)


def test_a_busy_begin_is_database_locked_and_restores_the_pragmas(tmp_path, conn):
    holder = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    conn.execute("PRAGMA busy_timeout = 0")
    book = Book()
    try:
        with pytest.raises(DatabaseLocked, match=r"0001_a \(up\).*at BEGIN IMMEDIATE"):
            Applier(conn, book).apply(INSERT)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert book.calls == [] and not conn.in_transaction and pragmas(conn) == (1, 0)


def test_a_module_that_is_not_atomic_records_in_a_transaction_of_its_own(conn):
    book = Book()
    m = Migration("0003_c", ["INSERT INTO t VALUES (1)"], None, atomic=False)
    done, trace = traced(conn, lambda: Applier(conn, book).apply(m))
    assert done and book.seen == [(True, [(1,)])]
    assert [s for s in trace if s.startswith(("BEGIN", "COMMIT", "ROLLBACK", "INSERT"))] == [
        "BEGIN IMMEDIATE", "COMMIT", "INSERT INTO t VALUES (1)", "BEGIN IMMEDIATE",
        "INSERT INTO book VALUES ('0003_c', 'up')", "COMMIT"]


def test_the_observer_is_told_each_statement_and_operation(conn):
    told = []

    class Observer:
        def ran(self, c, number, index, done, seconds):
            told.append((c is conn, number, index, done if isinstance(done, str) else type(done).__name__,
                         c.in_transaction, seconds >= 0))

    m = Migration("0004_d", ["INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)", RunPython(lambda db: None)],
                  None)
    Applier(conn, observer=Observer()).apply(m)
    assert told == [(True, 1, 0, "INSERT INTO t VALUES (1);", True, True),
                    (True, 1, 1, "INSERT INTO t VALUES (2)", True, True),
                    (True, 2, None, "RunPython", True, True)]


def test_configured_once_for_many_migrations(conn):
    """Python steps skipped, strict names: the applier's configuration, not each call's."""
    ran = []
    applier = Applier(conn, python=False, strict_names=True)
    assert applier.apply(Migration("0005_e", ["INSERT INTO t VALUES (1)", RunPython(ran.append)], None))
    with pytest.raises(MigrationFailed, match="no such column"):  # a double-quoted name that matches nothing
        applier.apply(Migration("0006_f", ['INSERT INTO t VALUES ("nothing")'], None))
    assert ran == [] and rows(conn, "t") == [(1,)]


def test_the_history_row(conn):
    history.ensure(conn)
    applier = Applier(conn, HistoryRow())
    applier.apply(INSERT)
    assert history.is_applied(conn, "0001_a")
    applier.apply(Migration("0001_a", [], ["DELETE FROM t"]), "down")
    assert not history.is_applied(conn, "0001_a") and rows(conn, "t") == []


def test_a_write_transaction_can_end_in_rollback(conn):
    with write_transaction(conn) as ending:
        conn.execute("INSERT INTO t VALUES (1)")
        ending.roll_back()
    assert rows(conn, "t") == [] and not conn.in_transaction
    with write_transaction(conn):
        conn.execute("INSERT INTO t VALUES (2)")
    assert rows(conn, "t") == [(2,)]
