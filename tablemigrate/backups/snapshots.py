"""Named snapshots, the listing of snapshots and automatic backups, and restore from either.

Snapshots are full copies made with the online backup API (mode 0600, checked), kept in
`<backups>/snapshots/<stem>-<key>/<name>.sqlite3` (one directory per path of a database; which database
a snapshot belongs to is decided from its content, see identity.py), never pruned. A restore refuses a
file taken from another database unless the live one is empty or the caller says so; it takes a safety
backup of the current state first, copies through the backup API onto the live database (safe with WAL
and with other open connections) and folds the WAL back into the file, all under the runner lock.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from tablemigrate.errors import ConfigurationError, RestoreRefused, is_readonly
from tablemigrate.sqlite.introspect import HISTORY_TABLE
from tablemigrate.sqlite.lock import run_lock
from tablemigrate.sqlite.sqltext import readonly_uri
from tablemigrate.sqlite.transaction import write_transaction

from . import backup as backups
from .identity import TAG

logger = logging.getLogger("tablemigrate")

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name) or ".." in name:
        raise ConfigurationError(
            f"invalid snapshot name {name!r}: use 1-100 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit (no path separators, no '..')")
    return name


def snapshot_dir(backups_dir: Path, db_path: Path | None = None) -> Path:
    """Where the snapshots of the database at `db_path` live (without it: the shared directory that
    holds one directory per database, and the snapshots of versions before per-database keys)."""
    shared = backups_dir / "snapshots"
    return shared if db_path is None else shared / backups.database_tag(db_path)


def snapshot_path(backups_dir: Path, name: str, db_path: Path | None = None) -> Path:
    """Where the snapshot `name` of the database at `db_path` is written. Without `db_path` the path is
    in the shared directory; `restore` then takes it to mean this database's snapshot of that name."""
    return snapshot_dir(backups_dir, db_path) / f"{check_name(name)}.sqlite3"


def own_snapshots(backups_dir: Path, db_path: Path, who: backups.Owner | None = None) -> list[Path]:
    """The snapshots of this database, in every `snapshots/<stem>-<key>/` directory (those it took
    under an earlier path too), by name."""
    shared = snapshot_dir(backups_dir)
    if not shared.is_dir():
        return []
    who = who or backups.owner(db_path)
    found = [p for directory in shared.iterdir() if directory.is_dir() and TAG.fullmatch(directory.name)
             for p in directory.glob("*.sqlite3") if p.is_file() and who.owns(p)]
    return sorted(found, key=lambda p: (p.stem, str(p)))


def find_snapshot(backups_dir: Path, name: str, db_path: Path) -> Path:
    """This database's snapshot `name`: under its present path's directory, else the one it took under
    an earlier path (the path it would be written to when there is none: a restore says "no such
    file")."""
    here = snapshot_path(backups_dir, name, db_path)
    if here.exists():
        return here
    found = [p for p in own_snapshots(backups_dir, db_path) if p.stem == name]
    if len(found) > 1:
        raise ConfigurationError(f"this database has more than one snapshot {name!r} ({', '.join(map(str, found))}); "
                                 "restore one with --backup FILE")
    return found[0] if found else here


def database_path(conn: sqlite3.Connection) -> Path:
    """The file behind `conn` (SQLite's own answer, `PRAGMA database_list`)."""
    name = conn.execute("PRAGMA database_list").fetchone()[2]
    if not name:
        raise ConfigurationError("an in-memory or temporary database has no snapshots")
    return Path(name)


def take_snapshot(conn: sqlite3.Connection, backups_dir: Path, name: str, db_path: Path | None = None) -> Path:
    db_path = db_path or database_path(conn)
    path = snapshot_path(backups_dir, name, db_path)
    existing = find_snapshot(backups_dir, name, db_path)
    if existing.exists():
        raise ConfigurationError(f"snapshot {name!r} already exists ({existing}); choose another name")
    return backups.take_backup(conn, path, backups_dir)


@dataclass(frozen=True)
class Entry:
    kind: str  # "snapshot" | "backup"
    name: str
    path: Path
    created: str
    size: int
    last_migration: str | None  # the newest migration recorded inside the file


def last_migration(path: Path) -> str | None:
    try:
        conn = sqlite3.connect(readonly_uri(path), uri=True)
        try:
            row = conn.execute(f'SELECT name FROM "{HISTORY_TABLE}" ORDER BY id DESC LIMIT 1').fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def _entry(kind: str, name: str, path: Path) -> Entry:
    st = path.stat()
    created = datetime.fromtimestamp(st.st_mtime, timezone.utc).isoformat(timespec="seconds")
    return Entry(kind, name, path, created, st.st_size, last_migration(path))


def listing(backups_dir: Path, db_path: Path) -> list[Entry]:
    """Named snapshots of this database (by name), then its automatic backups (oldest first), those it
    took under an earlier path included. Files of other databases sharing `backups_dir` are not listed."""
    who = backups.owner(db_path)
    out = [_entry("snapshot", p.stem, p) for p in own_snapshots(backups_dir, db_path, who)]
    out += [_entry("backup", p.name, p) for p in backups.automatic_backups(backups_dir, db_path, who)]
    return out


def resolve_backup(backups_dir: Path, given: str) -> Path:
    """`--backup FILE`: a path, or the bare name of an automatic backup as `snapshots` lists it."""
    path = Path(given)
    if not path.exists() and path.name == given:
        path = backups_dir / given
    return path


