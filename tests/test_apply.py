"""The applier and the 12-step rebuild: what must survive, and what must roll back."""

import os
import sqlite3

import pytest

from tablemigrate.errors import MigrationFailed
from tablemigrate.history.loader import Migration
from tablemigrate.operations import RebuildTable, RunPython
from tablemigrate.run.apply import SORTER_THREADS, apply_migration


@pytest.fixture
def conn():
    c = sqlite3.connect(":memory:", isolation_level=None)
    c.execute("PRAGMA foreign_keys = ON")
    c.execute("CREATE TABLE parent (id integer PRIMARY KEY AUTOINCREMENT, name text NOT NULL)")
    c.execute("CREATE TABLE child (id integer PRIMARY KEY, parent_id integer NOT NULL "
              "REFERENCES parent (id) ON DELETE CASCADE)")
    c.execute("CREATE INDEX parent_name ON parent (name) WHERE name <> ''")
    c.execute("CREATE TABLE audit (msg text)")
    c.execute("CREATE TRIGGER parent_ins AFTER INSERT ON parent BEGIN INSERT INTO audit VALUES ('p'); END")
    c.execute("CREATE TRIGGER child_ins AFTER INSERT ON child BEGIN "
              "INSERT INTO audit SELECT name FROM parent WHERE id = new.parent_id; END")
    c.execute("CREATE VIEW parent_names AS SELECT name FROM parent")
    for i in range(1, 6):
        c.execute("INSERT INTO parent (name) VALUES (?)", (f"n{i}",))
        c.execute("INSERT INTO child (parent_id) VALUES (?)", (i,))
    c.execute("DELETE FROM parent WHERE id = 5")  # cascades; sqlite_sequence keeps 5
    return c


REBUILD = RebuildTable("parent", 'CREATE TABLE "parent" ("id" integer PRIMARY KEY AUTOINCREMENT, '
                                 '"name" text NOT NULL, "note" text NULL)', {"id": '"id"', "name": '"name"'})


def objects(c):
    return sorted(c.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall())


def test_rebuild_keeps_children_indexes_triggers_views_and_sequence(conn):
    before = objects(conn)
    apply_migration(conn, Migration("m", [REBUILD], None, table="parent"))
    assert conn.execute("SELECT count(*) FROM child").fetchone()[0] == 4  # ON DELETE CASCADE did not fire
    assert objects(conn) == before
    assert [r[1] for r in conn.execute("PRAGMA table_info(parent)")] == ["id", "name", "note"]
    conn.execute("INSERT INTO parent (name) VALUES ('next')")
    assert conn.execute("SELECT max(id) FROM parent").fetchone()[0] == 6  # deleted id 5 not re-used
    assert conn.execute("SELECT count(*) FROM parent_names").fetchone()[0] == 5
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1


def test_failure_rolls_back_everything_and_names_the_statement(conn):
    dump = list(conn.iterdump())
    bad = Migration("m2", ["ALTER TABLE child ADD COLUMN x int", REBUILD, "INSERT INTO nowhere VALUES (1)"], None)
    with pytest.raises(MigrationFailed, match=r"m2 \(up\) failed at step 3 \[INSERT INTO nowhere"):
        apply_migration(conn, bad)
    assert list(conn.iterdump()) == dump
    assert not conn.in_transaction


def test_python_step_that_raises_after_writing_rolls_back(conn):
    dump = list(conn.iterdump())

    def writes_then_fails(db):
        db.execute("DELETE FROM child")
        raise RuntimeError("boom")

    with pytest.raises(MigrationFailed, match="RuntimeError: boom"):
        apply_migration(conn, Migration("m3", [RunPython(writes_then_fails)], None))
    assert list(conn.iterdump()) == dump


def test_foreign_key_violations_roll_back(conn):
    dump = list(conn.iterdump())
    with pytest.raises(MigrationFailed, match="foreign key violation"):
        apply_migration(conn, Migration("m4", ["DELETE FROM parent WHERE id = 1"], None, table="parent"))
    assert list(conn.iterdump()) == dump


def test_rebuild_that_would_lose_rows_is_refused(conn):
    narrowing = RebuildTable("parent", 'CREATE TABLE "parent" ("id" integer PRIMARY KEY, "name" text UNIQUE)',
                             {"id": "1", "name": '"name"'})
    with pytest.raises(MigrationFailed):
        apply_migration(conn, Migration("m5", [narrowing], None, table="parent"))
    assert conn.execute("SELECT count(*) FROM parent").fetchone()[0] == 4


def test_refuses_a_connection_inside_a_transaction(conn):
    conn.execute("BEGIN")
    with pytest.raises(MigrationFailed, match="already inside a transaction"):
        apply_migration(conn, Migration("m6", ["SELECT 1"], None))
    conn.execute("ROLLBACK")


