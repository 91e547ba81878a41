"""`atomic = False` modules (issue 14's operations catalogue): statements SQLite refuses inside a
transaction (VACUUM), run one by one; a failure leaves the completed ones, so `run` restores the
backup."""

from __future__ import annotations

import pytest

from tablemigrate.errors import MigrationFailed, MigrationFileError, NotConfirmed
from tablemigrate.history.loader import load_migrations
from tablemigrate.run import runner

from .helpers import module

CREATE = "table = 't'\nup = ['CREATE TABLE t (id integer PRIMARY KEY, v text)', \"INSERT INTO t (v) VALUES ('a')\"]\n"


@pytest.fixture
def project(project):
    """The shared project (tests/conftest.py) with table t created by a first module."""
    target, d = project
    module(d, "0001_create", CREATE)
    runner.run(target, d)
    return project


def test_vacuum_runs_in_a_module_that_is_not_atomic_and_is_recorded(project):
    target, d = project
    module(d, "0002_vacuum", "up = ['VACUUM']\n")
    with pytest.raises(MigrationFailed, match="cannot VACUUM from within a transaction"):
        runner.run(target, d)
    module(d, "0002_vacuum", "atomic = False\nup = ['VACUUM']\n")
    assert [m.name for m in runner.run(target, d)] == ["0002_vacuum"]
    assert [r[0] for r in target.conn.execute("SELECT name FROM tablemigrate_history ORDER BY id")] == \
        ["0001_create", "0002_vacuum"]


def test_a_failing_module_that_is_not_atomic_is_undone_by_the_backup(project):
    target, d = project
    module(d, "0002_half", "atomic = False\nup = [\"UPDATE t SET v = 'changed'\", 'INSERT INTO t (id) VALUES (1)']\n")
    with pytest.raises(MigrationFailed) as failed:
        runner.run(target, d)  # the UPDATE commits on its own; the INSERT's key clash stops the module
    assert "the database was restored from backup" in str(failed.value)
    assert target.conn.execute("SELECT v FROM t").fetchall() == [("a",)]  # the backup undid the UPDATE
    assert [r[0] for r in target.conn.execute("SELECT name FROM tablemigrate_history")] == ["0001_create"]


def test_operations_that_need_a_transaction_are_refused_in_a_module_that_is_not_atomic(tmp_path):
    d = tmp_path / "m"
    module(d, "0001_x", "from tablemigrate.operations import RebuildTable\natomic = False\n"
                        "up = [RebuildTable('t', 'CREATE TABLE t (id integer PRIMARY KEY)', {'id': '\"id\"'})]\n")
    with pytest.raises(MigrationFileError, match="needs a transaction, and this module has `atomic = False`"):
        load_migrations(d)
    module(d, "0001_x", "atomic = 'no'\nup = []\n")
    with pytest.raises(MigrationFileError, match="`atomic` must be True or False"):
        load_migrations(d)


def test_a_destructive_module_that_is_not_atomic_is_asked_about_even_when_its_table_is_empty(project):
    """Counted empty waives a module's destructive flags only where StillEmpty checks it again in the
    transaction of the steps; an `atomic = False` module has none, so a row written after that recheck
    was dropped unconfirmed with exit 0 (review of issue 25). Now it is asked about like any other."""
    target, d = project
    module(d, "0002_e", "up = ['CREATE TABLE e (id integer PRIMARY KEY, c text)']\ndown = ['DROP TABLE e']\n")
    runner.run(target, d)
    module(d, "0003_drop", "table = 'e'\natomic = False\ndestructive = ['drops e.c']\n"
                           "up = ['ALTER TABLE e DROP COLUMN c']\ndown = None\n")
    with pytest.raises(NotConfirmed, match="drops e.c"):
        runner.run(target, d)  # no --allow-destructive, no one to ask: refused although e is empty
    assert [c[1] for c in target.conn.execute("PRAGMA table_info(e)")] == ["id", "c"]
    assert [m.name for m in runner.run(target, d, allow_destructive=True)] == ["0003_drop"]
    assert [c[1] for c in target.conn.execute("PRAGMA table_info(e)")] == ["id"]
