"""Edges where data used to be lost silently (issue 11): reserved names, URIs, rebuild dependents,
the data check learning from SQLite, and the double-quoted-string misfeature (issue 16)."""

import sqlite3

import pytest

from tablemigrate.backups import backup as backups
from tablemigrate.errors import MigrationFailed
from tablemigrate.history.status import Target
from tablemigrate.project.build import private_database, raw
from tablemigrate.run import runner

from .helpers import module


def objects(conn):
    return sorted(conn.execute("SELECT type, name, sql FROM sqlite_master").fetchall())


# Reserved names: only the exact prefix `sqlite_` is SQLite's -------------------------------------------

SQLITE_LOOKALIKES = [
    'CREATE TABLE "SQLiteCache" (id integer PRIMARY KEY, email text, v text)',
    'CREATE UNIQUE INDEX "sqliteuniq_email" ON "SQLiteCache" (email)',
    'CREATE TABLE "SQLiteAudit" (at text)',
    'CREATE TRIGGER "SQLiteAudit_t" AFTER INSERT ON "SQLiteCache" BEGIN INSERT INTO "SQLiteAudit" VALUES (1); END',
]


def test_tables_named_like_sqlite_internals_can_be_migrated(project):
    target, d = project
    module(d, "0001_create", f"up = {SQLITE_LOOKALIKES!r}\n")
    runner.run(target, d)
    module(d, "0002_alter", "up = ['ALTER TABLE \"SQLiteCache\" ADD COLUMN w int']\n")
    runner.run(target, d)  # validation copied the table into the schema copy
    assert "w" in [r[1] for r in target.conn.execute('PRAGMA table_info("SQLiteCache")')]


def test_automatic_restore_keeps_lookalike_objects_and_drops_what_the_run_created(project):
    target, d = project
    module(d, "0001_create", f"up = {SQLITE_LOOKALIKES!r}\n")
    runner.run(target, d)
    target.conn.execute("INSERT INTO \"SQLiteCache\" (email) VALUES ('a@x')")
    before = objects(target.conn)
    module(d, "0002_new", "up = ['CREATE TABLE \"sqliteNew\" (x)']\n")
    module(d, "0003_bad", "up = [\"INSERT INTO \\\"SQLiteCache\\\" (email) VALUES ('a@x')\"]\n")  # UNIQUE fails
    with pytest.raises(MigrationFailed, match="restored from backup"):
        runner.run(target, d)
    assert objects(target.conn) == before  # the unique index and the trigger are back, sqliteNew is gone
    with pytest.raises(sqlite3.IntegrityError):
        target.conn.execute("INSERT INTO \"SQLiteCache\" (email) VALUES ('a@x')")


# Paths that are not plain URIs ---------------------------------------------------------------------

@pytest.mark.parametrize("directory", ["a#b", "q?mode=rw", "p%41th", "sp ace"])
def test_backup_and_restore_in_a_directory_whose_name_breaks_naive_uris(tmp_path, directory):
    home = tmp_path / directory
    home.mkdir()
    live = sqlite3.connect(home / "app.sqlite3", isolation_level=None)
    live.execute("CREATE TABLE t (v)")
    live.execute("INSERT INTO t VALUES ('kept')")
    saved = backups.take_backup(live, home / "backups" / "b.sqlite3")
    backups.verify(saved)
    live.execute("DELETE FROM t")
    backups.restore(live, saved)
    assert live.execute("SELECT v FROM t").fetchall() == [("kept",)]
    # Nothing was created beside the directory (a naive URI cut at '#' or '?' opens another path).
    assert sorted(p.name for p in tmp_path.iterdir()) == [directory]


# A rebuild carries every dependent object, transitively -------------------------------------------

ITEM = 'CREATE TABLE item (id integer PRIMARY KEY, name varchar(10) NOT NULL)'
WIDEN = ("from tablemigrate.operations import RebuildTable\n"
         "up = [RebuildTable('item', 'CREATE TABLE \"item\" (\"id\" integer PRIMARY KEY, \"name\" varchar(20) NOT NULL)', "
         "{'id': '\"id\"', 'name': '\"name\"'})]\n")


