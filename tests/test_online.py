"""Copying rebuilds of big tables keep the application writable (issue 15, online.py): the copy runs
in short transactions while the application writes, and not one of its committed writes is lost."""

from __future__ import annotations

import sqlite3

import pytest

from tablemigrate.errors import MigrationFailed
from tablemigrate.history.loader import Migration
from tablemigrate.operations import RebuildTable
from tablemigrate.run import online
from tablemigrate.run.apply import apply_migration
from tablemigrate.sqlite.introspect import introspect

OWNER = 'CREATE TABLE "owner" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" text NOT NULL)'
ITEM = ('CREATE TABLE "item" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "owner_id" integer NOT NULL '
        'REFERENCES "owner" ("id") DEFERRABLE INITIALLY DEFERRED, "code" varchar(20) NOT NULL UNIQUE, '
        '"amount" integer NULL, "note" text NULL)')
# `amount` becomes text (another affinity: a copy), NOT NULL with 0 for NULLs; `note` is dropped.
NEW_ITEM = ('CREATE TABLE "item" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "owner_id" integer NOT NULL '
            'REFERENCES "owner" ("id") DEFERRABLE INITIALLY DEFERRED, "code" varchar(20) NOT NULL UNIQUE, '
            '"amount" text NOT NULL)')
# ... and refusing a code longer than 20 characters (a CHECK the application can break mid-copy).
STRICT_ITEM = NEW_ITEM.replace('"amount" text NOT NULL)', '"amount" text NOT NULL, CHECK (length("code") <= 20))')
COPY = {"id": '"id"', "owner_id": '"owner_id"', "code": '"code"', "amount": 'COALESCE("amount", 0)'}
ROWS = 3000