def fold_wal(conn: sqlite3.Connection) -> bool:
    """Copy a restore's pages from the WAL into the database file and empty the WAL (it grew to the
    database's size), without waiting for readers. A TRUNCATE checkpoint waits through the busy timeout
    for every reader to leave the WAL, holding the write lock all along, and a replicator such as
    Litestream keeps a read transaction open at all times: the restore then stalled the application's
    writes for the whole busy timeout (30 s by default) and did not truncate anyway. With no busy handler
    SQLite gives up at once and checkpoints what the readers allow, as PASSIVE does; the rest is
    checkpointed later (the replicator's or SQLite's own checkpoints). Returns whether the WAL was
    emptied, as SQLite reports it (busy = 0)."""
    timeout = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        busy, frames, done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout)}")
    if busy:
        logger.info("the WAL was not truncated after the restore (%s of %s frames copied into the database "
                    "file): another connection, such as a replicator (Litestream), is reading it; SQLite "
                    "checkpoints it later", max(done, 0), max(frames, 0))
    return not busy


def _quiet_moment(conn: sqlite3.Connection, timeout: float) -> int:
    """Wait (up to `timeout`) until no other connection holds the write lock; return data_version."""
    conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
    try:
        with write_transaction(conn):  # taken and given back at once
            pass
    except sqlite3.OperationalError as exc:
        raise backups.CopyTimeout(f"another connection kept the database locked past {timeout:g}s ({exc}); "
                                  "nothing was changed") from None
    return conn.execute("PRAGMA data_version").fetchone()[0]


def _is_empty(conn: sqlite3.Connection) -> bool:
    """No table, index, view or trigger: nothing a restore could overwrite (a new, empty file)."""
    return conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0


def check_origin(conn: sqlite3.Connection, db_path: Path, source: Path, allow_other_database: bool) -> None:
    """Refuse to restore a file that was not taken from this database (or whose origin is unknown) over
    a database that holds anything, unless `allow_other_database`: a backup of `app.db` restored over
    `app.sqlite3` silently replaces one application's data with another's. What the file holds decides
    (its identity, see identity.py), not its name. Onto an empty database (disaster recovery onto a new
    file) any verified file is accepted."""
    why = backups.owner(db_path, conn).refusal(source)
    if why is None or allow_other_database or _is_empty(conn):
        return
    raise RestoreRefused(f"refusing to restore: {source} {why}; nothing was changed. If it really is meant for "
                         f"{db_path}, restore it with allow_other_database=True (`restore --from-other-database`)")


def _own_snapshot(source: Path, backups_dir: Path, db_path: Path) -> Path:
    """A path in the shared snapshots directory that does not exist (built without the database, as
    `snapshot_path(dir, name)`) means this database's snapshot of that name."""
    if not source.exists() and source.parent == snapshot_dir(backups_dir) and _NAME.fullmatch(source.stem):
        own = find_snapshot(backups_dir, source.stem, db_path)
        if own.exists():
            return own
    return source


def restore(conn: sqlite3.Connection, db_path: Path, source: Path, backups_dir: Path,
            lock_timeout: float, *, allow_other_database: bool = False) -> Path:
    """Restore `source` over the live database; returns the safety backup of the state it replaced.

    A file taken from another database is refused (RestoreRefused, nothing changed) unless the live
    database is empty or `allow_other_database`. The safety backup must hold everything the restore
    overwrites: it is taken again if another connection committed meanwhile (PRAGMA data_version), and
    the copy starts right after a moment with no writer. Stop the application for a restore: a write
    committed in the microseconds between that moment and the copy taking the lock is not in the
    safety backup."""
    source = _own_snapshot(source, backups_dir, db_path)
    try:
        if source.resolve() == db_path.resolve() or (source.exists() and db_path.exists()
                                                      and os.path.samefile(source, db_path)):
            raise RestoreRefused(f"refusing to restore: {source} is the live database itself")
        backups.verify(source)
    except backups.BackupError as exc:
        raise RestoreRefused(f"refusing to restore: {exc}; nothing was changed") from None
    with run_lock(db_path, lock_timeout, backups_dir):
        check_origin(conn, db_path, source, allow_other_database)  # under the lock: no run adds tables
        for _attempt in range(3):
            version = _quiet_moment(conn, lock_timeout)
            safety = backups.take_backup(conn, backups_dir / backups.backup_name(db_path))
            if _quiet_moment(conn, lock_timeout) == version:
                break
        else:
            raise backups.CopyTimeout("the database kept changing while its safety backup was taken; stop the "
                                      "application and retry (nothing was changed)")
        wal = conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
        try:
            backups.restore(conn, source, verified=True, timeout=lock_timeout)
        except sqlite3.OperationalError as exc:
            # A WAL database cannot take pages of another size through the backup API: switch to a
            # rollback journal for the copy (needs no other connection open), then back to WAL.
            if not wal or not is_readonly(exc):
                raise
            try:
                conn.execute("PRAGMA journal_mode = DELETE")
            except sqlite3.OperationalError:
                raise ConfigurationError(
                    f"{source} has a different page size than the live WAL database; close the other "
                    f"connections to it and retry (the database was not changed; safety backup: {safety})") from None
            try:
                backups.restore(conn, source, verified=True, timeout=lock_timeout)
            finally:  # also after an error or an interrupt: the application expects its WAL mode
                conn.execute("PRAGMA journal_mode = WAL")
        if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
            fold_wal(conn)
    backups.unpin(backups_dir, db_path)  # the state is the one the user chose: a new streak pins afresh
    return safety
