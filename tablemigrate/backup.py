"""Backups and restores through SQLite's online backup API (never a plain copy of a live WAL file).

Backups are written with mode 0600 to a temporary name, checked with `PRAGMA quick_check`, then
renamed into place, so a file under the final name is always a complete, verified database.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from . import progress
from .errors import TablemigrateError
from .sqltext import quote, readonly_uri, user_objects


class BackupError(TablemigrateError):
    exit_code = 1


def verify(path: Path) -> None:
    """Raise BackupError unless `path` is a readable SQLite database that passes quick_check."""
    if not path.is_file():
        raise BackupError(f"{path}: no such file")
    try:
        with open(path, "rb") as fh:
            if fh.read(16) != b"SQLite format 3\x00":
                raise BackupError(f"{path}: not an SQLite database")
        conn = sqlite3.connect(readonly_uri(path), uri=True)
        try:
            result = conn.execute("PRAGMA quick_check").fetchall()
        finally:
            conn.close()
    except (sqlite3.Error, OSError) as exc:
        raise BackupError(f"{path}: cannot be checked: {exc}") from None
    if result != [("ok",)]:
        raise BackupError(f"{path}: failed its integrity check ({result[0][0]})")


def backup_name(db_path: Path) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S_%fZ")
    return f"{db_path.stem}-{stamp}.sqlite3"


def take_backup(conn: sqlite3.Connection, dest: Path) -> Path:
    """Copy the database behind `conn` to `dest` (mode 0600), verified before it is trusted."""
    try:
        dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".partial")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        copied = _copy_file(conn, tmp)
        target = sqlite3.connect(tmp)
        try:
            # A fresh file that is thrown away if anything fails needs no journal syncs while it is
            # written; one fsync at the end makes it durable (as `cp` + fsync would).
            target.execute("PRAGMA synchronous = OFF")
            if not copied:
                _copy(conn, target, f"backing up to {dest.name}")
            # A copy of a WAL database is in WAL mode too; a self-contained file needs no -wal/-shm
            # beside it (and a read-only check would leave them behind). Restores keep the live mode.
            target.execute("PRAGMA journal_mode = DELETE")
        finally:
            target.close()
        _fsync(tmp)
        verify(tmp)
        os.replace(tmp, dest)
        _fsync(dest.parent)  # the rename itself
    except (OSError, sqlite3.Error) as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in str(exc) or "busy" in str(exc)):
            raise CopyTimeout(f"cannot back up: another connection kept the database locked past the busy "
                              f"timeout ({exc}); nothing was changed") from None
        raise BackupError(f"cannot write backup {dest}: {exc}; nothing was changed") from None
    return dest


def _copy_file(conn: sqlite3.Connection, dest: Path) -> bool:
    """The fast path: copy the database file itself while holding SQLite's write lock, which is a
    consistent snapshot when every committed page is in the main file (a rollback journal, or WAL after
    a complete checkpoint). Returns False (nothing done) when that does not hold, or when a progress
    display wants page counts; the caller then uses the backup API."""
    name = conn.execute("PRAGMA database_list").fetchone()[2]
    if not name or conn.in_transaction or progress.current().enabled or not os.path.getsize(name):
        return False
    wal = conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    version = conn.execute("PRAGMA data_version").fetchone()[0]
    if wal:  # PASSIVE never waits for readers; it must have copied every frame into the file
        busy, frames, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if busy or frames < 0 or frames != done:  # (1, -1, -1): another checkpointer is at work
            return False  # some committed pages may still live only in the WAL
    conn.execute("BEGIN IMMEDIATE")  # no writer can change the file while it is copied
    try:
        if wal and conn.execute("PRAGMA data_version").fetchone()[0] != version:
            return False  # another connection committed (into the WAL) after the checkpoint
        source = _held_fd(name)
        with open(dest, "wb") as out:
            size, offset = os.fstat(source).st_size, 0
            while offset < size:
                sent = os.sendfile(out.fileno(), source, offset, size - offset)
                if sent == 0:
                    raise OSError(f"{name}: short read while copying")
                offset += sent
        return True
    finally:
        conn.execute("ROLLBACK")


_HELD: dict[tuple[int, int], int] = {}


def _held_fd(name: str) -> int:
    """A read-only descriptor on the database file that this process never closes. Closing *any*
    descriptor of a file drops every POSIX lock the process holds on it, SQLite's own included (the
    "close() cancels locks" trap: another process could then checkpoint and delete the WAL under our
    connection). So, like SQLite's own list of unused descriptors, it is kept open, one per inode."""
    st = os.stat(name)
    key = (st.st_dev, st.st_ino)
    if key not in _HELD:
        _HELD[key] = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
    return _HELD[key]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def restore(conn: sqlite3.Connection, source: Path, *, verified: bool = False, timeout: float | None = None) -> None:
    """Copy `source` over the live database behind `conn`, through the backup API (safe with WAL and
    with other open connections, unlike replacing the file). `verified`: the caller just checked it."""
    if not verified:
        verify(source)
    src = sqlite3.connect(readonly_uri(source), uri=True)
    try:
        _copy(src, conn, f"restoring {source.name}", timeout)
    finally:
        src.close()


class CopyTimeout(TablemigrateError):
    """The backup API waited for a lock past its deadline; the copy was abandoned, nothing changed."""

    exit_code = 3