def database(path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(OWNER)
    conn.execute(ITEM)
    conn.execute('CREATE INDEX "item_owner_id" ON "item" ("owner_id")')
    conn.execute('CREATE INDEX "item_note" ON "item" ("note")')
    conn.execute('CREATE TABLE "tag" ("id" integer PRIMARY KEY, "item_id" integer REFERENCES "item" ("id"))')
    conn.execute('CREATE TRIGGER "item_touch" AFTER UPDATE ON "item" BEGIN SELECT 1; END')
    conn.execute('CREATE VIEW "item_codes" AS SELECT "code" FROM "item"')
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO owner (name) VALUES (?)", [(f"o{i}",) for i in range(10)])
    conn.executemany("INSERT INTO item (owner_id, code, amount, note) VALUES (?, ?, ?, ?)",
                     [(i % 10 + 1, f"c{i}", None if i % 7 == 0 else i, "x") for i in range(ROWS)])
    conn.executemany("INSERT INTO tag (item_id) VALUES (?)", [(i,) for i in range(1000, 1050)])
    conn.execute("COMMIT")
    return conn


def module(*extra: str) -> Migration:
    return Migration("0002_item", up=['DROP INDEX "item_note"', RebuildTable("item", NEW_ITEM, COPY),
                                      'CREATE INDEX "item_amount" ON "item" ("amount")', *extra],
                     down=None, table="item")


@pytest.fixture
def small_chunks(monkeypatch, settings):
    settings.TABLEMIGRATE_ONLINE_REBUILD_ROWS = 1000
    monkeypatch.setattr(online, "FIRST_CHUNK", 200)
    monkeypatch.setattr(online, "CHUNK_SECONDS", 0.0001)  # many chunks: the application writes between them
    monkeypatch.setattr(online, "PAUSE_SECONDS", 0)


class Application:
    """Another connection that writes between the rebuild's transactions, as a web process would; every
    write is made on a reference copy of the database too, which no migration touches."""

    def __init__(self, path, monkeypatch):
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA foreign_keys = ON")  # as Django's connections
        self.reference = database(path.parent / "reference.sqlite3")
        for c in (self.conn, self.reference):  # (speed: an fsync per write is no part of what is tested)
            c.execute("PRAGMA synchronous = OFF")
        self.turn = 0
        real = online.run

        def run(conn, work, begin, finish):
            def begin_after_the_application():
                self.write()
                begin()
            return real(conn, work, begin_after_the_application, finish)
        monkeypatch.setattr(online, "run", run)

    def write(self) -> None:
        """Each turn: a new row, an update of an early and of a late row, a delete."""
        self.turn += 1
        n = self.turn
        old_code = "note" in {r[1] for r in self.conn.execute("PRAGMA table_info(item)")}
        for c in (self.conn, self.reference):
            c.execute("INSERT INTO item (owner_id, code, amount) VALUES (1, ?, ?)", (f"new{n}", n))
            if old_code:  # after the swap the old code stops (it would write NULLs the new table refuses)
                c.execute("UPDATE item SET amount = amount + 1000, code = code || '!' WHERE id = ?", (n * 3,))
                c.execute("UPDATE item SET amount = NULL WHERE id = ?", (ROWS - n * 5,))
                c.execute("DELETE FROM item WHERE id = ?", (n * 3 + 1,))
                # a UNIQUE value moves from a copied row to a new one (copied later, or at the swap)
                c.execute("UPDATE item SET code = 'moved' || ? WHERE id = ?", (n, n * 3 + 2))
                c.execute("INSERT INTO item (owner_id, code) VALUES (1, ?)", (f"c{n * 3 + 1}",))

    def at_turn(self, turn: int, action) -> None:
        """After its usual writes of turn `turn`, the application also runs `action()`."""
        usual = self.write

        def write() -> None:
            usual()
            if self.turn == turn:
                action()
        self.write = write  # type: ignore[method-assign]

    def expected(self) -> list[tuple]:
        """The reference's rows as the new definition holds them."""
        return self.reference.execute("SELECT id, owner_id, code, CAST(COALESCE(amount, 0) AS TEXT) FROM item "
                                      "ORDER BY id").fetchall()


def too_long_code(app) -> None:
    """A code the stricter definition refuses, written by the application on both its databases."""
    for c in (app.conn, app.reference):
        c.execute("UPDATE item SET code = 'a code far longer than twenty' WHERE id = 2")


def objects(conn) -> set[tuple[str, str]]:
    return {(t, n) for t, n in conn.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'")}


def test_every_write_of_the_application_during_the_copy_is_in_the_rebuilt_table(tmp_path, monkeypatch,
                                                                                small_chunks):
    conn = database(tmp_path / "db.sqlite3")
    app = Application(tmp_path / "db.sqlite3", monkeypatch)
    seq_before = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'item'").fetchone()[0]
    assert apply_migration(conn, module(), "up", online=True)
    assert app.turn > 10  # the application wrote between many chunks
    got = conn.execute("SELECT id, owner_id, code, amount FROM item ORDER BY id").fetchall()
    assert got == app.expected()  # every write the application committed, converted
    assert {"new1", f"new{app.turn}"} <= {r[2] for r in got} and (3, 3, "c2!", "1002") in got
    # the schema is exactly the one the module gives
    want = sqlite3.connect(":memory:")
    for sql in (OWNER, NEW_ITEM, 'CREATE INDEX "item_owner_id" ON "item" ("owner_id")',
                'CREATE INDEX "item_amount" ON "item" ("amount")'):
        want.execute(sql)
    assert introspect(conn).tables["item"] == introspect(want).tables["item"]
    names = objects(conn)
    assert ("trigger", "item_touch") in names and ("view", "item_codes") in names
    assert not [n for _t, n in names if n.startswith(online.PREFIX)]
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    # the tables that reference it still name it, and AUTOINCREMENT never goes back
    assert '"item"' in conn.execute("SELECT sql FROM sqlite_master WHERE name = 'tag'").fetchone()[0]
    assert conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'item'").fetchone()[0] >= seq_before + app.turn
    # the indexes work: a lookup through each one finds the row
    for sql in ("SELECT count(*) FROM item INDEXED BY item_amount WHERE amount = '1003'",
                "SELECT count(*) FROM item INDEXED BY item_owner_id WHERE owner_id = 1"):
        assert conn.execute(sql).fetchone()[0] > 0


def test_a_failure_during_the_copy_leaves_the_table_as_the_application_left_it(tmp_path, monkeypatch,
                                                                               small_chunks):
    conn = database(tmp_path / "db.sqlite3")
    app = Application(tmp_path / "db.sqlite3", monkeypatch)
    app.at_turn(5, lambda: too_long_code(app))  # a row the new definition refuses, written mid-copy
    before_objects = objects(conn)
    with pytest.raises(MigrationFailed, match="CHECK constraint failed"):
        apply_migration(conn, Migration("0002", up=[RebuildTable("item", STRICT_ITEM, COPY)], down=None, table="item"),
                        "up", online=True)
    assert app.turn > 5  # it failed after the application's write, not before
    assert objects(conn) == before_objects  # nothing of the rebuild is left
    every = "SELECT * FROM item ORDER BY id"
    assert conn.execute(every).fetchall() == app.reference.execute(every).fetchall()  # every write kept
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_what_a_killed_rebuild_leaves_is_dropped_before_the_next_one(tmp_path, small_chunks):
    conn = database(tmp_path / "db.sqlite3")
    before_objects = objects(conn)
    work = online.plan(conn, module(), "up")
    assert work is not None
    conn.execute("BEGIN IMMEDIATE")
    online._setup(conn, work)  # then the process is killed: the triggers keep logging
    conn.execute("COMMIT")
    other = sqlite3.connect(tmp_path / "db.sqlite3", isolation_level=None)
    other.execute("INSERT INTO item (owner_id, code) VALUES (1, 'while dead')")
    assert objects(conn) > before_objects
    assert online.clean_leftovers(conn)
    assert objects(conn) == before_objects
    other.execute("INSERT INTO item (owner_id, code) VALUES (1, 'after')")  # no trigger left to log it
    assert conn.execute("SELECT count(*) FROM item").fetchone()[0] == ROWS + 2


@pytest.mark.parametrize("case", ["journal", "threshold", "small", "other step", "key changed", "no rowid"])
def test_what_is_not_done_online_rebuilds_in_one_transaction(tmp_path, settings, small_chunks, case):
    conn = database(tmp_path / "db.sqlite3")
    m = module()
    if case == "journal":  # readers would block the application's writes: WAL only
        conn.execute("PRAGMA journal_mode = DELETE")
    elif case == "threshold":
        settings.TABLEMIGRATE_ONLINE_REBUILD_ROWS = None
    elif case == "small":
        settings.TABLEMIGRATE_ONLINE_REBUILD_ROWS = ROWS + 1
    elif case == "other step":  # a data step: the module must stay one transaction
        m = module("UPDATE item SET amount = '1'")
    elif case == "key changed":  # its foreign key changes: the application's own checks do not cover it
        m = Migration("0002", up=[RebuildTable("item", NEW_ITEM.replace(' REFERENCES "owner" ("id") DEFERRABLE '
                                                                         'INITIALLY DEFERRED', ''), COPY)],
                      down=None, table="item")
    else:
        m = Migration("0002", up=[RebuildTable("item", NEW_ITEM.replace("AUTOINCREMENT", "") + " WITHOUT ROWID",
                                               COPY)], down=None, table="item")
    assert online.plan(conn, m, "up") is None
    if case not in ("no rowid",):
        assert apply_migration(conn, m, "up", online=True)
        assert conn.execute("SELECT count(*) FROM item").fetchone()[0] == ROWS


def test_where_sqlite_refuses_to_write_the_schema_the_rebuild_runs_in_one_transaction(tmp_path, monkeypatch,
                                                                                       small_chunks):
    """The swap writes the real definitions into sqlite_schema: a connection that may not (defensive
    mode) rebuilds as before."""
    conn = database(tmp_path / "db.sqlite3")
    if hasattr(conn, "setconfig"):
        conn.setconfig(sqlite3.SQLITE_DBCONFIG_DEFENSIVE, True)
    else:
        conn.set_authorizer(lambda action, arg1, *_: sqlite3.SQLITE_IGNORE
                            if action == sqlite3.SQLITE_PRAGMA and arg1 == "writable_schema" else sqlite3.SQLITE_OK)
    assert online.plan(conn, module(), "up") is None
    assert apply_migration(conn, module(), "up", online=True)
    conn.set_authorizer(lambda *_: sqlite3.SQLITE_OK)
    names = {n for _t, n in objects(conn)}
    assert {"item_owner_id", "item_amount"} <= names and "item_note" not in names
    assert not [n for n in names if n.startswith(online.PREFIX)]
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_run_rebuilds_a_big_table_online_with_its_backup_and_history(tmp_path, small_chunks):
    from tablemigrate.history.status import Target
    from tablemigrate.project.build import private_database, raw
    from tablemigrate.run import runner

    from .helpers import module as write_module

    path = tmp_path / "app.sqlite3"
    database(path).close()
    d = tmp_path / "tablemigrations"
    write_module(d, "0002_item", "from tablemigrate.operations import RebuildTable\ntable = 'item'\n"
                 f"up = [RebuildTable('item', {NEW_ITEM!r}, {COPY!r})]\ndown = None\n")
    with private_database(str(path)) as db:
        conn = raw(db)
        started = []
        real = online.run
        with pytest.MonkeyPatch.context() as m:
            m.setattr(online, "run", lambda *a: started.append(1) or real(*a))
            assert [x.name for x in runner.run(Target("default", conn, path), d,
                                                               allow_destructive=True, django=False)] == ["0002_item"]
        assert started == [1]  # the online path, through the real run
        assert conn.execute("SELECT name FROM tablemigrate_history").fetchall() == [("0002_item",)]
        assert conn.execute("SELECT count(*) FROM item").fetchone()[0] == ROWS
        assert "amount\" text NOT NULL" in conn.execute("SELECT sql FROM sqlite_master WHERE name = 'item'").fetchone()[0]
        assert list((tmp_path / "backups").iterdir())  # the backup was taken first
        assert not conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'tablemigrate_online%'").fetchall()


def test_an_application_thread_writing_throughout_loses_nothing(tmp_path, settings, monkeypatch):
    """Real interleaving: a thread commits inserts and updates with Django's busy timeout while the
    rebuild runs with its real pauses; every committed write is in the rebuilt table."""
    import threading
    import time

    settings.TABLEMIGRATE_ONLINE_REBUILD_ROWS = 1000
    monkeypatch.setattr(online, "FIRST_CHUNK", 300)
    path = tmp_path / "db.sqlite3"
    conn = database(path)
    done, committed, errors = threading.Event(), [], []

    def application():
        c = sqlite3.connect(path, timeout=5, isolation_level=None)
        n = 0
        while not done.is_set():
            n += 1
            try:
                c.execute("BEGIN IMMEDIATE")
                c.execute("INSERT INTO item (owner_id, code, amount) VALUES (1, ?, ?)", (f"t{n}", n))
                c.execute("UPDATE item SET code = code || '+' WHERE id = ?", (n % ROWS + 1,))
                c.execute("COMMIT")
                committed.append((f"t{n}", n % ROWS + 1))
                time.sleep(0.005)  # a busy web process, not a loop that never lets the lock go
            except sqlite3.Error as exc:  # a write the new definition refuses after the swap is not one
                errors.append(exc)
                if c.in_transaction:
                    c.execute("ROLLBACK")
        c.close()

    thread = threading.Thread(target=application)
    thread.start()
    try:
        assert apply_migration(conn, module(), "up", online=True)
    finally:
        done.set()
        thread.join()
    assert len(committed) > 5 and not errors
    codes = {r[0] for r in conn.execute("SELECT code FROM item")}
    assert {code for code, _ in committed} <= codes
    plus = dict(conn.execute("SELECT id, length(code) - length(rtrim(code, '+')) FROM item"))
    touched: dict[int, int] = {}
    for _code, rid in committed:
        touched[rid] = touched.get(rid, 0) + 1
    assert all(plus[rid] == times for rid, times in touched.items())  # every update, exactly once
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


CHILD = """
import sys
sys.path.insert(0, {root!r})
from django.conf import settings
settings.configure(TABLEMIGRATE_ONLINE_REBUILD_ROWS=1000)
import django
django.setup()
import sqlite3
from tablemigrate.run import online
from tablemigrate.run.apply import apply_migration
from tests.test_online import module
online.FIRST_CHUNK, online.PAUSE_SECONDS = 100, 0.05
apply_migration(sqlite3.connect({path!r}, isolation_level=None), module(), "up", online=True)
"""


@pytest.mark.subprocess
def test_a_rebuild_killed_mid_copy_loses_nothing_and_the_next_one_finishes(tmp_path, small_chunks):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    path = tmp_path / "db.sqlite3"
    conn = database(path)
    before = conn.execute("SELECT * FROM item ORDER BY id").fetchall()
    root = str(Path(__file__).resolve().parent.parent)
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(root=root, path=str(path))], cwd=root)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not conn.execute(
                f"SELECT count(*) FROM {online._private('new', 'item')}" if conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE name = ?", (online._private("new", "item"),)).fetchone()
                else "SELECT 0").fetchone()[0]:
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)  # mid-copy: some chunks committed, triggers in place
    finally:
        child.wait()
    assert [n for _t, n in objects(conn) if n.startswith(online.PREFIX)]
    conn.execute("UPDATE item SET code = 'after the kill' WHERE id = 1")  # the application goes on
    assert conn.execute("SELECT * FROM item ORDER BY id").fetchall() == [(1, 1, "after the kill") + before[0][3:]] + before[1:]
    assert apply_migration(conn, module(), "up", online=True)  # drops the leftovers, then rebuilds
    assert not [n for _t, n in objects(conn) if n.startswith(online.PREFIX)]
    assert conn.execute("SELECT code, amount FROM item WHERE id = 1").fetchone() == ("after the kill", "0")
    assert conn.execute("SELECT count(*) FROM item").fetchone()[0] == ROWS


