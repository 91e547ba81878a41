"""The SQLite foundation done once (issue 24): one reader of CREATE statements (ddl.py), one swap of a
rebuilt table and one edit of sqlite_schema (rebuild.py), used by both rebuilds and the in-place alter;
`online.plan` asks its questions of one scratch database."""

from __future__ import annotations

import sqlite3

import pytest

from tablemigrate.history.loader import Migration
from tablemigrate.operations import AlterTableInPlace, RebuildTable
from tablemigrate.run import online
from tablemigrate.run.apply import apply_migration
from tablemigrate.run.datacheck import check
from tablemigrate.sqlite import ddl, rebuild

ITEM = ('CREATE TABLE "item" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "code" varchar(20) NOT NULL '
        'UNIQUE, "amount" integer NULL)')
NEW_ITEM = ('CREATE TABLE "item" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "code" varchar(20) NOT NULL '
            'UNIQUE, "amount" text NOT NULL)')
COPY = {"id": '"id"', "code": '"code"', "amount": 'COALESCE("amount", 0)'}
ROWS = 300


def database(path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(ITEM)
    conn.execute('CREATE INDEX "item_amount" ON "item" ("amount")')
    conn.execute('CREATE VIEW "item_codes" AS SELECT "code" FROM "item"')
    conn.executemany("INSERT INTO item (code, amount) VALUES (?, ?)", [(f"c{i}", i) for i in range(ROWS)])
    return conn


def rebuild_module() -> Migration:
    return Migration("0002_item", up=[RebuildTable("item", NEW_ITEM, COPY)], down=None, table="item")


@pytest.fixture
def connects(monkeypatch):
    """Every sqlite3.connect made while the test runs, by its first argument."""
    made: list[str] = []
    real = sqlite3.connect

    def connect(database, *args, **kwargs):
        made.append(str(database))
        return real(database, *args, **kwargs)

    monkeypatch.setattr(sqlite3, "connect", connect)
    return made


def test_online_plan_asks_one_scratch_database(tmp_path, settings, connects):
    """`online.plan` (which `show` runs too) once opened a throwaway in-memory database per question
    (the layout of each definition, twice or three times, its keys, its copy expressions, each text
    without its foreign keys): about ten per call. One scratch database answers them all now."""
    settings.TABLEMIGRATE_ONLINE_REBUILD_ROWS = 100
    conn = database(tmp_path / "db.sqlite3")
    connects.clear()
    work = online.plan(conn, rebuild_module(), "up")
    assert work is not None  # every question was asked, and answered yes
    assert connects == [":memory:"]


def test_both_rebuilds_swap_through_one_procedure(tmp_path, settings, monkeypatch):
    """`RebuildTable` (one transaction) and the online rebuild put the new table in place with the same
    `rebuild.swap`: dependents and the AUTOINCREMENT counter carried, counts and objects checked."""
    settings.TABLEMIGRATE_ONLINE_REBUILD_ROWS = 100
    swaps: list[tuple[str, str | None]] = []
    real = rebuild.swap

    def swap(conn, table, new, fill, **kwargs):
        swaps.append((table, kwargs.get("aside")))
        return real(conn, table, new, fill, **kwargs)

    monkeypatch.setattr(rebuild, "swap", swap)
    for name, online_ok in (("one.sqlite3", False), ("online.sqlite3", True)):
        conn = database(tmp_path / name)
        conn.execute("DELETE FROM item WHERE id = ?", (ROWS,))  # the counter is ahead of max(id)
        assert apply_migration(conn, rebuild_module(), "up", online=online_ok)
        assert conn.execute("SELECT count(*) FROM item").fetchone()[0] == ROWS - 1
        assert conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'item'").fetchone()[0] == ROWS
        assert conn.execute("SELECT count(*) FROM item_codes").fetchone()[0] == ROWS - 1
        assert {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND "
                                           "tbl_name = 'item'")} >= {"item_amount"}
        conn.close()
    assert [aside is not None for table, aside in swaps] == [False, True]
    assert {table for table, _aside in swaps} == {"item"}