def test_rebuild_keeps_instead_of_triggers_and_views_on_views(project):
    target, d = project
    module(d, "0001_create", "up = " + repr([
        ITEM, "INSERT INTO item (name) VALUES ('a')",
        "CREATE VIEW item_v AS SELECT id, name FROM item",
        "CREATE VIEW item_vv AS SELECT name FROM item_v",  # a view on a view: not mentioning item
        "CREATE TRIGGER item_v_ins INSTEAD OF INSERT ON item_v BEGIN INSERT INTO item (name) VALUES (new.name); END",
        "CREATE TRIGGER item_vv_ins INSTEAD OF INSERT ON item_vv BEGIN INSERT INTO item_v (name) VALUES (new.name); END",
    ]) + "\n")
    runner.run(target, d)
    before = objects(target.conn)
    module(d, "0002_widen", WIDEN)
    runner.run(target, d)
    after = objects(target.conn)
    assert [o for o in after if o[1] != "item"] == [o for o in before if o[1] != "item"]
    target.conn.execute("INSERT INTO item_vv (name) VALUES ('through two views')")  # the triggers work
    assert target.conn.execute("SELECT name FROM item ORDER BY id").fetchall() == [("a",), ("through two views",)]


def test_a_rebuild_that_would_lose_a_schema_object_rolls_back(project, monkeypatch):
    from tablemigrate.sqlite import rebuild

    target, d = project
    module(d, "0001_create", "up = " + repr([
        ITEM, "INSERT INTO item (name) VALUES ('a')", "CREATE VIEW item_v AS SELECT id, name FROM item",
        "CREATE TRIGGER item_v_ins INSTEAD OF INSERT ON item_v BEGIN INSERT INTO item (name) VALUES (new.name); END",
    ]) + "\n")
    runner.run(target, d)
    before = objects(target.conn)
    real = rebuild.dependents
    monkeypatch.setattr(rebuild, "dependents",  # a carrier that forgets the trigger on the view
                        lambda conn, table: (real(conn, table)[0], [x for x in real(conn, table)[1] if x[0] == "view"]))
    module(d, "0002_widen", WIDEN)
    with pytest.raises(MigrationFailed, match="would lose trigger item_v_ins"):
        runner.run(target, d)
    assert objects(target.conn) == before


# A copy never turns a missing name into a string (issue 16) ---------------------------------------

NOTE = 'CREATE TABLE app_item (id integer PRIMARY KEY, name text, note varchar(10))'
WIDEN_NOTE = ("from tablemigrate.operations import RebuildTable\n"
              "up = [RebuildTable('app_item', 'CREATE TABLE \"app_item\" (\"id\" integer PRIMARY KEY, \"name\" text, "
              "\"note\" varchar(40))', {'id': '\"id\"', 'name': '\"name\"', 'note': '\"note\"'})]\n")
DROP_NOTE = "up = ['ALTER TABLE app_item DROP COLUMN note']\n"


def two_items(target, d):
    module(d, "0001_create", "up = " + repr([NOTE, "INSERT INTO app_item (name) VALUES ('a'), ('b')"]) + "\n")
    runner.run(target, d)


def test_rebuild_after_an_earlier_pending_drop_of_its_column_is_refused(project):
    target, d = project
    two_items(target, d)
    module(d, "0002_drop_note", DROP_NOTE)  # sorts before the rebuild, pending in the same run
    module(d, "0003_widen_note", WIDEN_NOTE)
    before = objects(target.conn), target.conn.execute("SELECT * FROM app_item").fetchall()
    with pytest.raises(MigrationFailed, match=r"0003_widen_note.*reads note, which app_item does not have"):
        runner.run(target, d)
    assert (objects(target.conn), target.conn.execute("SELECT * FROM app_item").fetchall()) == before