def test_show_says_which_pending_rebuild_runs_online(tmp_path, small_chunks, settings):
    from .test_edges_command import tm

    path = tmp_path / "db.sqlite3"
    database(path).close()
    settings.TABLEMIGRATE_MIGRATIONS_DIR = tmp_path / "m"
    from django.db import connections

    settings.DATABASES["edge"] = dict(connections["default"].settings_dict, NAME=str(path), TEST={})
    try:
        from .helpers import module as write_module

        write_module(tmp_path / "m", "0002_item", "from tablemigrate.operations import RebuildTable\n"
                     f"table = 'item'\nup = [RebuildTable('item', {NEW_ITEM!r}, {COPY!r})]\ndown = None\n")
        out, _err = tm("show")
        assert "online: item is rebuilt in short transactions" in out
        settings.TABLEMIGRATE_ONLINE_REBUILD_ROWS = None
        out, _err = tm("show")
        assert "[ ] 0002_item" in out and "online:" not in out
    finally:
        connections["edge"].close()
        del connections["edge"]
        del settings.DATABASES["edge"]


# Found by an independent review -------------------------------------------------------------------------

def test_the_application_deletes_parents_during_the_copy_as_django_does(tmp_path, monkeypatch, small_chunks):
    """Django deletes the children, then the parent, with its deferred foreign keys on. The copy, and
    the old table while it is dropped, hold rows of the children: with the foreign keys in their
    definitions those rows made the parent's delete fail. They have none until the swap."""
    conn = database(tmp_path / "db.sqlite3")
    app = Application(tmp_path / "db.sqlite3", monkeypatch)
    failures = []

    def write():
        app.turn += 1
        owner = (app.turn % 10) + 1
        try:
            app.conn.execute("BEGIN")
            app.conn.execute("DELETE FROM tag WHERE item_id IN (SELECT id FROM item WHERE owner_id = ?)", (owner,))
            app.conn.execute("DELETE FROM item WHERE owner_id = ?", (owner,))
            app.conn.execute("DELETE FROM owner WHERE id = ?", (owner,))
            app.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            failures.append(str(exc))
            if app.conn.in_transaction:
                app.conn.execute("ROLLBACK")
    app.write = write
    assert apply_migration(conn, module(), "up", online=True)
    assert failures == [] and app.turn > 10
    assert conn.execute("SELECT count(*) FROM owner").fetchone()[0] == 0
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    assert 'REFERENCES "owner"' in conn.execute("SELECT sql FROM sqlite_master WHERE name = 'item'").fetchone()[0]