def test_the_in_place_alter_and_the_online_swap_edit_sqlite_schema_one_way(tmp_path, settings, monkeypatch):
    settings.TABLEMIGRATE_ONLINE_REBUILD_ROWS = 100
    edits: list[list[tuple]] = []
    real = rebuild.edit_schema
    monkeypatch.setattr(rebuild, "edit_schema", lambda conn, e: edits.append(e) or real(conn, e))
    conn = database(tmp_path / "db.sqlite3")
    wider = ITEM.replace("varchar(20)", "varchar(40)")
    alter = Migration("0002_wider", up=[AlterTableInPlace("item", wider, {c: f'"{c}"' for c in
                                                                          ("id", "code", "amount")})],
                      down=None, table="item")
    assert apply_migration(conn, alter, "up")
    assert [e[0][:3] for e in edits] == [("table", "item", "item")]
    assert "varchar(40)" in conn.execute("SELECT sql FROM sqlite_master WHERE name = 'item'").fetchone()[0]
    edits.clear()
    assert apply_migration(conn, rebuild_module(), "up", online=True)
    assert edits and ("table", "item", "item") in [e[:3] for e in edits[-1]]
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_edit_schema_refuses_a_name_another_object_has(tmp_path):
    """Both callers get the online swap's check (the in-place alter renames nothing, so it never
    needed it): a new name that another object has fails before anything is written."""
    conn = database(tmp_path / "db.sqlite3")
    conn.execute("BEGIN")
    version = conn.execute("PRAGMA schema_version").fetchone()[0]
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'item_amount'").fetchone()[0]
    with pytest.raises(sqlite3.IntegrityError, match="another object of the schema has that name"):
        rebuild.edit_schema(conn, [("index", "item_amount", "ITEM_CODES", sql)])
    assert conn.execute("PRAGMA schema_version").fetchone()[0] == version
    conn.execute("ROLLBACK")


def test_read_index_reads_what_its_callers_need():
    index = ddl.read_index('CREATE UNIQUE INDEX IF NOT EXISTS main."u i" ON "t" (lower(code) COLLATE nocase DESC, '
                           '"n") WHERE t.n IS NOT NULL;')
    assert index is not None
    assert (index.unique, index.if_not_exists, index.name, index.name_qualified, index.table) == (
        True, True, "u i", True, "t")
    assert not index.plain
    assert index.term_texts() == ["lower(code) COLLATE nocase", '"n"']
    assert [t.text for t in index.where] == ["t", ".", "n", "IS", "NOT", "NULL"]  # the `;` is not part of it
    assert ddl.read_index("CREATE TABLE t (x)") is None
    assert ddl.read_index("CREATE INDEX i") is None
    renamed = ddl.rename_index('CREATE INDEX "i" ON "t" ("x") WHERE "t".x > 0 AND main.T.y', "j", "u")
    assert renamed == 'CREATE INDEX "j" ON "u" ("x") WHERE x > 0 AND y'
    assert ddl.statement_table('CREATE TABLE IF NOT EXISTS "a b" (x)') == "a b"
    assert ddl.statement_table("CREATE INDEX i ON t (x)") == "t"


def test_without_foreign_keys_leaves_out_references_and_foreign_key_constraints():
    sql = ('CREATE TABLE t (a integer CONSTRAINT fk REFERENCES p (id) ON DELETE SET NULL DEFERRABLE INITIALLY '
           'DEFERRED NOT NULL, b integer, FOREIGN KEY (b) REFERENCES p (id))')
    assert ddl.without_foreign_keys(sql) == "CREATE TABLE t ( a integer NOT NULL , b integer )"


def test_a_unique_index_statement_ending_in_a_semicolon_is_checked():
    """A module's statement keeps its `;` (sqltext.split_statements): the partial index's WHERE no
    longer takes it along, which made the duplicate count a syntax error, silently skipped."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t (id integer PRIMARY KEY, code text, n text)")
    conn.executemany("INSERT INTO t (code, n) VALUES (?, ?)", [("a", "1"), ("a", "2"), ("b", None)])
    step = "CREATE UNIQUE INDEX u ON t (code) WHERE n IS NOT NULL;"
    findings = check(conn, [Migration("m1", [step], None)], "up")
    assert [(f.kind, f.message) for f in findings] == [
        ("violation", "1 duplicated value in t (code) under a new unique index (for example: 'a')")]
