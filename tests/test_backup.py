"""Backups: the file-copy fast path (under the write lock) and the backup-API fallback give the same,
complete, verified, owner-only copy."""

import os
import sqlite3
import stat

import pytest

from tablemigrate.backups import backup


def rows(path):
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT id, v FROM t ORDER BY id").fetchall()
    finally:
        conn.close()


@pytest.fixture(params=["delete", "wal"])
def live(tmp_path, request):
    conn = sqlite3.connect(tmp_path / "live.sqlite3", isolation_level=None)
    conn.execute(f"PRAGMA journal_mode = {request.param}")
    conn.execute("CREATE TABLE t (id integer PRIMARY KEY, v text)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [(f"row {i}",) for i in range(2000)])
    conn.execute("COMMIT")
    yield conn, tmp_path
    conn.close()


def test_file_copy_is_complete_and_self_contained(live, monkeypatch):
    conn, tmp_path = live
    used = []
    real = backup._copy
    monkeypatch.setattr(backup, "_copy", lambda *a, **k: used.append(True) or real(*a, **k))
    dest = backup.take_backup(conn, tmp_path / "b" / "copy.sqlite3")
    wal = conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert used == ([True] if wal else [])  # the file copy under the write lock, except in WAL mode
    assert rows(dest) == rows(tmp_path / "live.sqlite3")
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600
    assert sqlite3.connect(dest).execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    assert not conn.in_transaction  # the write lock was released


def test_a_reader_pinning_the_wal_falls_back_to_the_backup_api(tmp_path, monkeypatch):
    conn = sqlite3.connect(tmp_path / "live.sqlite3", isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (id integer PRIMARY KEY, v text)")
    reader = sqlite3.connect(tmp_path / "live.sqlite3", isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchone()  # holds a snapshot: the checkpoint cannot finish
    conn.execute("INSERT INTO t (v) VALUES ('only in the WAL')")
    used = []
    real = backup._copy
    monkeypatch.setattr(backup, "_copy", lambda *a, **k: used.append(True) or real(*a, **k))
    dest = backup.take_backup(conn, tmp_path / "b" / "copy.sqlite3")
    reader.execute("COMMIT")
    assert used == [True]
    assert rows(dest) == [(1, "only in the WAL")]


@pytest.mark.subprocess
def test_the_copy_keeps_this_process_sqlite_locks(tmp_path):
    """Closing any descriptor of the database file would drop SQLite's POSIX locks: another process
    could then believe it is the last connection and delete the WAL under ours (and lose commits)."""
    import subprocess
    import sys

    db = tmp_path / "live.sqlite3"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (id integer PRIMARY KEY, v text)")
    conn.execute("INSERT INTO t (v) VALUES ('ours')")
    backup.take_backup(conn, tmp_path / "b" / "copy.sqlite3")
    subprocess.run([sys.executable, "-c", "import sqlite3, sys\n"
                    "c = sqlite3.connect(sys.argv[1]); c.execute('SELECT count(*) FROM t').fetchall(); c.close()",
                    str(db)], check=True)
    assert os.path.exists(f"{db}-wal")  # the other process saw our connection and left the WAL alone
    conn.execute("INSERT INTO t (v) VALUES ('after')")
    other = sqlite3.connect(db)
    assert [v for (v,) in other.execute("SELECT v FROM t ORDER BY id")] == ["ours", "after"]
    other.close()


def test_a_wal_database_is_backed_up_without_the_write_lock(tmp_path, monkeypatch):
    """In WAL mode the backup API reads in one read transaction, which never blocks the application's
    writes: a backup completes while another connection holds the write lock, and holds what was
    committed. (The file copy under the write lock waited for it: 0.6 s per GB of blocked writes.)"""
    path = tmp_path / "live.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None, timeout=0.5)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (id integer PRIMARY KEY, v text)")
    conn.execute("INSERT INTO t (v) VALUES ('committed in the WAL')")
    app = sqlite3.connect(path, isolation_level=None)
    app.execute("BEGIN IMMEDIATE")  # the application is writing
    app.execute("INSERT INTO t (v) VALUES ('not committed yet')")
    used = []
    real = backup._copy
    monkeypatch.setattr(backup, "_copy", lambda *a, **k: used.append(True) or real(*a, **k))
    dest = backup.take_backup(conn, tmp_path / "b" / "copy.sqlite3")
    app.execute("COMMIT")  # and was never held up
    assert used == [True] and rows(dest) == [(1, "committed in the WAL")]


RICH = """
CREATE TABLE a (id integer PRIMARY KEY AUTOINCREMENT, v text, g text GENERATED ALWAYS AS (upper(v)) STORED);
CREATE TABLE w (k text PRIMARY KEY, n int) WITHOUT ROWID;
CREATE TABLE log (what text);
CREATE TRIGGER a_log AFTER INSERT ON a BEGIN INSERT INTO log VALUES ('inserted ' || new.v); END;
CREATE VIEW av AS SELECT id, g FROM a;
CREATE INDEX a_v ON a (v);
INSERT INTO a (v) VALUES ('x'), ('y');
DELETE FROM a WHERE v = 'y';
INSERT INTO w VALUES ('k1', 1);
PRAGMA user_version = 7;
"""


def test_the_logical_restore_gives_back_the_same_database(tmp_path):
    conn = sqlite3.connect(tmp_path / "live.sqlite3", isolation_level=None)
    conn.executescript(RICH)
    saved = backup.take_backup(conn, tmp_path / "b" / "copy.sqlite3")
    before = list(conn.iterdump())
    conn.executescript("DROP VIEW av; DROP TABLE w; INSERT INTO a (v) VALUES ('z'); CREATE TABLE extra (q);"
                       "PRAGMA user_version = 9;")
    asked = []
    assert backup.restore_in_transaction(conn, saved, lambda c: asked.append(c.in_transaction) or True)
    assert asked == [True]  # the last check ran under the write lock
    # rows, the AUTOINCREMENT counter, triggers (which did not fire), the view, the index (in another order)
    assert sorted(conn.iterdump()) == sorted(before)
    assert conn.execute("PRAGMA user_version").fetchone() == (7,)
    assert conn.execute("PRAGMA database_list").fetchall()[1:] == []  # the backup is detached


def test_the_logical_restore_changes_nothing_when_told_no_or_given_virtual_tables(tmp_path):
    conn = sqlite3.connect(tmp_path / "live.sqlite3", isolation_level=None)
    conn.executescript(RICH)
    saved = backup.take_backup(conn, tmp_path / "b" / "copy.sqlite3")
    conn.execute("INSERT INTO a (v) VALUES ('after the backup')")
    after = list(conn.iterdump())
    assert not backup.restore_in_transaction(conn, saved, lambda c: False)
    assert list(conn.iterdump()) == after
    conn.execute("CREATE VIRTUAL TABLE search USING fts5(body)")
    after = list(conn.iterdump())
    with pytest.raises(backup.NeedsPageRestore):
        backup.restore_in_transaction(conn, saved, lambda c: True)
    assert list(conn.iterdump()) == after and not conn.in_transaction