def test_a_run_that_fails_mid_copy_keeps_the_applications_writes(tmp_path, monkeypatch, small_chunks):
    """A module applied earlier in the run, then the online rebuild fails mid-copy: the application
    wrote meanwhile, so the backup is not restored (it would lose those writes)."""
    from tablemigrate.history.status import Target
    from tablemigrate.project.build import private_database, raw
    from tablemigrate.run import runner

    from .helpers import module as write_module

    path = tmp_path / "app.sqlite3"
    database(path).close()
    d = tmp_path / "tablemigrations"
    write_module(d, "0002_other", "table = 'extra'\nup = ['CREATE TABLE extra (x)']\ndown = ['DROP TABLE extra']\n")
    write_module(d, "0003_item", "from tablemigrate.operations import RebuildTable\ntable = 'item'\n"
                 f"up = [RebuildTable('item', {STRICT_ITEM!r}, {COPY!r})]\ndown = None\n")
    app = Application(path, monkeypatch)
    app.at_turn(5, lambda: too_long_code(app))  # a row the new definition refuses
    with private_database(str(path)) as db:
        conn = raw(db)
        with pytest.raises(MigrationFailed, match="NOT restored"):
            runner.run(Target("default", conn, path), d, allow_destructive=True, django=False)
        assert conn.execute("SELECT count(*) FROM item WHERE code LIKE 'new%'").fetchone()[0] == app.turn
        assert conn.execute("SELECT code FROM item WHERE id = 2").fetchone()[0] == "a code far longer than twenty"
        assert [n for (n,) in conn.execute("SELECT name FROM tablemigrate_history")] == ["0002_other"]


@pytest.mark.parametrize("case", ["if not exists", "drop unique", "drop another table's index", "no rowid alias"])
def test_modules_the_swap_cannot_keep_exact_rebuild_in_one_transaction(tmp_path, small_chunks, case):
    conn = database(tmp_path / "db.sqlite3")
    conn.execute('CREATE UNIQUE INDEX "item_code_u" ON "item" ("code")')
    conn.execute('CREATE INDEX "owner_name" ON "owner" ("name")')
    up = {"if not exists": ['CREATE INDEX IF NOT EXISTS "item_owner_id" ON "item" ("owner_id")',
                            RebuildTable("item", NEW_ITEM, COPY)],
          "drop unique": ['DROP INDEX "item_code_u"', RebuildTable("item", NEW_ITEM, COPY)],
          "drop another table's index": ['DROP INDEX "owner_name"', RebuildTable("item", NEW_ITEM, COPY)],
          "no rowid alias": [RebuildTable("item", NEW_ITEM.replace("NOT NULL PRIMARY KEY AUTOINCREMENT", "NOT NULL"),
                                          COPY)]}[case]
    m = Migration("0002", up=up, down=None, table="item")
    assert online.plan(conn, m, "up") is None
    if case == "drop another table's index":
        assert apply_migration(conn, m, "up", online=True)
        assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'owner_name'").fetchone()


def test_a_projects_own_table_named_like_ours_is_never_taken_for_a_leftover(tmp_path):
    conn = database(tmp_path / "db.sqlite3")
    conn.execute("CREATE TABLE TableMigrate_Online_Audit (x)")
    conn.execute("CREATE TABLE tablemigrate_online_new_notours (x)")
    conn.execute("INSERT INTO TableMigrate_Online_Audit VALUES (1)")
    assert online.leftovers(conn) == [] and online.clean_leftovers(conn) == []
    assert conn.execute("SELECT count(*) FROM TableMigrate_Online_Audit").fetchone()[0] == 1


def test_a_column_the_application_adds_during_the_copy_fails_the_rebuild_and_is_kept(tmp_path, monkeypatch,
                                                                                    small_chunks):
    conn = database(tmp_path / "db.sqlite3")
    app = Application(tmp_path / "db.sqlite3", monkeypatch)
    app.at_turn(4, lambda: app.conn.executescript(
        "ALTER TABLE item ADD COLUMN added text; UPDATE item SET added = 'kept' WHERE id = 3;"))
    with pytest.raises(MigrationFailed, match="changed during the rebuild"):
        apply_migration(conn, module(), "up", online=True)
    assert conn.execute("SELECT added FROM item WHERE id = 3").fetchone()[0] == "kept"
    assert not online.leftovers(conn)


def with_owner_name(expression: str) -> Migration:
    """The module that adds a column `owner_name` to item, filled by the copy expression `expression`."""
    new = NEW_ITEM[:-1] + ', "owner_name" text NULL)'
    return Migration("0002", up=[RebuildTable("item", new, {**COPY, "owner_name": expression})], down=None,
                     table="item")


