"""No window between BEGIN and the code that rolls back (issue 22): a signal the command turns into an
exception can land right after `BEGIN IMMEDIATE` returns; the transaction must not stay open."""

import ast
import sqlite3
from pathlib import Path

import pytest

from tablemigrate.backups import snapshots
from tablemigrate.history import applied as history
from tablemigrate.sqlite.transaction import write_transaction

PACKAGE = Path(__file__).resolve().parent.parent / "tablemigrate"


class InterruptedAfterBegin(sqlite3.Connection):
    """A connection on which the first BEGIN succeeds and is followed at once by a KeyboardInterrupt, as a
    SIGTERM arriving right after BEGIN IMMEDIATE returns would be."""

    armed = True

    def execute(self, sql, *args):  # type: ignore[override]
        cursor = super().execute(sql, *args)
        if self.armed and sql.lstrip().upper().startswith("BEGIN"):
            self.armed = False
            raise KeyboardInterrupt
        return cursor


@pytest.fixture
def conn(tmp_path):
    c = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None, factory=InterruptedAfterBegin)
    c.armed = False
    c.execute("CREATE TABLE t (x)")
    c.armed = True
    yield c
    c.close()


def test_write_transaction_rolls_back_an_interrupt_right_after_begin(conn):
    with pytest.raises(KeyboardInterrupt):
        with write_transaction(conn):
            conn.execute("INSERT INTO t VALUES (1)")  # never reached
    assert not conn.in_transaction
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)


def test_a_busy_begin_leaves_nothing_to_roll_back(tmp_path):
    path = tmp_path / "db.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    waiter = sqlite3.connect(path, isolation_level=None, timeout=0)
    with pytest.raises(sqlite3.OperationalError):
        with write_transaction(waiter):
            pass
    assert not waiter.in_transaction
    holder.execute("ROLLBACK")


def test_accepting_edits_of_applied_modules(conn):
    conn.armed = False
    history.ensure(conn)
    conn.armed = True
    with pytest.raises(KeyboardInterrupt):
        history.accept_edits(conn, {"0001_x": ("old", "new")})
    assert not conn.in_transaction


def test_waiting_for_a_quiet_moment_before_a_restore(conn):
    with pytest.raises(KeyboardInterrupt):
        snapshots._quiet_moment(conn, 1)
    assert not conn.in_transaction


def _begins_outside_a_guard() -> list[str]:
    """Every `execute("BEGIN ...")` of the package that is not inside a `try` whose handlers or `finally`
    ask SQLite whether a transaction is open (`in_transaction`). A function named `begin` is a BEGIN its
    callers run inside such a `try` (the applier's and the online rebuild's, with their busy handling)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "execute" and node.args and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str) and node.args[0].value.lstrip().upper().startswith("BEGIN")):
                continue
            guarded, child, parent = False, node, parents.get(node)
            while parent is not None and not guarded:
                if isinstance(parent, (ast.FunctionDef, ast.AsyncFunctionDef)) and parent.name == "begin":
                    guarded = True
                if isinstance(parent, ast.Try) and child in parent.body:
                    guard = parent.handlers + parent.finalbody
                    guarded = any(isinstance(n, ast.Attribute) and n.attr == "in_transaction"
                                  for h in guard for n in ast.walk(h))
                child, parent = parent, parents.get(parent)
            if not guarded:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return found


def test_every_begin_of_the_package_is_inside_a_guard_that_rolls_back():
    assert _begins_outside_a_guard() == []