class NeedsPageRestore(Exception):
    """The logical restore does not handle virtual tables (their shadow tables): copy pages instead."""


_ALIAS = "tablemigrate_backup"


def restore_in_transaction(conn: sqlite3.Connection, source: Path,
                           may_restore: Callable[[sqlite3.Connection], bool]) -> bool:
    """Restore `source` over the live database as one write transaction: drop every object, recreate
    it from the backup, copy every row. The write lock is held from `may_restore` (the last check that
    no other connection wrote) until COMMIT, so nothing can commit in between and be lost. Returns
    False, changing nothing, when `may_restore` says no. Any error rolls everything back."""
    conn.execute(f"ATTACH DATABASE ? AS {_ALIAS}", (str(source),))
    fk = conn.execute("PRAGMA foreign_keys").fetchone()[0]
    try:
        if conn.execute(f"SELECT 1 FROM main.sqlite_master WHERE sql LIKE 'CREATE VIRTUAL%' UNION ALL "
                        f"SELECT 1 FROM {_ALIAS}.sqlite_master WHERE sql LIKE 'CREATE VIRTUAL%'").fetchone():
            raise NeedsPageRestore
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("BEGIN IMMEDIATE")
        try:
            if not may_restore(conn):
                conn.execute("ROLLBACK")
                return False
            live = conn.execute(f"SELECT type, name FROM main.sqlite_master WHERE {user_objects()} AND "
                                "type IN ('view', 'trigger', 'table') ORDER BY type != 'view', type != 'trigger'")
            for kind, name in live.fetchall():
                conn.execute(f"DROP {kind.upper()} IF EXISTS main.{quote(name)}")
            objects = conn.execute(f"SELECT type, name, sql FROM {_ALIAS}.sqlite_master WHERE sql IS NOT NULL "
                                   f"AND {user_objects()}").fetchall()
            tables = [name for kind, name, _sql in objects if kind == "table"]
            for kind, _name, sql in objects:
                if kind == "table":
                    conn.execute(sql)
            for name in tables:  # rows before indexes (faster) and before triggers (which must not fire)
                columns = ", ".join(quote(r[1]) for r in conn.execute(
                    f"PRAGMA {_ALIAS}.table_xinfo({quote(name)})") if r[6] in (0, 1))
                conn.execute(f"INSERT INTO main.{quote(name)} ({columns}) SELECT {columns} "
                             f"FROM {_ALIAS}.{quote(name)}")
            if conn.execute(f"SELECT 1 FROM {_ALIAS}.sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
                conn.execute("DELETE FROM main.sqlite_sequence")
                conn.execute(f"INSERT INTO main.sqlite_sequence SELECT * FROM {_ALIAS}.sqlite_sequence")
            for wanted in ("index", "trigger", "view"):
                for kind, _name, sql in objects:
                    if kind == wanted:
                        conn.execute(sql)
            version = conn.execute(f"PRAGMA {_ALIAS}.user_version").fetchone()[0]
            conn.execute(f"PRAGMA main.user_version = {int(version)}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return True
    finally:
        conn.execute(f"PRAGMA foreign_keys = {int(fk)}")
        conn.execute(f"DETACH DATABASE {_ALIAS}")


def _copy(source: sqlite3.Connection, target: sqlite3.Connection, what: str, timeout: float | None = None) -> None:
    """The backup API: one step (fastest) unless a progress display wants page counts. Python retries
    a busy step forever; with `timeout`, the progress callback (also called on busy steps) gives up."""
    shown = progress.current()
    deadline = None if timeout is None else time.monotonic() + timeout

    def report(status: int, remaining: int, total: int) -> None:
        if deadline is not None and status in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) \
                and time.monotonic() > deadline:
            raise CopyTimeout(f"{what}: the database stayed locked by another connection for {timeout:g}s; "
                              "nothing was changed")
        shown.show(f"{what}: {total - remaining:,}/{total:,} pages")

    try:
        source.backup(target, pages=4096 if shown.enabled else -1, progress=report, sleep=0.05)
    finally:
        shown.clear()


def automatic_backups(directory: Path, db_path: Path) -> list[Path]:
    """Automatic backups of this database, oldest first: exactly `<stem>-<timestamp>.sqlite3`, so the
    backups of `db-archive.sqlite3` are never taken for those of `db.sqlite3`."""
    if not directory.is_dir():
        return []
    pattern = re.compile(re.escape(db_path.stem) + r"-\d{8}T\d{6}_\d{6}Z\.sqlite3")
    return sorted(p for p in directory.iterdir() if pattern.fullmatch(p.name))


def prune(directory: Path, db_path: Path, keep: int) -> list[Path]:
    """Keep the newest `keep` automatic backups; also remove half-written ones a killed run left
    (`.partial`: never trusted, and the caller holds the runner lock, so none is being written)."""
    backups = automatic_backups(directory, db_path)
    removed = backups[:-keep] if keep > 0 else backups
    if directory.is_dir():
        pattern = re.compile(re.escape(db_path.stem) + r"-\d{8}T\d{6}_\d{6}Z\.sqlite3\.partial")
        removed += [p for p in directory.iterdir() if pattern.fullmatch(p.name)]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed
