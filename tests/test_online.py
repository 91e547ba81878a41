"""Copying rebuilds of big tables keep the application writable (issue 15, online.py): the copy runs
in short transactions while the application writes, and not one of its committed writes is lost."""

from __future__ import annotations

import sqlite3

import pytest

from tablemigrate import online
from tablemigrate.apply import apply_migration
from tablemigrate.errors import MigrationFailed
from tablemigrate.introspect import introspect
from tablemigrate.loader import Migration
from tablemigrate.operations import RebuildTable

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
    from tablemigrate import runner
    from tablemigrate.build import private_database, raw
    from tablemigrate.runner import Target

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
from tablemigrate import online
from tablemigrate.apply import apply_migration
from tests.test_online import module
online.FIRST_CHUNK, online.PAUSE_SECONDS = 100, 0.05
apply_migration(sqlite3.connect({path!r}, isolation_level=None), module(), "up", online=True)
"""


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
    from tablemigrate import runner
    from tablemigrate.build import private_database, raw
    from tablemigrate.runner import Target

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


def test_run_with_nothing_pending_drops_what_a_killed_rebuild_left(tmp_path, small_chunks):
    from tablemigrate import runner
    from tablemigrate.build import private_database, raw
    from tablemigrate.runner import Target

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
