"""One exception family, and SQLite's errors told apart by result code, never by message text (issue 13)."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from django.db import utils as django_db_utils

from tablemigrate import errors
from tablemigrate.errors import ObjectExists, TablemigrateError, is_busy, is_readonly, sqlite_code
from tablemigrate.run.rehearse import rehearse

from .helpers import module

PACKAGE = Path(__file__).resolve().parent.parent / "tablemigrate"


def test_every_exception_tablemigrate_defines_is_in_the_errors_module_and_the_family():
    defined = {}
    for path in PACKAGE.rglob("*.py"):
        for name in re.findall(r"^class (\w+)\((?:[\w.]*Error|[\w.]*Exception|MigrationFailed|TablemigrateError)\)",
                               path.read_text(), flags=re.M):
            defined[name] = path.name
    assert defined and set(defined.values()) == {"errors.py"}, defined
    for name in defined:
        cls = getattr(errors, name)
        assert issubclass(cls, TablemigrateError) or name == "MissingSource", name


def test_no_control_flow_reads_an_error_message():
    pattern = re.compile(r"""["'][^"']*["']\s+(?:not\s+)?in\s+str\(\w+\)""")
    found = [f"{p.name}: {line.strip()}" for p in PACKAGE.rglob("*.py") for line in p.read_text().splitlines()
             if pattern.search(line)]
    assert found == []


def test_result_codes_of_real_errors_through_django_wrapping(tmp_path):
    db = tmp_path / "db.sqlite3"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    other = sqlite3.connect(db, timeout=0, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError) as busy:
        other.execute("BEGIN IMMEDIATE")
    assert sqlite_code(busy.value) == errors.SQLITE_BUSY and is_busy(busy.value)
    try:  # as Django raises it: its own OperationalError, the sqlite3 one as the cause
        raise django_db_utils.OperationalError(str(busy.value)) from busy.value
    except django_db_utils.OperationalError as wrapped:
        assert is_busy(wrapped)
    holder.execute("ROLLBACK")
    readonly = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    with pytest.raises(sqlite3.OperationalError) as denied:
        readonly.execute("INSERT INTO t VALUES (1)")
    assert is_readonly(denied.value) and not is_busy(denied.value)
    with pytest.raises(sqlite3.OperationalError) as other_error:
        other.execute("SELECT nope FROM t")
    assert sqlite_code(other_error.value) in (errors.SQLITE_ERROR, None) and not is_busy(other_error.value)


@pytest.mark.parametrize("sql, name", [("CREATE TABLE Existing (y)", "Existing"),
                                       ("CREATE VIEW existing_v AS SELECT 1", "existing_v")])
def test_the_rehearsal_names_an_object_that_already_exists_from_the_authorizer(tmp_path, sql, name):
    """(Not for an index: SQLite looks an index name up before it asks the authorizer.)"""
    from tablemigrate.history.loader import load_migrations

    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE existing (x)")
    conn.execute("CREATE INDEX existing_x ON existing (x)")
    conn.execute("CREATE VIEW existing_v AS SELECT 1")
    module(tmp_path / "m", "20260101_000000_01_again", f"up = [{sql!r}]\n")
    with pytest.raises(ObjectExists) as exists:
        rehearse(conn, load_migrations(tmp_path / "m"))
    assert exists.value.name == name
