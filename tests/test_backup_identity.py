"""Issue 23 item 7: backups belong to a database, not to its path. A database carries an identity
(tablemigrate_identity) that its backups and snapshots copy with its pages; a project copied or moved
with its backups keeps listing, restoring, pinning and pruning them, another database's file is still
refused, and files from before identities still go by the key in their names."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tablemigrate.backups import backup as backups
from tablemigrate.backups import snapshots
from tablemigrate.backups.identity import identity_at, read_identity
from tablemigrate.errors import MigrationFailed
from tablemigrate.history.status import Target
from tablemigrate.run import runner

from .helpers import copy_example_project, tablemigrate
from .test_edges_backups import failed_once
from .test_run import file_hash, project  # noqa: F401 (the fixture)


def _db(path: Path, value: str) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE IF NOT EXISTS t (v)")
    conn.execute("INSERT INTO t VALUES (?)", (value,))
    return conn


def _values(conn: sqlite3.Connection) -> list[str]:
    return [v for (v,) in conn.execute("SELECT v FROM t ORDER BY rowid")]


def _backup(conn: sqlite3.Connection, db_path: Path, directory: Path) -> Path:
    return backups.take_backup(conn, directory / backups.backup_name(db_path))


def _move(conn: sqlite3.Connection, old: Path, new: Path) -> sqlite3.Connection:
    conn.close()
    new.parent.mkdir(parents=True, exist_ok=True)
    os.rename(old, new)
    return sqlite3.connect(new, isolation_level=None)


# The command, in separate processes, on copies of the example project -----------------------------

def _site(path: Path) -> Path:
    path.mkdir()
    return copy_example_project(path)


def _manage(site: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return tablemigrate(site, *args, "--noinput", check=check)


def _marker(db: Path, sql: str) -> list:
    conn = sqlite3.connect(db)
    try:
        out = conn.execute(sql).fetchall()
        conn.commit()
        return out
    finally:
        conn.close()


@pytest.mark.subprocess
def test_a_copied_project_lists_and_restores_its_own_snapshot_and_backups(tmp_path):
    site = _site(tmp_path / "site")
    _manage(site, "run")  # one automatic backup, taken before the modules were applied
    _manage(site, "snapshot", "--name", "s1")
    subprocess.run(["cp", "-a", str(site), str(tmp_path / "site2")], check=True)
    site2 = tmp_path / "site2"
    db, db2 = site / "example_project" / "db.sqlite3", site2 / "example_project" / "db.sqlite3"
    _marker(db2, "CREATE TABLE after_the_snapshot (x)")

    listing = _manage(site2, "snapshots").stdout
    kinds = [line.split()[:2] for line in listing.splitlines()[1:]]
    (backup_name,) = [name for kind, name in kinds if kind == "backup"]
    assert ["snapshot", "s1"] in kinds, listing
    out = _manage(site2, "restore", "--name", "s1").stdout
    assert str(site2 / "example_project" / "backups") in out, out  # its own copy, not the original's
    assert _marker(db2, "SELECT name FROM sqlite_master WHERE name = 'after_the_snapshot'") == []
    _manage(site2, "restore", "--backup", backup_name)
    assert _marker(db2, "SELECT count(*) FROM tablemigrate_history") == [(0,)]  # taken before the run
    # the original is untouched, and still lists its own files only
    assert _marker(db, "SELECT count(*) FROM tablemigrate_history") == [(7,)]
    original = _manage(site, "snapshots").stdout
    assert "s1" in original and str(site2) not in original


@pytest.mark.subprocess
def test_another_projects_backup_is_refused_even_under_this_databases_name(tmp_path):
    """The content decides, not the name: another project's backup copied in under a name this database's
    backups have is refused, with the usual one-line error and exit code 2."""
    site, other = _site(tmp_path / "site"), _site(tmp_path / "other")
    _manage(site, "run")
    _manage(other, "run")
    db = site / "example_project" / "db.sqlite3"
    (ours,) = (site / "example_project" / "backups").glob("*.sqlite3")
    (theirs,) = (other / "example_project" / "backups").glob("*.sqlite3")
    disguised = ours.with_name(ours.name[:-31] + "20000101T000000_000000Z.sqlite3")  # older than ours
    shutil.copy(theirs, disguised)
    before = file_hash(db)
    for given in (str(theirs), disguised.name):
        refused = _manage(site, "restore", "--backup", given, check=False)
        assert refused.returncode == 2, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert "was taken from another database" in refused.stderr and "--from-other-database" in refused.stderr
    assert file_hash(db) == before
    assert disguised.name not in _manage(site, "snapshots").stdout
    _manage(site, "restore", "--backup", disguised.name, "--from-other-database")


# The library ----------------------------------------------------------------------------------------

def test_a_database_moved_to_another_path_keeps_its_snapshots_and_backups(tmp_path):
    shared = tmp_path / "backups"  # the backups directory stays; the database moves (another stem too)
    old, new = tmp_path / "a" / "app.sqlite3", tmp_path / "b" / "renamed.sqlite3"
    conn = _db(old, "first")
    first = _backup(conn, old, shared)
    snapshots.take_snapshot(conn, shared, "nightly")
    conn.execute("INSERT INTO t VALUES ('second')")
    second = _backup(conn, old, shared)
    conn = _move(conn, old, new)
    conn.execute("INSERT INTO t VALUES ('after the move')")

    assert [(e.kind, e.name) for e in snapshots.listing(shared, new)] == [
        ("snapshot", "nightly"), ("backup", first.name), ("backup", second.name)]
    snapshots.restore(conn, new, snapshots.find_snapshot(shared, "nightly", new), shared, lock_timeout=1)
    assert _values(conn) == ["first"]
    snapshots.restore(conn, new, snapshots.resolve_backup(shared, second.name), shared, lock_timeout=1)
    assert _values(conn) == ["first", "second"]
    # `restore --name` as the command builds it, and a new snapshot of that name is refused
    snapshots.restore(conn, new, snapshots.snapshot_path(shared, "nightly"), shared, lock_timeout=1)
    assert _values(conn) == ["first"]
    with pytest.raises(snapshots.ConfigurationError, match="already exists"):
        snapshots.take_snapshot(conn, shared, "nightly")

    # Another database's file, restored deliberately: the live database stays itself, so its own
    # backups, and the safety backup of that restore, are still its own.
    foreign = _db(tmp_path / "c" / "other.sqlite3", "other")
    theirs = _backup(foreign, tmp_path / "c" / "other.sqlite3", shared)
    with pytest.raises(snapshots.RestoreRefused, match="taken from another database"):
        snapshots.restore(conn, new, theirs, shared, lock_timeout=1)
    identity = read_identity(conn)
    safety = snapshots.restore(conn, new, theirs, shared, lock_timeout=1, allow_other_database=True)
    assert _values(conn) == ["other"] and read_identity(conn) == identity
    assert {first, second, safety} <= {e.path for e in snapshots.listing(shared, new)}
    assert theirs not in {e.path for e in snapshots.listing(shared, new)}
    foreign.close()
    conn.close()


def test_pruning_after_a_move_keeps_the_newest_of_old_and_new_names_and_the_pin_survives(tmp_path):
    shared = tmp_path / "backups"
    old, new = tmp_path / "a" / "app.sqlite3", tmp_path / "b" / "moved.sqlite3"
    conn = _db(old, "v")
    before = [_backup(conn, old, shared) for _ in range(3)]
    backups.pin(shared, old, before[0])  # a failed run's backup, kept until a run succeeds
    conn = _move(conn, old, new)
    assert backups.pinned(shared, new) == before[0]
    after = [_backup(conn, new, shared) for _ in range(3)]
    assert backups.automatic_backups(shared, new) == before + after  # by time, whatever the name

    backups.prune(shared, new, keep=3)
    assert backups.automatic_backups(shared, new) == [before[0]] + after[-2:]  # the pin takes the oldest place
    backups.unpin(shared, new)  # a run succeeded: the pin written under the old path goes too
    assert backups.pinned(shared, new) is None and not list(shared.glob("*.pin"))
    newest = _backup(conn, new, shared)
    backups.prune(shared, new, keep=3)
    assert backups.automatic_backups(shared, new) == after[-2:] + [newest]  # pruning by age again
    assert sorted(shared.glob("*.sqlite3")) == sorted(after[-2:] + [newest])
    conn.close()


def test_a_failing_run_after_a_move_keeps_the_backup_pinned_before_it(project, tmp_path):  # noqa: F811
    target, d = project
    held = failed_once(target, d)
    moved = tmp_path / "elsewhere" / "app.sqlite3"  # the same backups directory
    target.conn.close()
    moved.parent.mkdir()
    os.rename(target.path, moved)
    target = Target("default", sqlite3.connect(moved, isolation_level=None), moved, target.backups_dir)
    for _restart in range(3):
        with pytest.raises(MigrationFailed, match=f"backup {held} is kept until a run succeeds"):
            runner.run(target, d, keep=2)
    assert held in backups.automatic_backups(target.backups_dir, moved)
    assert len(backups.automatic_backups(target.backups_dir, moved)) == 2
    (d / "0002_bad.py").unlink()
    assert runner.run(target, d, keep=2) == []  # nothing pending: the streak is over, the old pin goes
    assert backups.pinned(target.backups_dir, moved) is None and not list(target.backups_dir.glob("*.pin"))
    target.conn.close()


def test_databases_sharing_a_backups_directory_list_only_their_own(tmp_path):
    shared = tmp_path / "shared-backups"
    paths = {"default": tmp_path / "a" / "db.sqlite3", "other": tmp_path / "b" / "db.sqlite3"}
    conns = {alias: _db(path, alias) for alias, path in paths.items()}
    for alias, path in paths.items():
        snapshots.take_snapshot(conns[alias], shared, "nightly")
        _backup(conns[alias], path, shared)
    other_files = {e.path for e in snapshots.listing(shared, paths["other"])}
    assert len(other_files) == 2
    moved = tmp_path / "a2" / "db.sqlite3"  # one of them moves; both still list only their own
    conns["default"] = _move(conns["default"], paths["default"], moved)
    _backup(conns["default"], moved, shared)
    mine = {e.path for e in snapshots.listing(shared, moved)}
    assert len(mine) == 3 and not mine & other_files
    assert {e.path for e in snapshots.listing(shared, paths["other"])} == other_files
    backups.prune(shared, moved, keep=1)
    assert {e.path for e in snapshots.listing(shared, paths["other"])} == other_files
    for theirs in other_files:
        with pytest.raises(snapshots.RestoreRefused, match="taken from another database"):
            snapshots.restore(conns["default"], moved, theirs, shared, lock_timeout=1)

    # A copy of `other` beside it, sharing its backups directory, while `other` lives on: the same
    # lineage, but `other` writes its backups there, so they are not the copy's to list, restore or prune.
    copy = tmp_path / "b" / "copy.sqlite3"
    shutil.copy(paths["other"], copy)
    twin = sqlite3.connect(copy, isolation_level=None)
    assert snapshots.listing(shared, copy) == []
    own = _backup(twin, copy, shared)
    assert [e.path for e in snapshots.listing(shared, copy)] == [own]
    backups.prune(shared, copy, keep=0)
    assert {e.path for e in snapshots.listing(shared, paths["other"])} == other_files
    with pytest.raises(snapshots.RestoreRefused, match=f"the copy of this one at {paths['other']}"):
        snapshots.restore(twin, copy, sorted(other_files)[0], shared, lock_timeout=1)
    for conn in (*conns.values(), twin):
        conn.close()


def test_a_backup_from_before_identities_still_restores_by_its_path_key(tmp_path):
    shared = tmp_path / "backups"
    path = tmp_path / "app.sqlite3"
    conn = _db(path, "old")
    legacy = shared / backups.backup_name(path)  # as an earlier version wrote it: no identity inside
    shared.mkdir()
    target = sqlite3.connect(legacy)
    conn.backup(target)
    target.close()
    assert identity_at(legacy) is None
    conn.execute("INSERT INTO t VALUES ('new')")
    current = _backup(conn, path, shared)  # the database is given its identity
    identity = read_identity(conn)
    assert identity is not None and identity_at(current) == identity
    assert [e.path for e in snapshots.listing(shared, path)] == [legacy, current]
    snapshots.restore(conn, path, legacy, shared, lock_timeout=1)
    assert _values(conn) == ["old"] and read_identity(conn) == identity  # it stays itself
    assert {legacy, current} <= {e.path for e in snapshots.listing(shared, path)}
    # an identity-less file named for another path is still another database's
    elsewhere = shared / backups.backup_name(tmp_path / "elsewhere.sqlite3")
    shutil.copy(legacy, elsewhere)
    with pytest.raises(snapshots.RestoreRefused, match="taken from another database"):
        snapshots.restore(conn, path, elsewhere, shared, lock_timeout=1)
    conn.close()


def test_a_run_with_nothing_pending_opens_no_backup_file(project, monkeypatch):  # noqa: F811
    target, d = project
    runner.run(target, d)
    for _ in range(3):
        backups.take_backup(target.conn, target.backups_dir / backups.backup_name(target.path))
    opened = []
    real = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda name, *a, **k: opened.append(str(name)) or real(name, *a, **k))
    assert runner.run(target, d) == []
    assert not [name for name in opened if "backups" in name]


def test_a_read_only_database_is_snapshotted_without_an_identity(tmp_path):
    path = tmp_path / "app.sqlite3"
    _db(path, "v").close()
    conn = sqlite3.connect(backups.readonly_uri(path), uri=True, isolation_level=None)
    snap = snapshots.take_snapshot(conn, tmp_path / "backups", "ro", path)
    assert identity_at(snap) is None and identity_at(path) is None
    assert [e.path for e in snapshots.listing(tmp_path / "backups", path)] == [snap]
    conn.close()


def test_many_databases_sharing_a_backups_directory_open_each_backup_once(tmp_path, monkeypatch):
    """`run --all-databases` over tenants that share one backups directory: each database's run lists its
    backups among every tenant's. A backup file never changes, so one process opens each once, not once
    per database (quadratic in the fleet's size otherwise), and still lists only each database's own."""
    from tablemigrate.backups import identity

    monkeypatch.setattr(identity, "_FILE_IDENTITIES", {}, raising=False)
    shared = tmp_path / "backups"
    paths = [tmp_path / f"tenant{i}.sqlite3" for i in range(4)]
    taken = {}
    for path in paths:
        conn = _db(path, path.stem)
        taken[path] = {_backup(conn, path, shared), _backup(conn, path, shared)}
        conn.close()
    opened: list[str] = []
    real = identity.identity_at
    monkeypatch.setattr(identity, "identity_at", lambda p: opened.append(os.fspath(p)) or real(p))
    for _ in range(2):  # two rounds: a rerun over the same fleet opens nothing again
        for path in paths:
            assert set(backups.automatic_backups(shared, path)) == taken[path]
    files = [p for p in opened if p.startswith(str(shared))]
    assert sorted(files) == sorted({os.fspath(p) for found in taken.values() for p in found})


def test_tenants_copied_from_one_database_read_each_others_identity_once(tmp_path, monkeypatch):
    """Tenants made by copying one database share its identity, so each one's backups, seen from another
    tenant, send it to read that tenant's live file (does a copy live on there?). One process reads each
    live file once while it is unchanged, and again once it is written (a new identity is seen)."""
    from tablemigrate.backups import identity

    monkeypatch.setattr(identity, "_FILE_IDENTITIES", {}, raising=False)
    shared = tmp_path / "backups"
    first = _db(tmp_path / "tenant0.sqlite3", "x")
    before = _backup(first, tmp_path / "tenant0.sqlite3", shared)  # it has an identity now; the copies take it
    first.close()
    paths = [tmp_path / "tenant0.sqlite3"] + [tmp_path / f"tenant{i}.sqlite3" for i in range(1, 4)]
    for path in paths[1:]:
        shutil.copy(paths[0], path)
    taken = {}
    for path in paths:
        conn = sqlite3.connect(path, isolation_level=None)
        taken[path] = {p for p in (_backup(conn, path, shared),)}
        conn.close()
    taken[paths[0]].add(before)
    opened: list[str] = []
    real = identity.identity_at
    monkeypatch.setattr(identity, "identity_at", lambda p: opened.append(os.fspath(p)) or real(p))
    others: list[str] = []  # live files read while listing another database's backups
    for _ in range(2):
        for path in paths:
            opened.clear()
            assert set(backups.automatic_backups(shared, path)) == taken[path]
            others += [p for p in opened if not p.startswith(str(shared)) and p != os.fspath(path)]
    assert others and sorted(others) == sorted(set(others)), others  # each read once, over both rounds
    conn = sqlite3.connect(paths[1], isolation_level=None)
    conn.execute("UPDATE tablemigrate_identity SET backups = 'elsewhere'")  # written: read again
    conn.close()
    opened.clear()
    backups.automatic_backups(shared, paths[0])
    assert os.fspath(paths[1]) in opened