def test_multi_statement_strings_run_one_statement_at_a_time(conn):
    apply_migration(conn, Migration("m7", ["CREATE TABLE a (x); CREATE TRIGGER t AFTER INSERT ON a "
                                           "BEGIN INSERT INTO audit VALUES ('a;'); END;"], None))
    conn.execute("INSERT INTO a VALUES (1)")
    assert conn.execute("SELECT count(*) FROM audit WHERE msg = 'a;'").fetchone()[0] == 1


def test_rebuild_never_drops_a_user_table_named_like_its_temp_table(conn):
    conn.execute("CREATE TABLE new__parent (x)")
    conn.execute("INSERT INTO new__parent VALUES (42)")
    apply_migration(conn, Migration("m8", [REBUILD], None, table="parent"))
    assert conn.execute("SELECT x FROM new__parent").fetchall() == [(42,)]
    assert [r[1] for r in conn.execute("PRAGMA table_info(parent)")] == ["id", "name", "note"]


def test_rebuild_keeps_the_sequence_whatever_the_case_of_the_name(conn):
    rebuild = RebuildTable("PARENT", REBUILD.create.replace('"parent"', '"PARENT"'), REBUILD.copy)
    apply_migration(conn, Migration("m9", [rebuild], None, table="parent"))
    conn.execute("INSERT INTO parent (name) VALUES ('next')")
    assert conn.execute("SELECT max(id) FROM parent").fetchone()[0] == 6


def _copies_run(conn, rebuild, name):
    seen = []
    conn.set_trace_callback(seen.append)
    apply_migration(conn, Migration(name, [rebuild], None, table=rebuild.table))
    conn.set_trace_callback(None)
    return [s for s in seen if s.startswith("INSERT OR ABORT INTO")]


def test_whole_row_copy_uses_sqlites_transfer_and_keeps_every_value(conn):
    conn.execute("CREATE TABLE item (id integer PRIMARY KEY, code varchar(20) NOT NULL, n integer, b blob)")
    rows = [(1, "a", 7, b"\x00\x01"), (5, "007", None, None), (9, "x" * 50, 3, b"")]
    conn.executemany("INSERT INTO item VALUES (?, ?, ?, ?)", rows)
    widen = RebuildTable("item", 'CREATE TABLE "item" ("id" integer PRIMARY KEY, "code" varchar(40) NOT NULL, '
                                 '"n" integer, "b" blob)', {c: f'"{c}"' for c in ("id", "code", "n", "b")})
    conn.execute(widen.create.replace('"item"', "probe"))  # SQLite copies stored records: no decoding
    assert "RowData" in {r[1] for r in conn.execute('EXPLAIN INSERT OR ABORT INTO probe SELECT * FROM "item"')}
    conn.execute("DROP TABLE probe")
    copies = _copies_run(conn, widen, "w")
    assert copies == ['INSERT OR ABORT INTO "new__item" SELECT * FROM "item"']
    assert conn.execute("SELECT * FROM item ORDER BY id").fetchall() == rows
    assert "varchar(40)" in conn.execute("SELECT sql FROM sqlite_master WHERE name = 'item'").fetchone()[0]


def test_copy_names_the_columns_when_the_order_or_the_values_differ(conn):
    conn.execute("CREATE TABLE item (id integer PRIMARY KEY, a text, b text)")
    conn.execute("INSERT INTO item VALUES (1, 'A', 'B')")
    reorder = RebuildTable("item", 'CREATE TABLE "item" ("id" integer PRIMARY KEY, "b" text, "a" text)',
                           {"id": '"id"', "b": '"b"', "a": '"a"'})
    # Double-quoted names run in backticks: a name that is not there is an error, never a string.
    assert _copies_run(conn, reorder, "r") == ['INSERT OR ABORT INTO "new__item" ("id", "b", "a") SELECT `id`, `b`, `a` '
                                               'FROM "item"']
    assert conn.execute("SELECT id, a, b FROM item").fetchall() == [(1, "A", "B")]
    upper = RebuildTable("item", reorder.create, {"id": '"id"', "b": 'upper("b")', "a": '"a"'})
    assert "SELECT *" not in _copies_run(conn, upper, "u")[0]


def test_sorter_threads_are_on_while_a_migration_runs_and_restored_after(conn):
    seen = []
    during = RunPython(lambda db: seen.append(db.execute("PRAGMA threads").fetchone()[0]))
    apply_migration(conn, Migration("t", [during], None))
    assert seen == [SORTER_THREADS] and (SORTER_THREADS == 1 or os.cpu_count() == 1)
    assert conn.execute("PRAGMA threads").fetchone()[0] == 0
