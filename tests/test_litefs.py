"""LiteFS (issue 26, item 5): on a replica the commands that write the database refuse with exit 6 and
create nothing; on the primary, backups and the runner lock stay out of the FUSE mount.

No real LiteFS here (it needs FUSE and a lease): a replica's mount is a directory with a `.primary` file,
as LiteFS shows it; a primary's mount is a directory that a fake /proc/self/mountinfo lists as LiteFS's
(`litefs.MOUNTINFO`, read at each call). In-process: the command's exit codes and files are what is tested."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from tablemigrate.errors import ConfigurationError, LiteFSReplica
from tablemigrate.sqlite import litefs
from tablemigrate.sqlite.lock import run_lock

FIRST = "0001_create_item"
SECOND = "0002_create_note"


@pytest.fixture
def lfs(tmp_path, settings):
    """An alias 'lfs' on tmp_path/mnt/db.sqlite3 (not created), its migrations in tmp_path/m (FIRST)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    settings.TABLEMIGRATE_MIGRATIONS_DIR = tmp_path / "m"
    settings.DATABASES["lfs"] = dict(connections["default"].settings_dict, NAME=str(mnt / "db.sqlite3"), TEST={})
    module(tmp_path / "m", FIRST, "up = ['CREATE TABLE item (id integer PRIMARY KEY, name text)', "
                                  "\"INSERT INTO item (name) VALUES ('a')\"]\ndown = ['DROP TABLE item']\n")
    yield mnt / "db.sqlite3"
    connections["lfs"].close()
    del connections["lfs"]
    del settings.DATABASES["lfs"]


def module(directory: Path, name: str, text: str) -> None:
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.py").write_text(text)


def tm(*args: str) -> str:
    out = io.StringIO()
    try:
        call_command("tablemigrate", *args, "--database", "lfs", "--noinput", stdout=out, stderr=io.StringIO(),
                     verbosity=0)
    finally:
        connections["lfs"].close()
    return out.getvalue()


def tree(root: Path) -> dict[str, str]:
    """Every file under `root` (directories too) and a hash of its bytes."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def refused(*args: str) -> CommandError:
    with pytest.raises(CommandError) as info:
        tm(*args)
    return info.value


def fake_mountinfo(tmp_path: Path, monkeypatch, mount: Path, fstype: str = "fuse", source: str = "litefs") -> None:
    info = tmp_path / "mountinfo"
    info.write_text("22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
                    f"90 22 0:50 / {mount.resolve()} rw,nosuid,nodev,relatime shared:60 - {fstype} {source} "
                    "rw,user_id=0,group_id=0\n")
    monkeypatch.setattr(litefs, "MOUNTINFO", info)


# A replica ------------------------------------------------------------------------------------------

REPLICA_LINE = ("is on a LiteFS replica (the primary is primary-1.vm.app.internal): only the primary writes, "
                "nothing was written")


@pytest.mark.parametrize("args", [["run"], ["run", "--no-backup"], ["revert"], ["restore", "--name", "before"],
                                  ["baseline"]], ids=" ".join)
def test_a_writing_command_on_a_replica_exits_6_and_writes_nothing(lfs, args):
    tm("run")
    tm("snapshot", "--name", "before")
    module(lfs.parent.parent / "m", SECOND, "up = ['CREATE TABLE note (id integer PRIMARY KEY)']\n"
                                            "down = ['DROP TABLE note']\n")
    (lfs.parent / ".primary").write_text("primary-1.vm.app.internal\n")  # as LiteFS writes it: a newline after
    before = tree(lfs.parent.parent)
    error = refused(*args)
    assert error.returncode == LiteFSReplica.exit_code == 6
    message = str(error)
    assert REPLICA_LINE in message and "if-candidate: true" in message and "\n" not in message
    assert tree(lfs.parent.parent) == before  # no lock file, backup, journal; the database's bytes the same


@pytest.mark.parametrize("args", [["run"], ["restore", "--name", "before"], ["baseline"]], ids=" ".join)
def test_a_missing_database_on_a_replica_stays_missing(lfs, args):
    (lfs.parent / ".primary").write_text("primary-1.vm.app.internal\n")
    before = tree(lfs.parent.parent)
    assert refused(*args).returncode == 6
    assert not lfs.exists() and tree(lfs.parent.parent) == before


def test_reading_commands_work_on_a_replica(lfs):
    tm("run")
    module(lfs.parent.parent / "m", SECOND, "up = ['CREATE TABLE note (id integer PRIMARY KEY)']\n"
                                            "down = ['DROP TABLE note']\n")
    (lfs.parent / ".primary").write_text("primary-1\n")
    data = lfs.read_bytes()
    assert f"[ ] {SECOND}" in tm("show")
    assert "item" in tm("stats") and "table item" in tm("inspect")
    assert f"would apply {SECOND}" in tm("run", "--dry-run")
    assert refused("run", "--check").returncode == 4  # pending, as on any node
    assert lfs.read_bytes() == data


def test_replica_reads_the_primary_file_beside_the_database(tmp_path):
    assert litefs.replica(tmp_path / "db.sqlite3") is None
    (tmp_path / ".primary").write_text("host-a\n")
    assert litefs.replica(tmp_path / "db.sqlite3") == "host-a"
    assert litefs.replica(tmp_path / "missing-too.sqlite3") == "host-a"  # the database need not exist


# The mount, from mountinfo --------------------------------------------------------------------------

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 8:17 / /data rw,relatime shared:2 - ext4 /dev/sdb1 rw
90 22 0:50 / /litefs rw,nosuid,nodev,relatime shared:60 - fuse litefs rw,user_id=0,group_id=0,allow_other
91 22 0:51 / /other\\040fs rw,nosuid,nodev - fuse.litefs litefs rw,user_id=0,group_id=0
92 22 0:52 / /sshfs rw,nosuid,nodev - fuse.sshfs user@host:/ rw,user_id=0,group_id=0
93 30 0:53 / /data/over rw - fuse litefs rw
94 30 8:18 / /data/over rw - ext4 /dev/sdc1 rw
"""