def test_a_copy_that_reads_another_table_rebuilds_in_one_transaction(tmp_path, monkeypatch, small_chunks):
    """Online, the rows copied before the application renamed the owner kept the old name, the others
    took the new one: a state no serial order gives (issue 22, review). In one transaction the copy
    reads the owner table as it is when the migration runs."""
    conn = database(tmp_path / "db.sqlite3")
    app = Application(tmp_path / "db.sqlite3", monkeypatch)

    def rename(name: str) -> None:
        for c in (app.conn, app.reference):
            c.execute("UPDATE owner SET name = ? WHERE id = 1", (name,))
    rename("renamed")
    app.at_turn(3, lambda: rename("renamed again"))  # mid-copy, if the copy were online
    m = with_owner_name('(SELECT "name" FROM "owner" WHERE "owner"."id" = "owner_id")')
    assert online.plan(conn, m, "up") is None
    assert apply_migration(conn, m, "up", online=True)
    assert conn.execute("SELECT DISTINCT owner_name FROM item WHERE owner_id = 1").fetchall() == [("renamed",)]


@pytest.mark.parametrize("expression", [
    '(SELECT max("amount") FROM "item")',  # other rows of the table itself
    '(SELECT "name" FROM "owner" LIMIT 1)', 'EXISTS (SELECT 1 FROM "tag")',
    "random()", "changes()", "last_insert_rowid()", "CURRENT_TIMESTAMP", "date('now')",
    "strftime('%s', 'now') || \"code\"",
    "(WITH x AS (SELECT 1) SELECT * FROM x)",
])
def test_a_copy_that_reads_more_than_its_row_is_not_done_online(tmp_path, small_chunks, expression):
    conn = database(tmp_path / "db.sqlite3")
    m = with_owner_name(expression)
    assert online.plan(conn, m, "up") is None
    assert apply_migration(conn, m, "up", online=True)
    assert conn.execute("SELECT count(*) FROM item").fetchone()[0] == ROWS


@pytest.mark.parametrize("expression", [
    '"code"', "'a constant'", 'CAST("amount" AS TEXT)', 'COALESCE("amount", "code", 0)', 'upper("code")',
    '"code" || \'-\' || "id"', 'CASE WHEN "amount" > 10 THEN \'big\' ELSE NULL END', 'abs("amount") + 1',
    'iif("amount" IS NULL, \'none\', printf(\'%05d\', "amount"))', "NULL",
])
def test_a_copy_of_its_row_alone_is_still_done_online(tmp_path, small_chunks, expression):
    conn = database(tmp_path / "db.sqlite3")
    m = with_owner_name(expression)
    assert online.plan(conn, m, "up") is not None
    assert apply_migration(conn, m, "up", online=True)
    assert conn.execute("SELECT count(*) FROM item WHERE owner_name IS NOT NULL").fetchone()[0] > 0 or \
        expression == "NULL"


def test_run_with_nothing_pending_drops_what_a_killed_rebuild_left(tmp_path, small_chunks):
    from tablemigrate.history.status import Target
    from tablemigrate.project.build import private_database, raw
    from tablemigrate.run import runner

    path = tmp_path / "app.sqlite3"
    conn = database(path)
    work = online.plan(conn, module(), "up")
    conn.execute("BEGIN IMMEDIATE")
    online._setup(conn, work)
    conn.execute("COMMIT")  # then killed: the triggers keep logging every write of the application
    conn.close()
    d = tmp_path / "tablemigrations"
    d.mkdir()
    with private_database(str(path)) as db:
        assert online.leftovers(raw(db))
        assert runner.run(Target("default", raw(db), path), d, django=False) == []
        assert not online.leftovers(raw(db))


# Issue 22 ----------------------------------------------------------------------------------------------

def outcome(conn: sqlite3.Connection, sql: str) -> str:
    """'ok', or the error a statement raised (its class and SQLite's extended result code)."""
    try:
        conn.execute(sql)
        return "ok"
    except sqlite3.Error as exc:
        return f"{type(exc).__name__} {getattr(exc, 'sqlite_errorcode', '')}"


def run_both(app: Application, statements: list[str], failures: list) -> None:
    """The application's statements, in one transaction, on the live database and on the reference;
    each must end the same way on both (a statement the reference accepts must not fail live)."""
    for c in (app.conn, app.reference):
        c.execute("BEGIN")
    for sql in statements:
        live, ref = outcome(app.conn, sql), outcome(app.reference, sql)
        if live != ref:
            failures.append((sql, live, ref))
    for c in (app.conn, app.reference):
        if c.in_transaction:  # (an OR ROLLBACK that fired ended it)
            c.execute("COMMIT")


