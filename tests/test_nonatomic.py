"""`atomic = False` modules (issue 14's operations catalogue): statements SQLite refuses inside a
transaction (VACUUM), run one by one; a failure leaves the completed ones, so `run` restores the
backup."""

from __future__ import annotations

import pytest

from tablemigrate.errors import MigrationFailed, MigrationFileError
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
