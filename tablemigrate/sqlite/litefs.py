"""LiteFS (fly.io's FUSE file system replicating SQLite databases): which node may write, and where.

Only the primary writes. On a replica, LiteFS puts a `.primary` file in its mount directory naming the
primary (its hostname and a newline); on the primary, and on a replica that lost its primary, there is
none (https://fly.io/docs/litefs/primary/). The mount holds the databases and their journal, WAL and SHM
files, flat: it refuses `mkdir` (EPERM), and takes any other file name for a new replicated database
(LiteFS's fuse.ParseFilename), so `backups/` and `<database>.tablemigrate.lock` belong outside it
(docs/how-to/litefs.md). The mount is found in /proc/self/mountinfo: LiteFS mounts with fsname
`litefs` (type `fuse`, source `litefs`); `fuse.litefs`, a subtype, is recognised too.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from tablemigrate.errors import ConfigurationError, LiteFSReplica

PRIMARY_FILE = ".primary"
MOUNTINFO = Path("/proc/self/mountinfo")  # the module's attribute, read at each call: tests point it elsewhere


def replica(db_path: str | Path) -> str | None:
    """The primary's name when `db_path` lies in a LiteFS replica's mount (its `.primary` file, beside
    the database: LiteFS keeps databases flat in the mount); None on a primary or without LiteFS.
    Reads one small file; creates nothing."""
    marker = Path(os.path.realpath(db_path)).parent / PRIMARY_FILE
    try:
        name = marker.read_text(errors="replace").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:  # it is there, so this node is a replica; only its text is not known
        return f"unknown ({marker}: {exc.strerror})"
    return name or "unknown (an empty .primary file)"


def refuse_on_replica(db_path: str | Path) -> None:
    """LiteFSReplica (exit 6) when `db_path` is on a LiteFS replica: before anything is opened or created."""
    primary = replica(db_path)
    if primary is not None:
        raise LiteFSReplica(
            f"{db_path} is on a LiteFS replica (the primary is {primary}): only the primary writes, nothing was "
            "written; run migrations on the primary, as an `exec` command of litefs.yml with `if-candidate: true` "
            "before the application's")


def _unescape(field: str) -> str:
    """mountinfo's octal escapes (a space is \\040, a backslash \\134)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mount_of(path: str | Path, mountinfo: str | Path | None = None) -> Path | None:
    """The LiteFS mount point `path` lies under, or None (another file system, or no mountinfo to read:
    not Linux). The deepest mount containing the path decides, as the kernel does. `mountinfo`: the
    file to read (default MOUNTINFO)."""
    try:
        text = Path(mountinfo or MOUNTINFO).read_text(errors="surrogateescape")
    except OSError:
        return None
    where = Path(os.path.realpath(path))
    best: tuple[int, bool, Path] | None = None
    for line in text.splitlines():
        mine, _sep, theirs = line.partition(" - ")
        fields, rest = mine.split(), theirs.split()
        if len(fields) < 5 or len(rest) < 2:
            continue
        point = Path(_unescape(fields[4]))
        if where != point and point not in where.parents:
            continue
        fstype, source = rest[0], rest[1]
        litefs = fstype == "fuse.litefs" or (fstype == "fuse" and source == "litefs")
        depth = len(point.parts)
        if best is None or depth >= best[0]:  # a later line of the same point mounted over the earlier
            best = (depth, litefs, point)
    return best[2] if best is not None and best[1] else None


def outside_mount(db_path: str | Path, backups_dir: Path | None) -> Path | None:
    """Where the files tablemigrate keeps beside a database (backups, the runner lock) go when the
    database lies in a LiteFS mount: `backups_dir` (TABLEMIGRATE_BACKUP_DIR), which must be set and lie
    outside any LiteFS mount (ConfigurationError, exit 2, otherwise). None for a database elsewhere."""
    mount = mount_of(db_path)
    if mount is None:
        return None
    inside = mount if backups_dir is None else mount_of(backups_dir)
    if inside is None:
        return backups_dir
    what = f"database {db_path}" if backups_dir is None else f"TABLEMIGRATE_BACKUP_DIR ({backups_dir})"
    raise ConfigurationError(f"{what} is in a LiteFS mount ({inside}), which holds only SQLite databases: set "
                             "TABLEMIGRATE_BACKUP_DIR to a directory outside it (the backups and the runner lock go "
                             "there); nothing was changed")