def test_rebuild_generated_before_a_merged_branch_dropped_its_column_is_refused(project):
    target, d = project
    two_items(target, d)
    module(d, "0002_drop_note", DROP_NOTE)  # branch A, applied on staging
    runner.run(target, d, allow_destructive=True)
    module(d, "0001_widen_note", WIDEN_NOTE)  # branch B's module, merged afterwards
    before = objects(target.conn), target.conn.execute("SELECT * FROM app_item").fetchall()
    with pytest.raises(MigrationFailed, match=r"0001_widen_note.*reads note"):
        runner.run(target, d)
    assert (objects(target.conn), target.conn.execute("SELECT * FROM app_item").fetchall()) == before
    assert [r[1] for r in target.conn.execute("PRAGMA table_info(app_item)")] == ["id", "name"]


def test_rebuild_checks_its_sources_before_copying_a_row():
    from tablemigrate.errors import MissingSource
    from tablemigrate.operations import RebuildTable

    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE app_item (id integer PRIMARY KEY, name text)")
    conn.execute("INSERT INTO app_item (name) VALUES ('a')")
    step = RebuildTable("app_item", 'CREATE TABLE "app_item" ("id" integer PRIMARY KEY, "name" text, "note" text)',
                        {"id": '"id"', "name": '"name"', "note": 'upper("note")'})
    with pytest.raises(MissingSource, match="reads note"):
        step.apply(conn)
    assert conn.execute("SELECT name FROM sqlite_master").fetchall() == [("app_item",)]


def test_hand_written_double_quoted_string_is_refused_at_validation_with_module_and_step(project):
    from tablemigrate.errors import DoubleQuotedString

    target, d = project
    two_items(target, d)
    module(d, "0002_fill", "up = ['ALTER TABLE \"app_item\" ADD COLUMN \"status\" text', "
                           "'UPDATE \"app_item\" SET \"status\" = \"active\"']\n")
    before = target.conn.execute("SELECT * FROM app_item").fetchall()
    with pytest.raises(DoubleQuotedString, match=r"0002_fill \(up\) failed at step 2 .*\"active\".*read it as a string"):
        runner.run(target, d)
    assert target.conn.execute("SELECT * FROM app_item").fetchall() == before


# The data check learns what a statement drops from SQLite, not from its text ------------------------

@pytest.mark.parametrize("sql, loss", [
    ("DROP TABLE main.important", "dropping important deletes 2 rows"),
    ('DROP TABLE "main"."important"', "dropping important deletes 2 rows"),
    ('DROP TABLE IF EXISTS [important]', "dropping important deletes 2 rows"),
    ("ALTER TABLE main.important DROP COLUMN v", "2 values in important.v would be dropped"),
    ("INSERT INTO other SELECT v FROM important WHERE 0; DROP TABLE important",
     "dropping important deletes 2 rows (an earlier statement copies from it: confirm the copy keeps what you need)"),
])
def test_hand_written_losses_need_confirmation_whatever_the_spelling(project, sql, loss):
    from tablemigrate.errors import NotConfirmed

    target, d = project
    module(d, "0001_create", "up = ['CREATE TABLE important (id integer PRIMARY KEY, v text)', 'CREATE TABLE other (v)', "
                             "\"INSERT INTO important (v) VALUES ('a'), ('b')\"]\n")
    runner.run(target, d)
    module(d, "0002_loss", f"up = [{sql!r}]\n")
    with pytest.raises(NotConfirmed, match=loss.replace("(", r"\(").replace(")", r"\)")):
        runner.run(target, d)  # as under `run --noinput`
    assert target.conn.execute("SELECT v FROM important ORDER BY id").fetchall() == [("a",), ("b",)]


def test_a_copy_that_overwrites_a_column_is_a_counted_loss():
    from tablemigrate.history.loader import Migration
    from tablemigrate.operations import RebuildTable
    from tablemigrate.run.datacheck import check

    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t (id integer PRIMARY KEY, name text, v text, n int)")
    conn.executemany("INSERT INTO t (name, v, n) VALUES (?, ?, ?)", [("a", "x", None), ("b", "y", None)])
    create = 'CREATE TABLE "t" ("id" integer PRIMARY KEY, "name" text, "v" text, "n" int)'
    # name is read (into v), but its own column gets a constant; n holds only NULLs and becomes 0
    step = RebuildTable("t", create, {"id": '"id"', "name": "'x'", "v": '"name"', "n": "0"})
    found = sorted(f.message for f in check(conn, [Migration("m", [step], None)]))
    assert found == ["2 values of t.n would change to 0 (for example: NULL -> 0, NULL -> 0)",
                     "2 values of t.name would change to 'x' (for example: 'a' -> 'x', 'b' -> 'x')",
                     "2 values of t.v would change to \"name\" (for example: 'x' -> 'a', 'y' -> 'b')"]


