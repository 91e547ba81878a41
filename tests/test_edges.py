"""Edges where data used to be lost silently (issue 11): reserved names, URIs, rebuild dependents,
the data check learning from SQLite, and the double-quoted-string misfeature (issue 16)."""

import sqlite3

import pytest

from tablemigrate import backup as backups
from tablemigrate import runner
from tablemigrate.build import private_database, raw
from tablemigrate.errors import MigrationFailed
from tablemigrate.runner import Target


def module(directory, name, text):
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.py").write_text(text)


@pytest.fixture
def project(tmp_path):
    migrations = tmp_path / "tablemigrations"
    migrations.mkdir()
    with private_database(str(tmp_path / "app.sqlite3")) as db:
        yield Target("default", raw(db), tmp_path / "app.sqlite3"), migrations


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
