"""Named snapshots, the listing, restore (with a safety backup, in WAL mode), inspect and stats."""

import os
import sqlite3
import stat

import pytest

from tablemigrate.backups import snapshots
from tablemigrate.cli.report import describe, table_stats
from tablemigrate.errors import ConfigurationError
from tablemigrate.run import runner
from tablemigrate.sqlite.introspect import introspect

from .test_run import dump, file_hash, module


@pytest.fixture
def project(project):
    """The shared project (tests/conftest.py) in WAL mode, with table t (an index, two rows) applied."""
    target, migrations = project
    module(migrations, "0001_create", "table = 't'\nup = ['CREATE TABLE t (id integer PRIMARY KEY, v text NOT NULL)', "
           "'CREATE INDEX t_v ON t (v)', \"INSERT INTO t (v) VALUES ('a'), ('b')\"]\ndown = ['DROP TABLE t']\n")
    target.conn.execute("PRAGMA journal_mode = WAL")
    runner.run(target, migrations)
    return project


def test_snapshot_then_destructive_change_then_restore_returns_every_row(project):
    target, d = project
    before = dump(target)
    path = snapshots.take_snapshot(target.conn, target.backups_dir, "before-drop")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    module(d, "0002_drop", "destructive = ['drops t']\nup = ['DROP TABLE t']\n")
    runner.run(target, d, allow_destructive=True)
    assert "t" not in introspect(target.conn).tables
    other = sqlite3.connect(target.path)  # a connection the app kept open sees the restored data
    safety = snapshots.restore(target.conn, target.path, path, target.backups_dir, lock_timeout=1)
    assert dump(target) == before
    assert other.execute("SELECT v FROM t ORDER BY id").fetchall() == [("a",), ("b",)]
    other.close()
    assert snapshots.last_migration(safety) == "0002_drop"  # the replaced state is kept
    assert os.path.getsize(str(target.path) + "-wal") == 0  # folded back in (checkpoint TRUNCATE)


def test_listing_shows_snapshots_and_backups_with_their_last_migration(project):
    target, d = project
    snapshots.take_snapshot(target.conn, target.backups_dir, "one")
    entries = snapshots.listing(target.backups_dir, target.path)
    assert [(e.kind, e.last_migration) for e in entries] == [("snapshot", "0001_create"), ("backup", None)]
    assert entries[0].name == "one" and entries[0].size > 0
    with pytest.raises(ConfigurationError, match="already exists"):
        snapshots.take_snapshot(target.conn, target.backups_dir, "one")


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", "x\x00y", "$(rm -rf ~)", "a;b", "", ".hidden", "a" * 101])
def test_unsafe_snapshot_names_are_refused(project, name):
    target, _d = project
    with pytest.raises(ConfigurationError, match="invalid snapshot name"):
        snapshots.take_snapshot(target.conn, target.backups_dir, name)
    assert not (target.backups_dir / "snapshots").exists()


def test_restore_refuses_a_corrupt_or_foreign_file_and_changes_nothing(project, tmp_path):
    target, _d = project
    good = snapshots.take_snapshot(target.conn, target.backups_dir, "good")
    corrupt = tmp_path / "corrupt.sqlite3"
    corrupt.write_bytes(good.read_bytes()[:4096] + b"\x13" * 8192)
    text = tmp_path / "notes.txt"
    text.write_text("not a database")
    before, backups_before = file_hash(target.path), sorted(target.backups_dir.iterdir())
    for bad, why in ((corrupt, "integrity|malformed|cannot be checked"), (text, "not an SQLite database"),
                     (tmp_path / "missing.sqlite3", "no such file")):
        with pytest.raises(snapshots.RestoreRefused, match=why):
            snapshots.restore(target.conn, target.path, bad, target.backups_dir, lock_timeout=1)
    assert file_hash(target.path) == before and sorted(target.backups_dir.iterdir()) == backups_before


def test_restore_of_a_different_page_size_into_wal(project, tmp_path):
    target, _d = project
    other = tmp_path / "big-pages.sqlite3"
    conn = sqlite3.connect(other)
    conn.execute("PRAGMA page_size = 8192")
    conn.execute("CREATE TABLE x (y)")
    conn.execute("INSERT INTO x VALUES (42)")
    conn.commit()
    conn.close()
    # a file made by hand, not taken from this database: restoring it over data needs the override
    snapshots.restore(target.conn, target.path, other, target.backups_dir, lock_timeout=1, allow_other_database=True)
    assert target.conn.execute("SELECT y FROM x").fetchall() == [(42,)]
    assert target.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_inspect_and_stats(project):
    target, _d = project
    text = "\n".join(describe(introspect(target.conn), "T"))
    assert text.splitlines()[0] == "table t"
    assert "v   text NOT NULL" in text and "index t_v: CREATE INDEX t_v ON t (v)" in text
    assert describe(introspect(target.conn), "nosuch") == []
    (row,) = table_stats(target.conn)
    assert (row.name, row.rows) == ("t", 2) and (row.bytes is None or row.bytes >= 4096)


def test_restore_waits_for_a_writer_only_up_to_the_timeout_and_changes_nothing(project):
    from tablemigrate.errors import CopyTimeout

    target, _d = project
    snap = snapshots.take_snapshot(target.conn, target.backups_dir, "s")
    app = sqlite3.connect(target.path, isolation_level=None)
    app.execute("BEGIN IMMEDIATE")
    app.execute("INSERT INTO t (v) VALUES ('held')")
    try:
        with pytest.raises(CopyTimeout, match="locked") as info:
            snapshots.restore(target.conn, target.path, snap, target.backups_dir, lock_timeout=0.3)
        assert info.value.exit_code == 3
    finally:
        app.execute("COMMIT")
        app.close()
    assert target.conn.execute("SELECT count(*) FROM t WHERE v = 'held'").fetchone() == (1,)


def test_restore_refuses_the_live_database_itself(project):
    target, _d = project
    with pytest.raises(snapshots.RestoreRefused, match="is the live database itself"):
        snapshots.restore(target.conn, target.path, target.path, target.backups_dir, lock_timeout=1)