# Property: a copy map naming a column dropped earlier is always refused, never applied ------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

NAMES = st.text(st.sampled_from('abcxyz_ "\'`[]'), min_size=1, max_size=6).filter(
    lambda n: n.strip() and n.lower() not in ("id", "rowid", "oid", "_rowid_"))


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(columns=st.lists(NAMES, min_size=2, max_size=5, unique_by=str.lower), data=st.data())
def test_property_copy_of_a_dropped_column_is_refused(columns, data):
    import tempfile
    from pathlib import Path

    from tablemigrate.sqlite.sqltext import quote

    dropped = data.draw(st.lists(st.sampled_from(columns), min_size=1, max_size=len(columns) - 1, unique=True))
    rows = data.draw(st.lists(st.tuples(*[st.one_of(st.none(), st.text(max_size=4), st.integers(-2**63, 2**63 - 1))
                                          for _ in columns]), max_size=4))
    same_run = data.draw(st.booleans())
    definition = ", ".join(f"{quote(c)} text" for c in columns)
    wider = ", ".join(f"{quote(c)} varchar(99)" for c in columns)
    copy = {"id": quote("id"), **{c: quote(c) for c in columns}}
    with tempfile.TemporaryDirectory() as tmp, private_database(str(Path(tmp) / "app.sqlite3")) as db:
        target, d = Target("default", raw(db), Path(tmp) / "app.sqlite3"), Path(tmp) / "tablemigrations"
        inserts = [f"INSERT INTO t VALUES ({i}, {', '.join('?' * len(columns))})" for i, _r in enumerate(rows)]
        module(d, "0001_create", f"up = [{f'CREATE TABLE t (id integer PRIMARY KEY, {definition})'!r}]\n")
        runner.run(target, d)
        for sql, row in zip(inserts, rows):
            target.conn.execute(sql, row)
        module(d, "0002_drop", "up = " + repr([f"ALTER TABLE t DROP COLUMN {quote(c)}" for c in dropped]) + "\n")
        if not same_run:
            runner.run(target, d, allow_destructive=True)
        module(d, "0003_rebuild", "from tablemigrate.operations import RebuildTable\n"
               f"up = [RebuildTable('t', {f'CREATE TABLE t (id integer PRIMARY KEY, {wider})'!r}, {copy!r})]\n")
        before = list(target.conn.iterdump())
        with pytest.raises(MigrationFailed, match="0003_rebuild.*reads .*which t does not have"):
            runner.run(target, d, allow_destructive=True)
        assert list(target.conn.iterdump()) == before


def test_an_index_on_a_column_an_earlier_migration_dropped_is_refused_not_built_on_a_string(project):
    target, d = project
    two_items(target, d)
    module(d, "0002_drop_note", DROP_NOTE)
    module(d, "0003_index_note", "up = ['CREATE INDEX \"app_item_note\" ON \"app_item\" (\"note\")']\n")
    with pytest.raises(MigrationFailed, match="0003_index_note.*no such column: note"):
        runner.run(target, d, allow_destructive=True)  # SQLite alone indexes the constant 'note'
    assert [r[1] for r in target.conn.execute("PRAGMA table_info(app_item)")] == ["id", "name", "note"]


# Found by an independent review: earlier writes and renames never hide a later loss ---------------------

IMPORTANT = ("up = ['CREATE TABLE important (id integer PRIMARY KEY, v text, name text COLLATE NOCASE)', "
             "\"INSERT INTO important (v, name) VALUES ('a', 'Alice'), ('b', 'Bob')\"]\n")
