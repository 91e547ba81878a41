"""Issue 11, the backup edges: dependency-ordered automatic restore, the pinned pre-deploy backup in a
crash loop, per-database backups and snapshots, verification of the very file written, interrupts
(no `.partial` left, never an empty reason), private backup directories, Python 3.10 result codes."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess

import pytest

from tablemigrate import signals
from tablemigrate.backups import backup as backups
from tablemigrate.backups import snapshots
from tablemigrate.errors import MigrationFailed, MigrationInterrupted, Stopped
from tablemigrate.history.status import Target
from tablemigrate.run import runner

from .helpers import module
from .test_run import dump, file_hash, project  # noqa: F401 (the fixture)


def objects(conn):
    return sorted(conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master").fetchall(),
                  key=lambda r: (r[0], r[1]))


def rows(path, sql):
    conn = sqlite3.connect(backups.readonly_uri(path), uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()




# 1. The automatic restore recreates objects in dependency order -----------------------------------

def test_failed_run_restores_views_on_views_and_an_instead_of_trigger(project):
    target, d = project
    # The view on the view is created first (SQLite allows it), so sqlite_master lists it before the
    # view it reads; the INSTEAD OF trigger needs its view to exist.
    module(d, "0001_create", "up = ['CREATE TABLE item (id integer PRIMARY KEY, name text)', "
           "\"INSERT INTO item (name) VALUES ('x'), ('y')\", "
           "'CREATE VIEW item_vv AS SELECT id, upper(name) AS shout FROM item_v', "
           "'CREATE VIEW item_v AS SELECT id, name FROM item', "
           "'CREATE TRIGGER item_v_insert INSTEAD OF INSERT ON item_v BEGIN "
           "INSERT INTO item (name) VALUES (new.name); END', "
           "'CREATE INDEX item_name ON item (name)']\n")
    runner.run(target, d)
    before_objects, before = objects(target.conn), dump(target)
    module(d, "0002_ok", "up = ['CREATE TABLE u (x)', \"INSERT INTO item (name) VALUES ('from 0002')\"]\n")
    module(d, "0003_bad", "def up(db):\n    db.execute(\"UPDATE item SET name = 'z'\")\n    raise ValueError('bad')\n")
    with pytest.raises(MigrationFailed, match="restored from backup"):
        runner.run(target, d)
    assert objects(target.conn) == before_objects
    assert sorted(dump(target)) == sorted(before)  # every row (sqlite_master's order may differ)
    target.conn.execute("INSERT INTO item_v (name) VALUES ('through the view')")  # the trigger is back
    assert target.conn.execute("SELECT shout FROM item_vv ORDER BY id").fetchall() == [
        ("X",), ("Y",), ("THROUGH THE VIEW",)]


def test_restore_still_recreates_a_view_that_was_already_broken_in_the_backup(tmp_path):
    live = sqlite3.connect(tmp_path / "app.sqlite3", isolation_level=None)
    live.execute("CREATE TABLE t (v)")
    live.execute("CREATE VIEW orphan AS SELECT * FROM gone")  # valid for SQLite until it is used
    saved = backups.take_backup(live, tmp_path / "backups" / "b.sqlite3")
    live.execute("CREATE TABLE extra (x)")
    assert backups.restore_in_transaction(live, saved, lambda conn: True)
    assert objects(live) == objects(sqlite3.connect(saved))
    live.close()


# 2. The crash loop keeps the pre-deploy backup -----------------------------------------------------

def test_crash_loop_keeps_the_pre_deploy_backup_until_a_run_succeeds(project):
    target, d = project
    runner.run(target, d)
    pre_deploy = target.conn.execute("SELECT id, v FROM t ORDER BY id").fetchall()
    module(d, "0002_add", "up = ['CREATE TABLE u (x)']\n")
    module(d, "0003_bad", "up = ['INSERT INTO t (id) VALUES (1)']\n")  # fails on every start

    def app_writes_while_running(sender, name, **kwargs):  # the application keeps writing meanwhile
        if name == "0003_bad":
            app = sqlite3.connect(target.path)
            app.execute("INSERT INTO t (v) VALUES ('during the run')")
            app.commit()
            app.close()

    messages = []
    signals.pre_migration.connect(app_writes_while_running)
    try:
        for restart in range(7):
            with pytest.raises(MigrationFailed, match="NOT restored" if restart == 0 else "unchanged") as failed:
                runner.run(target, d, keep=5)  # 0002_add stays applied: the application wrote after it
            messages.append(str(failed.value))
            app = sqlite3.connect(target.path)
            app.execute("INSERT INTO t (v) VALUES (?)", (f"between runs {restart}",))
            app.commit()
            app.close()
    finally:
        signals.pre_migration.disconnect(app_writes_while_running)
    kept = backups.automatic_backups(target.backups_dir, target.path)
    assert len(kept) == 5  # the disk is still bounded
    pre = [p for p in kept if rows(p, "SELECT id, v FROM t ORDER BY id") == pre_deploy]
    assert len(pre) == 1 and backups.pinned(target.backups_dir, target.path) == pre[0]
    assert rows(pre[0], "SELECT name FROM tablemigrate_history") == [("0001_create",)]
    assert all(f"backup {pre[0]} is kept until a run succeeds: it holds the database as it was before the "
               "first failed run" in message for message in messages)
    pin = backups.pin_path(target.backups_dir, target.path)
    assert stat.S_IMODE(os.stat(pin).st_mode) == 0o600 and pin.read_text().strip() == pre[0].name

    module(d, "0003_bad", "up = ['CREATE TABLE fixed (x)']\n")  # the fix is deployed
    assert [m.name for m in runner.run(target, d, keep=5)] == ["0003_bad"]
    assert not pin.exists() and backups.pinned(target.backups_dir, target.path) is None
    after = backups.automatic_backups(target.backups_dir, target.path)
    assert len(after) == 5 and not pre[0].exists()  # pruning by age resumes


@pytest.mark.subprocess
def test_a_run_killed_while_applying_leaves_its_backup_pinned(project, tmp_path):
    import signal
    import sys
    import time
    from pathlib import Path

    target, d = project
    runner.run(target, d)
    marker = tmp_path / "in-0003"
    module(d, "0002_add", "up = ['CREATE TABLE u (x)']\n")
    module(d, "0003_slow", "import pathlib, time\n\ndef up(db):\n"
           f"    pathlib.Path({str(marker)!r}).touch()\n    time.sleep(60)\n")
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, str(root / "tests" / "reliability" / "runner_process.py"),
                             str(target.path), str(d)], cwd=root, env=dict(os.environ, PYTHONPATH=str(root)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists(), proc.stderr.read() if proc.poll() is not None else "timed out"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    held = backups.pinned(target.backups_dir, target.path)  # 0002 committed, nothing was restored
    assert held is not None and rows(held, "SELECT name FROM tablemigrate_history") == [("0001_create",)]
    module(d, "0003_slow", "up = ['CREATE TABLE fast (x)']\n")
    assert [m.name for m in runner.run(target, d)] == ["0003_slow"]
    assert backups.pinned(target.backups_dir, target.path) is None


def failed_once(target, d):
    """Applied 0001, then a failed run (0002_bad fails on every run): returns the backup it pinned."""
    runner.run(target, d)
    module(d, "0002_bad", "up = ['INSERT INTO t (id) VALUES (1)']\n")
    with pytest.raises(MigrationFailed):
        runner.run(target, d, keep=2)
    held = backups.pinned(target.backups_dir, target.path)
    assert held is not None
    return held


def test_a_failed_run_pins_its_backup_and_the_pin_counts_within_keep(project):
    target, d = project
    first = failed_once(target, d)
    for _ in range(3):
        with pytest.raises(MigrationFailed, match=f"backup {first} is kept until a run succeeds"):
            runner.run(target, d, keep=2)
    kept = backups.automatic_backups(target.backups_dir, target.path)
    assert first in kept and len(kept) == 2


# 3. Each database's backups and snapshots are its own --------------------------------------------

def _db(path, value):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE IF NOT EXISTS t (v)")
    conn.execute("INSERT INTO t VALUES (?)", (value,))
    return conn


def test_app_db_and_app_sqlite3_keep_their_backups_apart(tmp_path):
    one, two = _db(tmp_path / "app.db", "db"), _db(tmp_path / "app.sqlite3", "sqlite3")
    shared = tmp_path / "backups"
    for conn, path in ((one, tmp_path / "app.db"), (two, tmp_path / "app.sqlite3")):
        for _ in range(3):
            backups.take_backup(conn, shared / backups.backup_name(path))
        snapshots.take_snapshot(conn, shared, "nightly")
    ones = backups.automatic_backups(shared, tmp_path / "app.db")
    twos = backups.automatic_backups(shared, tmp_path / "app.sqlite3")
    assert len(ones) == len(twos) == 3 and not set(ones) & set(twos)
    assert all(rows(p, "SELECT v FROM t") == [("db",)] for p in ones)
    listed = snapshots.listing(shared, tmp_path / "app.db")
    assert {e.path for e in listed} == set(ones) | {snapshots.snapshot_path(shared, "nightly", tmp_path / "app.db")}
    backups.prune(shared, tmp_path / "app.db", keep=1)
    assert backups.automatic_backups(shared, tmp_path / "app.sqlite3") == twos  # not pruned by the other

    theirs = snapshots.snapshot_path(shared, "nightly", tmp_path / "app.db")
    before, files_before = file_hash(tmp_path / "app.sqlite3"), sorted(shared.rglob("*"))
    with pytest.raises(snapshots.RestoreRefused, match="taken from another database.*allow_other_database") as info:
        snapshots.restore(two, tmp_path / "app.sqlite3", theirs, shared, lock_timeout=1)
    assert "\n" not in str(info.value)
    assert file_hash(tmp_path / "app.sqlite3") == before and sorted(shared.rglob("*")) == files_before
    # deliberately, it is possible
    snapshots.restore(two, tmp_path / "app.sqlite3", theirs, shared, lock_timeout=1, allow_other_database=True)
    assert two.execute("SELECT v FROM t").fetchall() == [("db",)]
    one.close()
    two.close()


def test_two_aliases_sharing_one_backup_dir(tmp_path):
    shared = tmp_path / "shared-backups"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    paths = {"default": tmp_path / "a" / "db.sqlite3", "other": tmp_path / "b" / "db.sqlite3"}
    conns = {alias: _db(path, alias) for alias, path in paths.items()}
    targets = {alias: Target(alias, conns[alias], paths[alias], shared) for alias in paths}
    for alias, target in targets.items():  # the same snapshot name for both: each its own
        snapshots.take_snapshot(target.conn, target.backups_dir, "nightly")
        backups.take_backup(target.conn, shared / backups.backup_name(target.path))
    default, other = targets["default"], targets["other"]
    assert [e.name for e in snapshots.listing(shared, default.path)] == [
        "nightly", backups.automatic_backups(shared, default.path)[0].name]
    conns["default"].execute("INSERT INTO t VALUES ('after the snapshot')")
    # `restore --name nightly` builds the path without the database: it means this database's snapshot
    snapshots.restore(default.conn, default.path, snapshots.snapshot_path(shared, "nightly"), shared, lock_timeout=1)
    assert default.conn.execute("SELECT v FROM t").fetchall() == [("default",)]
    # `restore --backup NAME` as `snapshots` lists it
    name = backups.automatic_backups(shared, default.path)[0].name
    snapshots.restore(default.conn, default.path, snapshots.resolve_backup(shared, name), shared, lock_timeout=1)
    # other's files are refused, by path or by listed name
    before = file_hash(default.path)
    for foreign in (snapshots.snapshot_path(shared, "nightly", other.path),
                    snapshots.resolve_backup(shared, backups.automatic_backups(shared, other.path)[0].name)):
        with pytest.raises(snapshots.RestoreRefused, match="another database"):
            snapshots.restore(default.conn, default.path, foreign, shared, lock_timeout=1)
    assert file_hash(default.path) == before
    for conn in conns.values():
        conn.close()


def test_a_file_of_unknown_origin_is_refused_unless_the_database_is_empty(tmp_path):
    made = _db(tmp_path / "elsewhere.sqlite3", "made by hand")
    made.close()
    live = _db(tmp_path / "app.sqlite3", "live")
    with pytest.raises(snapshots.RestoreRefused, match="does not record which database"):
        snapshots.restore(live, tmp_path / "app.sqlite3", tmp_path / "elsewhere.sqlite3", tmp_path / "backups", 1)
    live.close()
    empty = sqlite3.connect(tmp_path / "new.sqlite3", isolation_level=None)  # disaster recovery: a new file
    snapshots.restore(empty, tmp_path / "new.sqlite3", tmp_path / "elsewhere.sqlite3", tmp_path / "backups", 1)
    assert empty.execute("SELECT v FROM t").fetchall() == [("made by hand",)]
    empty.close()


# 4. Verification checks the file that was written ----------------------------------------------

def test_a_backup_check_that_reads_another_file_is_refused(tmp_path, monkeypatch):
    decoy = _db(tmp_path / "decoy.sqlite3", "a different, healthy database")
    decoy.close()
    live = _db(tmp_path / "app.sqlite3", "live")
    monkeypatch.setattr(backups, "readonly_uri", lambda path: (tmp_path / "decoy.sqlite3").as_uri() + "?mode=ro")
    with pytest.raises(backups.BackupError, match="another file"):
        backups.take_backup(live, tmp_path / "backups" / "b.sqlite3")
    assert not list((tmp_path / "backups").glob("b.sqlite3*"))
    live.close()


# 5. Interrupts, partial files, reasons, private directories -----------------------------------------

@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
def test_an_interrupted_backup_leaves_no_partial_file_and_is_reraised_unchanged(tmp_path, monkeypatch, interrupt):
    live = _db(tmp_path / "app.sqlite3", "live")
    real = backups._copy_file

    def copy_then_interrupted(conn, dest):
        real(conn, dest)
        assert dest.stat().st_size > 0  # something was written
        raise interrupt()

    monkeypatch.setattr(backups, "_copy_file", copy_then_interrupted)
    with pytest.raises(interrupt):
        backups.take_backup(live, tmp_path / "backups" / "b.sqlite3")
    assert sorted(p.name for p in (tmp_path / "backups").iterdir()) == [".gitignore"]
    live.close()


def test_a_backup_failing_its_check_leaves_no_partial_file(tmp_path, monkeypatch):
    live = _db(tmp_path / "app.sqlite3", "live")
    monkeypatch.setattr(backups, "verify", lambda path: (_ for _ in ()).throw(backups.BackupError("damaged")))
    with pytest.raises(backups.BackupError, match="damaged"):
        backups.take_backup(live, tmp_path / "backups" / "b.sqlite3")
    assert not list((tmp_path / "backups").glob("*.partial"))
    live.close()


def test_ctrl_c_in_a_data_step_after_an_earlier_migration_committed_restores_and_says_so(project):
    target, d = project
    runner.run(target, d)
    module(d, "0002_ok", "up = ['CREATE TABLE u (x)']\n")
    module(d, "0003_data", "def up(db):\n    db.execute(\"UPDATE t SET v = 'x'\")\n    raise KeyboardInterrupt\n")
    before = dump(target)
    with pytest.raises(MigrationFailed) as info:
        runner.run(target, d)
    message = str(info.value)
    assert message.startswith("migration 0003_data (up) interrupted (SIGINT); the database was restored")
    assert isinstance(info.value, MigrationInterrupted)
    assert isinstance(info.value.__cause__, KeyboardInterrupt)
    assert dump(target) == before
    assert not list(target.backups_dir.glob("*.partial"))


def test_no_message_built_from_an_exception_is_empty():
    assert backups.describe(KeyboardInterrupt()) == "interrupted (SIGINT)"
    assert backups.describe(Stopped("SIGTERM")) == "interrupted (SIGTERM)"  # the signal the command turned into it
    assert backups.describe(SystemExit()) == "interrupted (SystemExit)"
    assert backups.describe(ValueError()) == "ValueError"
    assert backups.describe(OSError("disk full")) == "disk full"


@pytest.mark.subprocess
def test_every_backup_directory_is_private_and_ignored_by_git(tmp_path, monkeypatch):
    old = os.umask(0o022)
    try:
        live = _db(tmp_path / "app.sqlite3", "password hash")
        path = snapshots.take_snapshot(live, tmp_path / "backups", "first")
        backups.take_backup(live, tmp_path / "backups" / backups.backup_name(tmp_path / "app.sqlite3"))
        live.close()
    finally:
        os.umask(old)
    for directory in (tmp_path / "backups", tmp_path / "backups" / "snapshots", path.parent):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700, directory
    assert (tmp_path / "backups" / ".gitignore").read_text().splitlines()[-1] == "*"
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, env=env)
    subprocess.run(["git", "-C", str(tmp_path), "add", "-A"], check=True, env=env)
    staged = subprocess.run(["git", "-C", str(tmp_path), "diff", "--cached", "--name-only"], check=True,
                            capture_output=True, text=True, env=env).stdout.split()
    assert "app.sqlite3" in staged and not [name for name in staged if name.startswith("backups/")]


# 6. Python 3.10: no sqlite3.SQLITE_BUSY --------------------------------------------------------------

def test_restore_with_a_timeout_works_without_the_3_11_result_code_constants(project, monkeypatch):
    target, d = project
    runner.run(target, d)
    snap = snapshots.take_snapshot(target.conn, target.backups_dir, "s")
    target.conn.execute("DELETE FROM t")
    monkeypatch.delattr(sqlite3, "SQLITE_BUSY", raising=False)  # as on Python 3.10
    monkeypatch.delattr(sqlite3, "SQLITE_LOCKED", raising=False)
    # with a timeout, the backup API's progress callback compares each step's result code
    snapshots.restore(target.conn, target.path, snap, target.backups_dir, lock_timeout=1)
    assert target.conn.execute("SELECT v FROM t ORDER BY id").fetchall() == [("a",), ("b",)]


def test_a_pin_left_by_a_streak_resolved_otherwise_does_not_cost_the_next_streak_its_backup(project):
    """A failing deploy resolved by removing its modules (the next run finds nothing pending) ends the
    streak: the next failing deploy pins, and keeps, the backup taken just before it."""
    target, d = project
    runner.run(target, d)
    module(d, "0002_bad", "up = ['INSERT INTO t (id) VALUES (1)']\n")
    for _restart in range(3):
        with pytest.raises(MigrationFailed):
            runner.run(target, d, keep=2)
    assert backups.pinned(target.backups_dir, target.path) is not None
    (d / "0002_bad.py").unlink()
    assert runner.run(target, d, keep=2) == []  # nothing pending: the streak is over
    assert backups.pinned(target.backups_dir, target.path) is None
    target.conn.execute("INSERT INTO t (v) VALUES ('before the second deploy')")
    before = target.conn.execute("SELECT id, v FROM t ORDER BY id").fetchall()
    module(d, "0003_bad", "up = ['INSERT INTO t (id) VALUES (1)']\n")
    for _restart in range(4):
        with pytest.raises(MigrationFailed):
            runner.run(target, d, keep=2)
    kept = backups.pinned(target.backups_dir, target.path)
    assert kept is not None and rows(kept, "SELECT id, v FROM t ORDER BY id") == before
