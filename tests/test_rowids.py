"""Issue 22 (D1): a rebuild keeps the hidden rowid of every row of a table without an INTEGER PRIMARY KEY.

Such a table (a Django model whose primary key is a CharField or UUIDField, or a plain table) numbers its
rows with a rowid no column holds; an INSERT ... SELECT without it numbers them afresh, and an FTS5
external-content index keyed by them then points at other rows (or none), with `run` exiting 0. Every
copy path keeps them: the one statement, the transfer of `SELECT *`, the chunks shown on a terminal and
the online rebuild's chunks and catch-up."""

from __future__ import annotations

import io
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tablemigrate import operations, progress
from tablemigrate.errors import MigrationFailed
from tablemigrate.history.loader import Migration
from tablemigrate.history.status import Target
from tablemigrate.operations import RebuildTable
from tablemigrate.run import online, runner
from tablemigrate.run.apply import apply_migration

from .test_online import small_chunks  # noqa: F401 (a fixture)

DOC = 'CREATE TABLE "doc" ("title" text NOT NULL)'
CHAR_PK = 'CREATE TABLE "doc" ("title" varchar(20) NOT NULL PRIMARY KEY)'
# name -> (live definition, new definition, copy, the name of the hidden rowid)
CASES = {
    "column added": (DOC, 'CREATE TABLE "doc" ("title" text NOT NULL, "body" text NULL)', {"title": '"title"'},
                     "rowid"),
    # the same columns: `INSERT INTO new SELECT * FROM doc`, SQLite's transfer, which numbers rows afresh
    # when the new table has no index
    "same columns": (DOC, 'CREATE TABLE "doc" ("title" varchar(99) NOT NULL)', {"title": '"title"'}, "rowid"),
    "with an index": (DOC, 'CREATE TABLE "doc" ("title" text NOT NULL, "n" integer NOT NULL DEFAULT 0)',
                      {"title": '"title"'}, "rowid"),
    "char primary key": (CHAR_PK, 'CREATE TABLE "doc" ("title" varchar(40) NOT NULL PRIMARY KEY, "n" integer NULL)',
                         {"title": '"title"'}, "rowid"),
    "char primary key, same columns": (CHAR_PK, CHAR_PK.replace("20", "40"), {"title": '"title"'}, "rowid"),
    # a column takes the name `rowid`: the hidden one is `_rowid_`
    "a column named rowid": ('CREATE TABLE "doc" ("title" text NOT NULL, "rowid" text NULL)',
                             'CREATE TABLE "doc" ("title" text NOT NULL, "rowid" text NULL, "body" text NULL)',
                             {"title": '"title"', "rowid": '"rowid"'}, "_rowid_"),
}


def filled(conn: sqlite3.Connection, case: str, rows: int, gone: set[int]) -> None:
    conn.execute(CASES[case][0])
    if case == "with an index":
        conn.execute('CREATE INDEX "doc_title" ON "doc" ("title")')
    conn.execute("BEGIN")
    conn.executemany('INSERT INTO "doc" ("title") VALUES (?)', [(f"t{i:05d}",) for i in range(1, rows + 1)])
    conn.executemany('DELETE FROM "doc" WHERE "title" = ?', [(f"t{i:05d}",) for i in gone])  # gaps
    conn.execute("COMMIT")


def numbered(conn: sqlite3.Connection, case: str) -> list[tuple]:
    name = CASES[case][3]
    return conn.execute(f'SELECT {name}, "title" FROM "doc" ORDER BY {name}').fetchall()


def rebuild(conn: sqlite3.Connection, case: str, shown: bool) -> str:
    """What the display showed (the copy in chunks of PROGRESS_CHUNK rows, when `shown`)."""
    _live, new, copy, _name = CASES[case]
    migration = Migration("0002_doc", up=[RebuildTable("doc", new, copy)], down=None, table="doc")
    screen = io.StringIO()
    with progress.reporting(progress.Progress(screen, enabled=shown, interval=0)):
        assert apply_migration(conn, migration, "up")
    return screen.getvalue()