# Rows 320-330 are copied by turn 6 (chunks of 100), rows 2900-2910 not yet, and the usual writes leave
# them alone. Row 320 is updated (an UPDATE logs its rowid twice), row 2903 deleted (its rowid stays in
# the log until its chunk is copied); code 'c324' is row 325's, 'c325' row 326's.
LOGGED = ["UPDATE item SET amount = 1 WHERE id = 320", "DELETE FROM item WHERE id = 2903"]
CLAUSES = ["ROLLBACK", "ABORT", "FAIL", "IGNORE", "REPLACE"]
FORMS = {
    "plain update of a logged row": ["UPDATE item SET amount = 2 WHERE id = 320"],
    "plain insert of a logged rowid": ["INSERT INTO item (id, owner_id, code) VALUES (2903, 1, 'back')"],
    **{f"UPDATE OR {c} of a logged row": [f"UPDATE OR {c} item SET amount = 2 WHERE id = 320"] for c in CLAUSES},
    **{f"INSERT OR {c} of a logged rowid": [f"INSERT OR {c} INTO item (id, owner_id, code) VALUES (2903, 1, 'back')"]
       for c in CLAUSES},
    **{f"INSERT OR {c} on another row's code":
       [f"INSERT OR {c} INTO item (owner_id, code, amount) VALUES (2, 'c324', 7)"] for c in CLAUSES},
    **{f"UPDATE OR {c} to another row's code": [f"UPDATE OR {c} item SET code = 'c324' WHERE id = 320"]
       for c in CLAUSES},
    "REPLACE INTO on another row's code": ["REPLACE INTO item (owner_id, code, amount) VALUES (2, 'c324', 7)"],
    "INSERT OR REPLACE on a rowid and another row's code": [
        "INSERT OR REPLACE INTO item (id, owner_id, code) VALUES (320, 2, 'c325')"],
    "UPDATE OR REPLACE of the rowid": ["UPDATE OR REPLACE item SET id = 325 WHERE id = 320"],
    "UPSERT DO UPDATE with a target": [
        "INSERT INTO item (owner_id, code, amount) VALUES (2, 'c324', 7) ON CONFLICT (code) DO UPDATE SET amount = "
        "excluded.amount", "INSERT INTO item (owner_id, code) VALUES (2, 'c319') ON CONFLICT (code) DO UPDATE SET "
        "amount = 5"],
    "UPSERT DO UPDATE without a target": [
        "INSERT INTO item (owner_id, code, amount) VALUES (2, 'c324', 7) ON CONFLICT DO UPDATE SET amount = 8",
        "INSERT INTO item (id, owner_id, code) VALUES (320, 2, 'x') ON CONFLICT DO UPDATE SET amount = 9"],
    "UPSERT DO NOTHING": ["INSERT INTO item (owner_id, code) VALUES (2, 'c324') ON CONFLICT (code) DO NOTHING",
                          "INSERT INTO item (id, owner_id, code) VALUES (320, 2, 'x') ON CONFLICT DO NOTHING",
                          "INSERT INTO item (owner_id, code) VALUES (2, 'fresh') ON CONFLICT DO NOTHING"],
    "OR ROLLBACK undoes the transaction on both": [
        "INSERT INTO item (owner_id, code) VALUES (2, 'undone')", "UPDATE item SET amount = 3 WHERE id = 330",
        "UPDATE OR ROLLBACK item SET code = 'c324' WHERE id = 320",
        "INSERT INTO item (owner_id, code) VALUES (2, 'after')"],
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_no_conflict_clause_of_the_application_fails_because_of_the_rebuild(tmp_path, monkeypatch, small_chunks,
                                                                           form):
    """Issue 22: the log's `INSERT OR IGNORE` took the conflict policy of the application's statement
    (an UPSERT's DO UPDATE, OR ROLLBACK/ABORT/FAIL), so a write of a row already logged failed with
    "UNIQUE constraint failed: tablemigrate_online_log.rid"; and a REPLACE that deleted another row
    holding the key fired no DELETE trigger, so its stale copy stayed. Each statement runs mid-copy, on
    the live database and on a reference that no rebuild touches: the same outcome, the same rows."""
    conn = database(tmp_path / "db.sqlite3")
    app = Application(tmp_path / "db.sqlite3", monkeypatch)
    failures: list = []
    app.at_turn(5, lambda: run_both(app, LOGGED, failures))
    app.at_turn(6, lambda: run_both(app, FORMS[form], failures))
    assert apply_migration(conn, module(), "up", online=True)
    assert app.turn > 5 and failures == []
    assert conn.execute("SELECT id, owner_id, code, amount FROM item ORDER BY id").fetchall() == app.expected()
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_replace_on_a_unique_expression_or_collation_deletes_a_row_the_copy_then_drops(tmp_path, monkeypatch,
                                                                                         small_chunks):
    """The rows a REPLACE deletes are found by every UNIQUE key of the live table, as its index compares
    them: a constraint, an expression index, a collation; partial or not."""
    conn = database(tmp_path / "db.sqlite3")
    app = Application(tmp_path / "db.sqlite3", monkeypatch)
    for c in (conn, app.reference):
        c.execute('CREATE UNIQUE INDEX "item_lower_code" ON "item" (lower("code"), "owner_id" COLLATE NOCASE DESC)')
        c.execute("CREATE UNIQUE INDEX item_code_tail ON item (substr(code, 2)) WHERE owner_id = 3")
    failures: list = []
    app.at_turn(6, lambda: run_both(app, [
        "REPLACE INTO item (owner_id, code, amount) VALUES (5, 'C324', 7)",  # row 325 (c324, owner 5): lower()
        "INSERT OR REPLACE INTO item (owner_id, code) VALUES (3, 'x152')",  # row 153 (c152, owner 3): substr()
        "UPDATE OR REPLACE item SET code = 'y162', owner_id = 3 WHERE id = 340"], failures))  # row 163
    assert apply_migration(conn, Migration("0002", up=[RebuildTable("item", NEW_ITEM, COPY)], down=None, table="item"),
                           "up", online=True)
    assert failures == []
    got = conn.execute("SELECT id, owner_id, code, amount FROM item ORDER BY id").fetchall()
    assert got == app.expected()
    assert not {325, 153, 163} & {r[0] for r in got}  # deleted by the REPLACEs, not kept stale


@pytest.mark.parametrize("qualifier", ["item", '"item"', "[item]", "`item`", "'item'", "ITEM", '"Item"', "main.item",
                                       'main . "item" '])
def test_a_partial_index_whose_where_names_its_table_is_rebuilt_online(tmp_path, small_chunks, qualifier):
    """Issue 22: `CREATE INDEX i ON t(x) WHERE t.x > 0` made every online rebuild of t fail ("no such
    column: t.x"): the index texts were renamed by hand. The qualifiers are read as tokens, in every
    quoting and case; the index kept and the one the module creates keep their texts."""
    conn = database(tmp_path / "db.sqlite3")
    kept = f"CREATE INDEX item_big ON item (owner_id) WHERE {qualifier}.amount > 100 AND {qualifier}.\"code\" <> 'x'"
    conn.execute(kept)
    made = f'CREATE UNIQUE INDEX "item_c" ON "item" ("code") WHERE {qualifier}.owner_id = 1'
    m = Migration("0002", up=[RebuildTable("item", NEW_ITEM, COPY), made], down=None, table="item")
    assert online.plan(conn, m, "up") is not None
    assert apply_migration(conn, m, "up", online=True)
    texts = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'").fetchall())
    assert f"WHERE {qualifier}.amount" in texts["item_big"] and f"WHERE {qualifier}.owner_id" in texts["item_c"]
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert conn.execute("SELECT count(*) FROM item INDEXED BY item_big WHERE amount > 100 AND code <> 'x' "
                        "AND owner_id = 1").fetchone()[0] > 0
    assert not online.leftovers(conn)


@pytest.mark.slow
@pytest.mark.parametrize("bound", ["rows", "seconds"])
def test_a_copy_that_cannot_catch_up_with_the_application_gives_up_and_keeps_every_write(tmp_path, monkeypatch,
                                                                                        small_chunks, settings, bound):
    """Issue 22: under a writer faster than the copy, the catch-up never ended. The copy gives up once it
    has copied CATCH_UP_FACTOR times the rows the table had (always), or past
    TABLEMIGRATE_ONLINE_REBUILD_SECONDS (when set): what it made is dropped, the table is as the
    application left it, and one line says so. (The writer stops after 20 s: old code then ended.)"""
    import time

    if bound == "seconds":
        settings.TABLEMIGRATE_ONLINE_REBUILD_SECONDS = 0.5
        monkeypatch.setattr(online, "CATCH_UP_FACTOR", 10**9)
        expected = r"gave up after 0\.5 s \(TABLEMIGRATE_ONLINE_REBUILD_SECONDS\), [\d,]+ rows copied"
    else:
        assert getattr(settings, "TABLEMIGRATE_ONLINE_REBUILD_SECONDS", None) is None  # the default: no time bound
        expected = r"gave up after copying [\d,]+ rows, 3 times the [\d,]+ the table had when it began"
    conn = database(tmp_path / "db.sqlite3")
    app = Application(tmp_path / "db.sqlite3", monkeypatch)
    stop = time.monotonic() + 20
    idle = []  # the turns at which the writer had stopped

    def burst() -> None:  # 300 rows between chunks of 100
        app.turn += 1
        if time.monotonic() < stop:
            for c in (app.conn, app.reference):
                with c:  # one transaction
                    c.execute("BEGIN")
                    c.executemany("INSERT INTO item (owner_id, code, amount) VALUES (1, ?, 1)",
                                  [(f"b{app.turn}-{i}",) for i in range(300)])
        else:
            idle.append(app.turn)
    app.write = burst  # type: ignore[method-assign]
    before_objects = objects(conn)
    with pytest.raises(MigrationFailed, match=r"migration 0002_item \(up\) failed: rebuild of item \(online\) "
                       + expected + r".* the table is as the application left it, every write kept"):
        apply_migration(conn, module(), "up", online=True)
    # It gave up on its own bound while the application still outran it: every turn of the writer wrote its
    # burst (the old code only ended, by catching up, once the writer had stopped).
    assert app.turn > 0 and idle == []
    assert objects(conn) == before_objects
    every = "SELECT * FROM item ORDER BY id"
    assert conn.execute(every).fetchall() == app.reference.execute(every).fetchall()


def test_a_big_table_copied_slowly_by_a_quiet_application_is_not_cut_short(tmp_path, monkeypatch, small_chunks):
    """The catch-up bound counts rows, not time: a copy that takes long but gains on the application (it
    writes less than the copy takes) finishes, however many chunks it needs."""
    conn = database(tmp_path / "db.sqlite3")
    app = Application(tmp_path / "db.sqlite3", monkeypatch)
    total = conn.execute("SELECT count(*) FROM item").fetchone()[0]

    def trickle() -> None:  # 60 new rows for each chunk of 100: more than half the copy's pace, for ever
        app.turn += 1
        for c in (app.conn, app.reference):
            with c:
                c.execute("BEGIN")
                c.executemany("INSERT INTO item (owner_id, code, amount) VALUES (1, ?, 1)",
                              [(f"t{app.turn}-{i}",) for i in range(60)])
    app.write = trickle  # type: ignore[method-assign]
    assert apply_migration(conn, module(), "up", online=True)
    assert conn.execute("SELECT * FROM item ORDER BY id").fetchall() == app.expected()  # every write kept
    assert conn.execute("SELECT count(*) FROM item").fetchone()[0] > 2 * total  # it really grew meanwhile
    assert not online.leftovers(conn)


def disk_full() -> sqlite3.OperationalError:
    """A real SQLITE_FULL, from a database that may not grow."""
    full = sqlite3.connect(":memory:")
    full.execute("PRAGMA max_page_count = 1")
    try:
        full.execute("CREATE TABLE t (x)")
    except sqlite3.OperationalError as exc:
        return exc
    finally:
        full.close()
    raise AssertionError("the database grew")


def test_a_disk_full_cleanup_after_a_failed_copy_says_what_remains(tmp_path, monkeypatch, small_chunks):
    """Issue 22: the disk filled up during the copy (`max_page_count`), then again while the rebuild
    dropped what it made: the raw error replaced the migration's, and the run said "the database is
    unchanged" while the private tables remained. The line keeps the migration and the first error,
    names what remains, and the next run drops it."""
    from tablemigrate.history.status import Target
    from tablemigrate.project.build import private_database, raw
    from tablemigrate.run import runner

    from .helpers import module as write_module

    path = tmp_path / "app.sqlite3"
    database(path).close()
    d = tmp_path / "tablemigrations"
    write_module(d, "0002_item", "from tablemigrate.operations import RebuildTable\ntable = 'item'\n"
                 f"up = [RebuildTable('item', {NEW_ITEM!r}, {COPY!r})]\ndown = None\n")
    real_chunks, real_drop = online._chunks, online._drop_in_chunks

    def chunks_on_a_full_disk(conn, *args):
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages + 3}")  # a few chunks fit, then SQLITE_FULL
        real_chunks(conn, *args)

    def drop_on_a_full_disk(conn, table, begin):
        if table == online._private("new", "item"):
            raise disk_full()
        real_drop(conn, table, begin)
    monkeypatch.setattr(online, "_chunks", chunks_on_a_full_disk)
    monkeypatch.setattr(online, "_drop_in_chunks", drop_on_a_full_disk)
    with private_database(str(path)) as db:
        conn = raw(db)
        with pytest.raises(MigrationFailed) as failed:
            runner.run(Target("default", conn, path), d, allow_destructive=True, django=False)
        line = str(failed.value)
        assert "\n" not in line
        assert line.startswith("migration 0002_item (up) failed: rebuild of item (online) failed: OperationalError: "
                               "database or disk is full; the table is as the application left it, but dropping")
        left = [online._private("new", "item"), online.LOG]
        assert f"{', '.join(left)} remain until the next run or revert drops them" in line
        assert "the database is unchanged but for the online rebuild's private tables, which the next run" in line
        assert [n for _k, n in online.leftovers(conn)] == left
        assert conn.execute("SELECT count(*) FROM item").fetchone()[0] == ROWS
        monkeypatch.setattr(online, "_drop_in_chunks", real_drop)  # the disk has room again
        monkeypatch.setattr(online, "_chunks", real_chunks)
        conn.execute(f"PRAGMA max_page_count = {2 ** 30}")
        assert runner.run(Target("default", conn, path), d, allow_destructive=True, django=False)
        assert not online.leftovers(conn)