def test_mount_of_finds_the_litefs_mount_a_path_lies_under(tmp_path):
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO)
    assert litefs.mount_of("/litefs/db.sqlite3", info) == Path("/litefs")  # LiteFS's own: type fuse, source litefs
    assert litefs.mount_of("/litefs", info) == Path("/litefs")
    assert litefs.mount_of("/other fs/db", info) == Path("/other fs")  # a subtype, and an escaped space
    assert litefs.mount_of("/litefs-backups/x", info) is None  # a name that only starts like the mount
    assert litefs.mount_of("/data/backups/x", info) is None
    assert litefs.mount_of("/sshfs/db", info) is None  # another FUSE file system
    assert litefs.mount_of("/data/over/db", info) is None  # mounted over: the last mount of a point decides
    assert litefs.mount_of("/litefs/db", tmp_path / "no-mountinfo") is None  # not Linux


# A primary ------------------------------------------------------------------------------------------

def test_a_primary_keeps_backups_and_the_lock_outside_the_mount(lfs, tmp_path, settings, monkeypatch):
    mnt = lfs.parent
    fake_mountinfo(tmp_path, monkeypatch, mnt)
    outside = tmp_path / "outside"
    settings.TABLEMIGRATE_BACKUP_DIR = outside
    tm("run")
    assert sorted(p.name for p in mnt.iterdir()) == ["db.sqlite3"]  # no lock file, no backups/ in the mount
    assert (outside / "db.sqlite3.tablemigrate.lock").is_file()
    module(tmp_path / "m", SECOND, "up = ['CREATE TABLE note (id integer PRIMARY KEY)']\ndown = ['DROP TABLE note']\n")
    for backups in (None, mnt / "backups"):  # unset, or set inside the mount
        settings.TABLEMIGRATE_BACKUP_DIR = backups
        before = tree(tmp_path)
        for args in (["run"], ["revert"], ["run", "--dry-run"], ["snapshot", "--name", "s"], ["baseline"]):
            error = refused(*args)
            assert error.returncode == 2 and "\n" not in str(error), args
            assert f"is in a LiteFS mount ({mnt.resolve()}), which holds only SQLite databases: set " \
                   "TABLEMIGRATE_BACKUP_DIR to a directory outside it" in str(error), args
        assert tree(tmp_path) == before
    assert f"[ ] {SECOND}" in tm("show")  # reading needs no backups directory
    settings.TABLEMIGRATE_BACKUP_DIR = outside
    tm("run")
    tm("snapshot", "--name", "s")
    tm("restore", "--name", "s")  # its lock, its safety backup: outside too
    assert sorted(p.name for p in mnt.iterdir()) == ["db.sqlite3"]
    assert any(p.suffix == ".sqlite3" for p in outside.iterdir())  # the run's backup
    assert "lock" not in tm("snapshots")


def test_the_lock_of_a_database_in_a_litefs_mount_is_in_the_backups_directory(tmp_path, monkeypatch):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    fake_mountinfo(tmp_path, monkeypatch, mnt, fstype="fuse.litefs", source="litefs")
    with pytest.raises(ConfigurationError, match="LiteFS mount"):
        with run_lock(mnt / "db", 1):
            pass
    with run_lock(mnt / "db", 1, tmp_path / "b" / "c"):
        assert (tmp_path / "b" / "c" / "db.tablemigrate.lock").is_file()
    assert list(mnt.iterdir()) == []


def test_a_database_outside_litefs_keeps_its_lock_beside_it(tmp_path, monkeypatch):
    fake_mountinfo(tmp_path, monkeypatch, tmp_path / "elsewhere")
    with run_lock(tmp_path / "db", 1, tmp_path / "b"):
        assert (tmp_path / "db.tablemigrate.lock").is_file()
    assert not (tmp_path / "b").exists()