@pytest.mark.parametrize("shown", [False, True], ids=["one statement", "chunks shown"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_rebuild_in_one_transaction_keeps_every_hidden_rowid(monkeypatch, case, shown):
    monkeypatch.setattr(operations, "PROGRESS_CHUNK", 7)
    conn = sqlite3.connect(":memory:", isolation_level=None)
    filled(conn, case, 40, {1, 2, 9, 17, 18, 33})
    before = numbered(conn, case)
    screen = rebuild(conn, case, shown)
    assert numbered(conn, case) == before
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # (a column named `rowid` makes the copy one statement: the chunks go by `rowid`)
    assert ("rebuilding doc: 34/34 rows copied" in screen) == (shown and case != "a column named rowid")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(sorted(CASES)), shown=st.booleans(), rows=st.integers(0, 30), data=st.data())
def test_property_no_copy_path_renumbers_a_hidden_rowid(case, shown, rows, data):
    gone = data.draw(st.sets(st.integers(1, max(rows, 1)), max_size=rows))
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(operations, "PROGRESS_CHUNK", data.draw(st.integers(1, 8)))
        conn = sqlite3.connect(":memory:", isolation_level=None)
        filled(conn, case, rows, gone)
        before = numbered(conn, case)
        rebuild(conn, case, shown)
        assert numbered(conn, case) == before


def test_a_rebuild_that_gives_the_table_an_integer_primary_key_numbers_by_it():
    """Not a hidden rowid any more: the new column holds the rowid, and the copy gives it its values."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    filled(conn, "column added", 5, {2})
    assert apply_migration(conn, Migration("0002", up=[RebuildTable(
        "doc", 'CREATE TABLE "doc" ("id" integer NOT NULL PRIMARY KEY, "title" text NOT NULL)',
        {"id": 'rowid + 100', "title": '"title"'})], down=None, table="doc"), "up")
    assert conn.execute("SELECT rowid, id, title FROM doc ORDER BY id").fetchall() == [
        (101, 101, "t00001"), (103, 103, "t00003"), (104, 104, "t00004"), (105, 105, "t00005")]


# --- online --------------------------------------------------------------------------------------------

ROWS = 3000


def wal_database(path, case: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    filled(conn, case, ROWS, set(range(1, ROWS, 13)) | {ROWS})
    return conn


def writing_application(path, monkeypatch, case: str, extra=None) -> tuple[sqlite3.Connection, list[int]]:
    """Another connection that writes between the rebuild's transactions (until the swap), and a
    reference database that receives the same writes and no migration: its rowids are the ones the
    application's rows must keep."""
    app = sqlite3.connect(path, isolation_level=None)
    reference = wal_database(path.parent / "reference.sqlite3", case)
    turns = [0]
    real = online.run

    def run(conn, work, begin, finish):
        def begin_after_the_application():
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (work.tmp,)).fetchone():
                turns[0] += 1
                n = turns[0]
                for c in (app, reference):
                    c.execute('INSERT INTO "doc" ("title") VALUES (?)', (f"new{n}",))
                    c.execute('UPDATE "doc" SET "title" = "title" || \'!\' WHERE rowid = ?', (n * 40,))
                    c.execute('DELETE FROM "doc" WHERE rowid = ?', (n * 40 + 1,))
                    # the last row deleted: the next insert takes its rowid again
                    c.execute('DELETE FROM "doc" WHERE rowid = (SELECT max(rowid) FROM "doc")')
                if extra:
                    extra(n, app)
            begin()
        return real(conn, work, begin_after_the_application, finish)
    monkeypatch.setattr(online, "run", run)
    return reference, turns