def test_a_disk_full_while_the_old_table_is_dropped_keeps_the_applied_rebuild(tmp_path, monkeypatch, small_chunks,
                                                                              caplog):
    """After the swap committed, the module is applied and recorded: a failure while the old table is
    emptied must not fail the run (its recovery would restore the backup over the applied module). It
    is logged, with what remains, and the next run drops it."""
    conn = database(tmp_path / "db.sqlite3")
    real_drop = online._drop_in_chunks

    def drop_on_a_full_disk(conn, table, begin):
        raise disk_full()
    monkeypatch.setattr(online, "_drop_in_chunks", drop_on_a_full_disk)
    assert apply_migration(conn, module(), "up", online=True)
    old = online._private("old", "item")
    assert [n for _k, n in online.leftovers(conn)] == [old]
    assert f"dropping the old table failed (OperationalError: database or disk is full): {old} remain" in caplog.text
    assert '"amount" text NOT NULL' in conn.execute("SELECT sql FROM sqlite_master WHERE name = 'item'").fetchone()[0]
    monkeypatch.setattr(online, "_drop_in_chunks", real_drop)
    assert online.clean_leftovers(conn) == [old]


def test_an_exception_right_after_begin_leaves_no_transaction_open(tmp_path):
    """Issue 22, item 5: `_transaction` called `begin()` before its `try`: a signal turned into an
    exception just after BEGIN IMMEDIATE left the transaction open ("Safety level may not be changed
    inside a transaction" later)."""
    conn = database(tmp_path / "db.sqlite3")
    conn.execute(f"CREATE TABLE {online._private('new', 'item')} (x)")  # a leftover to drop

    def begin_then_interrupted() -> None:
        conn.execute("BEGIN IMMEDIATE")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        online.clean_leftovers(conn, begin_then_interrupted)
    assert not conn.in_transaction
    conn.execute("PRAGMA synchronous = NORMAL")  # refused inside a transaction
    assert online.clean_leftovers(conn)