REBUILD = "from tablemigrate.operations import RebuildTable, RunPython\n"
SAME = 'CREATE TABLE "important" ("id" integer PRIMARY KEY, "v" text, "name" text COLLATE NOCASE)'


@pytest.mark.parametrize("modules, loss", [
    (["up = ['UPDATE important SET v = v WHERE 0; DROP TABLE important']"], "dropping important deletes 2 rows"),
    (["up = ['DELETE FROM important WHERE 0']", "up = ['DROP TABLE important']"], "dropping important deletes 2 rows"),
    ([REBUILD + "up = [RunPython(lambda db: None), 'DROP TABLE important']"], "dropping important deletes 2 rows"),
    ([REBUILD + "up = ['UPDATE important SET name = name', RebuildTable('important', "
      "'CREATE TABLE \"important\" (\"id\" integer PRIMARY KEY, \"name\" text)', {'id': '\"id\"', 'name': '\"name\"'})]"],
     "2 values in important.v would be dropped"),
    (["up = ['ALTER TABLE important RENAME TO archived']", "up = ['DROP TABLE archived']"],
     "dropping archived deletes 2 rows"),
    (["up = ['ALTER TABLE important RENAME COLUMN v TO w']", "up = ['ALTER TABLE important DROP COLUMN w']"],
     "2 values in important.w would be dropped"),
    ([REBUILD + f"up = [RebuildTable('important', {SAME!r}, "
      "{'id': '\"id\"', 'v': '\"v\"', 'name': 'lower(\"name\")'})]"],  # NOCASE must not hide Alice -> alice
     "2 values of important.name would change to lower(\"name\")"),
])
def test_losses_after_earlier_writes_and_renames_still_need_confirmation(project, modules, loss):
    from tablemigrate.errors import NotConfirmed

    target, d = project
    module(d, "0001_create", IMPORTANT)
    runner.run(target, d)
    for number, text in enumerate(modules, 2):
        module(d, f"000{number}_step", text + "\n")
    before = target.conn.execute("SELECT * FROM important").fetchall()
    with pytest.raises(NotConfirmed, match=loss.replace("(", r"\(").replace(")", r"\)")):
        runner.run(target, d)
    assert target.conn.execute("SELECT * FROM important").fetchall() == before


def test_a_rebuild_into_a_replace_conflict_clause_fails_instead_of_deleting_rows():
    from tablemigrate.operations import RebuildTable

    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE item (id integer PRIMARY KEY, email text, v text)")
    conn.execute("INSERT INTO item VALUES (1, 'a@x', NULL), (2, 'a@x', 'b')")
    copy = {"id": '"id"', "email": '"email"', "v": '"v"'}
    for create in ('CREATE TABLE "item" ("id" integer PRIMARY KEY, "email" text UNIQUE ON CONFLICT REPLACE, "v" text)',
                   'CREATE TABLE "item" ("id" integer PRIMARY KEY, "email" text, "v" text NOT NULL ON CONFLICT REPLACE '
                   "DEFAULT 'x')"):
        conn.execute("BEGIN")
        with pytest.raises(sqlite3.IntegrityError):
            RebuildTable("item", create, copy).apply(conn)
        conn.execute("ROLLBACK")
        assert conn.execute("SELECT * FROM item").fetchall() == [(1, "a@x", None), (2, "a@x", "b")]


def test_dropping_a_virtual_table_is_judged_by_its_own_rows_not_its_shadow_tables(project):
    from tablemigrate.errors import NotConfirmed

    target, d = project
    module(d, "0001_create", "up = ['CREATE VIRTUAL TABLE ft USING fts5(body)', 'CREATE VIRTUAL TABLE full USING fts5(body)', "
                             "\"INSERT INTO full VALUES ('x')\"]\n")
    runner.run(target, d)
    module(d, "0002_drop_empty", "up = ['DROP TABLE ft']\n")
    runner.run(target, d)  # nothing to lose: no confirmation
    module(d, "0003_drop_full", "up = ['DROP TABLE full']\n")
    with pytest.raises(NotConfirmed, match=r"dropping full deletes 1 row(?!s)") as refused:
        runner.run(target, d)
    assert "full_data" not in str(refused.value)