@pytest.mark.parametrize("case", ["column added", "char primary key"])
def test_an_online_rebuild_keeps_every_hidden_rowid_while_the_application_writes(tmp_path, monkeypatch,
                                                                                small_chunks, case):
    conn = wal_database(tmp_path / "db.sqlite3", case)
    reference, turns = writing_application(tmp_path / "db.sqlite3", monkeypatch, case)
    _live, new, copy, _name = CASES[case]
    migration = Migration("0002_doc", up=[RebuildTable("doc", new, copy)], down=None, table="doc")
    assert online.plan(conn, migration, "up") is not None  # the online path, not one transaction
    assert apply_migration(conn, migration, "up", online=True)
    assert turns[0] > 10  # the application wrote between many chunks
    assert numbered(conn, case) == numbered(reference, case)  # every row under its rowid
    assert {"body" if case == "column added" else "n"} < {r[1] for r in conn.execute('PRAGMA table_info("doc")')}
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_vacuum_during_an_online_copy_of_hidden_rowids_fails_it_and_keeps_every_write(tmp_path, monkeypatch,
                                                                                       small_chunks):
    """A VACUUM may renumber hidden rowids (here: the table has no index), of the live table and of the
    copy each its own way, while the log and the chunks go by rowid: the copy fails, safely."""
    conn = wal_database(tmp_path / "db.sqlite3", "column added")

    def vacuum(n, app):
        if n == 4:
            for c in (app, reference):
                c.execute("VACUUM")  # the same rows: renumbered the same way
        assert numbered(app, "column added") == numbered(reference, "column added")
    reference, turns = writing_application(tmp_path / "db.sqlite3", monkeypatch, "column added", vacuum)
    before = {r for r in conn.execute("SELECT type, name FROM sqlite_master")}
    _live, new, copy, _name = CASES["column added"]
    migration = Migration("0002_doc", up=[RebuildTable("doc", new, copy)], down=None, table="doc")
    assert online.plan(conn, migration, "up") is not None
    with pytest.raises(MigrationFailed, match="VACUUM"):
        apply_migration(conn, migration, "up", online=True)
    assert turns[0] >= 4  # (it failed after the VACUUM; the cleanup's transactions let the application in too)
    assert {r for r in conn.execute("SELECT type, name FROM sqlite_master")} == before  # nothing left
    assert numbered(conn, "column added") == numbered(reference, "column added")  # every write kept


# --- the reviewer's case: an FTS5 external-content index on the hidden rowids -----------------------------

def fts5() -> bool:
    try:
        sqlite3.connect(":memory:").execute("CREATE VIRTUAL TABLE f USING fts5(x)")
        return True
    except sqlite3.OperationalError:
        return False


@pytest.mark.skipif(not fts5(), reason="this SQLite has no FTS5")
def test_an_fts5_index_on_the_hidden_rowids_still_finds_its_rows_after_a_rebuild(tmp_path):
    m = tmp_path / "m"
    m.mkdir()
    (m / "0001_create.py").write_text('''up = ["CREATE TABLE doc (title text NOT NULL)",
 "CREATE VIRTUAL TABLE doc_fts USING fts5(title, content='doc')",
 "CREATE TRIGGER doc_ai AFTER INSERT ON doc BEGIN INSERT INTO doc_fts(rowid, title) VALUES (new.rowid, new.title); END",
 "CREATE TRIGGER doc_ad AFTER DELETE ON doc BEGIN INSERT INTO doc_fts(doc_fts, rowid, title) "
 "VALUES ('delete', old.rowid, old.title); END"]
''')
    conn = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    target = Target("default", conn, tmp_path / "db.sqlite3", tmp_path / "backups")
    runner.run(target, m, django=False)
    for title in ["apple pie", "banana bread", "cherry tart"]:
        conn.execute("INSERT INTO doc (title) VALUES (?)", (title,))
    conn.execute("DELETE FROM doc WHERE title = 'apple pie'")  # a gap: rowids 2 and 3 are left
    (m / "0002_rebuild.py").write_text('''from tablemigrate.operations import RebuildTable
up = [RebuildTable("doc", create="CREATE TABLE doc (title text NOT NULL, body text NULL)", copy={"title": '"title"'})]
down = None
''')
    assert [x.name for x in runner.run(target, m, django=False)] == ["0002_rebuild"]
    search = "SELECT doc.title FROM doc_fts JOIN doc ON doc.rowid = doc_fts.rowid WHERE doc_fts MATCH ?"
    assert conn.execute(search, ("cherry",)).fetchall() == [("cherry tart",)]
    assert conn.execute(search, ("banana",)).fetchall() == [("banana bread",)]
    conn.execute("INSERT INTO doc_fts(doc_fts, rank) VALUES ('integrity-check', 1)")  # raises if malformed