# A recheck that `run` puts first (nothing to lose: no confirmation asked) is carried by the online rebuild ---

WITHOUT_NOTE = ITEM.replace(', "note" text NULL)', ')')
KEPT = {"id": '"id"', "owner_id": '"owner_id"', "code": '"code"', "amount": '"amount"'}


def test_a_lossless_destructive_rebuild_of_a_big_table_is_still_done_online(tmp_path, small_chunks):
    """`note` holds no value: the data check proves the drop loses nothing, so `run --noinput` applies it
    without --allow-destructive, with a StillEmpty recheck as its first step. That step once made
    online.plan answer None, so the table was copied in one transaction, locking the application out for
    the whole copy, while `show` said it runs online."""
    from tablemigrate.history.status import Target
    from tablemigrate.project.build import private_database, raw
    from tablemigrate.run import runner

    from .helpers import module as write_module

    path = tmp_path / "app.sqlite3"
    conn = database(path)
    conn.execute("UPDATE item SET note = NULL")
    conn.close()
    d = tmp_path / "tablemigrations"
    write_module(d, "0002_item", "from tablemigrate.operations import RebuildTable\ntable = 'item'\n"
                 "destructive = ['drop column item.note']\n"
                 f"up = ['DROP INDEX \"item_note\"', RebuildTable('item', {WITHOUT_NOTE!r}, {KEPT!r})]\ndown = None\n")
    with private_database(str(path)) as db:
        conn = raw(db)
        from tablemigrate.history.loader import load_migration
        assert online.plan(conn, load_migration(d / "0002_item.py"), "up") is not None  # what `show` tells
        started = []
        real = online.run
        with pytest.MonkeyPatch.context() as m:
            m.setattr(online, "run", lambda *a: started.append(1) or real(*a))
            done = runner.run(Target("default", conn, path), d, confirm=None, django=False)
        assert [x.name for x in done] == ["0002_item"]  # no confirmation needed: nothing to lose
        assert started == [1]  # ... and done online, as `show` said


def lossless_drop_of_note(conn) -> Migration:
    """The module of the test above, as `run` applies it: its recheck first."""
    from tablemigrate.run.datacheck import Recheck
    from tablemigrate.run.preflight import StillEmpty

    conn.execute("UPDATE item SET note = NULL")
    return Migration("0002_item", up=[StillEmpty([], [Recheck("item", '"note" IS NOT NULL')]),
                                      'DROP INDEX "item_note"', RebuildTable("item", WITHOUT_NOTE, KEPT)],
                     down=None, table="item")


@pytest.mark.parametrize("when", ["before the copy", "during the copy"])
def test_a_value_the_application_writes_that_the_rebuild_would_lose_refuses_it_at_the_swap(
        tmp_path, monkeypatch, small_chunks, when):
    """The recheck runs in the first transaction and again in the one that swaps: a `note` the application
    writes before the copy, or while it runs (after the first check), refuses the rebuild; every write kept."""
    conn = database(tmp_path / "db.sqlite3")
    migration = lossless_drop_of_note(conn)
    app = Application(tmp_path / "db.sqlite3", monkeypatch)
    app.reference.execute("UPDATE item SET note = NULL")

    def note() -> None:
        for c in (app.conn, app.reference):
            c.execute("UPDATE item SET note = 'keep me' WHERE id = 9")  # a row it never deletes
    if when == "before the copy":
        note()
    else:
        app.at_turn(5, note)
    before_objects = objects(conn)
    with pytest.raises(MigrationFailed, match="held nothing this migration can lose .* and holds some now"):
        apply_migration(conn, migration, "up", online=True)
    assert (app.turn > 5) == (when == "during the copy")  # refused at the swap, or before a row was copied
    assert objects(conn) == before_objects  # nothing of the rebuild is left
    every = "SELECT * FROM item ORDER BY id"
    assert conn.execute(every).fetchall() == app.reference.execute(every).fetchall()
    assert conn.execute("SELECT note FROM item WHERE id = 9").fetchone() == ("keep me",)


def test_a_module_whose_recheck_holds_is_rebuilt_online(tmp_path, monkeypatch, small_chunks):
    conn = database(tmp_path / "db.sqlite3")
    migration = lossless_drop_of_note(conn)
    app = Application(tmp_path / "db.sqlite3", monkeypatch)
    assert online.plan(conn, migration, "up") is not None
    assert apply_migration(conn, migration, "up", online=True)
    assert app.turn > 5  # done online: the application wrote between chunks
    assert "note" not in {r[1] for r in conn.execute("PRAGMA table_info(item)")}
