"""Backups and restores through SQLite's online backup API (never a plain copy of a live WAL file).

Backups are written with mode 0600 to a temporary name, checked with `PRAGMA quick_check` (on the very
file that was written), then renamed into place, so a file under the final name is always a complete,
verified database. Directories made for them are 0700 and carry a `.gitignore` of `*`.

Every backup belongs to one database, decided from the identity inside both (identity.py), so two
databases sharing a backup directory never list, prune or restore each other's files, and a database
moved or copied with its backups keeps them. Names carry `<stem>-<key>` (`database_tag`) for people. A
pin (`<stem>-<key>.pin`) names the backup taken before the first failed run; pruning never removes it
until a run succeeds.
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

from tablemigrate import progress
from tablemigrate.errors import (
    SQLITE_BUSY,
    SQLITE_LOCKED,
    BackupError,
    CopyTimeout,
    NeedsPageRestore,
    is_busy,
    signal_name,
)
from tablemigrate.sqlite.sqltext import quote, readonly_uri, user_objects
from tablemigrate.sqlite.transaction import write_transaction

from .identity import (
    AUTOMATIC,
    PIN_NAME,
    STAMP,
    Owner,
    database_tag,
    keep_identity,
    owner,
    read_identity,
    record_identity,
)


def describe(exc: BaseException) -> str:
    """An exception's reason for a message, never empty: `str(KeyboardInterrupt())` is '' (and so is
    that of many exceptions raised without arguments), which printed as "CommandError: ; rolled back"."""
    if isinstance(exc, KeyboardInterrupt):  # Ctrl-C, or SIGTERM/SIGHUP turned into it by the command
        return f"interrupted ({signal_name(exc)})"
    text = str(exc)
    if isinstance(exc, (SystemExit, GeneratorExit)):
        return f"interrupted ({type(exc).__name__}{': ' + text if text else ''})"
    return text or type(exc).__name__


def private_dir(path: Path) -> None:
    """Create `path` and its missing parents, each 0700 (`mkdir(mode=, parents=True)` gives the mode only
    to the last one; the others got the umask's 0755). The top-most directory created gets a `.gitignore`
    of `*`: backups are database copies (password hashes...) that a `git add -A` must not pick up."""
    missing: list[Path] = []
    while not os.path.lexists(path):
        missing.append(path)
        path = path.parent
    for index, directory in enumerate(reversed(missing)):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:  # made meanwhile by another process: theirs to set up
            continue
        os.chmod(directory, 0o700)  # mkdir's mode is masked by the umask
        if index == 0:
            fd = os.open(directory / ".gitignore", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            try:
                os.write(fd, b"# tablemigrate backups: copies of the database. Never commit them.\n*\n")
            finally:
                os.close(fd)


def verify(path: Path) -> None:
    """Raise BackupError unless `path` is a readable SQLite database that passes quick_check. The check
    proves it read `path` itself: the file SQLite opened (`PRAGMA database_list`) must be the inode
    that `path` names (a mis-built URI once checked another, empty file and called it good)."""
    if not path.is_file():
        raise BackupError(f"{path}: no such file")
    try:
        with open(path, "rb") as fh:
            if fh.read(16) != b"SQLite format 3\x00":
                raise BackupError(f"{path}: not an SQLite database")
            expected = os.fstat(fh.fileno())
            conn = sqlite3.connect(readonly_uri(path), uri=True)
            try:
                opened = os.stat(conn.execute("PRAGMA database_list").fetchone()[2])
                result = conn.execute("PRAGMA quick_check").fetchall()
            finally:
                conn.close()  # before `fh`: closing a descriptor drops the process's locks on the file
    except (sqlite3.Error, OSError) as exc:
        raise BackupError(f"{path}: cannot be checked: {describe(exc)}") from None
    if not _same_file(opened, expected):
        raise BackupError(f"{path}: the check opened another file than {path}")
    if result != [("ok",)]:
        raise BackupError(f"{path}: failed its integrity check ({result[0][0]})")


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _still_written(tmp: Path, fd: int) -> None:
    """`tmp` still names the file this backup created (held open through `fd`, so its inode cannot be
    reused): with `verify` proving it checked the file `tmp` names, the check was of the file written."""
    if not _same_file(os.stat(tmp), os.fstat(fd)):
        raise BackupError(f"{tmp}: replaced by another file while the backup was written and checked")


def backup_name(db_path: Path) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S_%fZ")
    return f"{database_tag(db_path)}-{stamp}.sqlite3"


def take_backup(conn: sqlite3.Connection, dest: Path, backups_dir: Path | None = None) -> Path:
    """Copy the database behind `conn` to `dest` (mode 0600), verified before it is trusted. On any
    exception, KeyboardInterrupt included, the half-written `<dest>.partial` is removed (a Ctrl-C once
    left up to 164 MB behind); errors become BackupError/CopyTimeout, interrupts are re-raised as they are.
    The database's identity is recorded first (`backups_dir`: its backups directory, by default the
    directory of `dest`), so that the copy carries it."""
    tmp = dest.with_name(dest.name + ".partial")
    fd = -1
    try:
        record_identity(conn, backups_dir or dest.parent)
        private_dir(dest.parent)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        # Held open until the check: its inode is the identity of the file written (it cannot be reused
        # while open), and the check must have read that inode.
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_RDONLY, 0o600)
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
        os.fsync(fd)
        _still_written(tmp, fd)
        verify(tmp)
        _still_written(tmp, fd)
        os.replace(tmp, dest)
        _fsync(dest.parent)  # the rename itself
    except (OSError, sqlite3.Error) as exc:
        _discard(tmp)
        if is_busy(exc):
            raise CopyTimeout(f"cannot back up: another connection kept the database locked past the busy "
                              f"timeout ({exc}); nothing was changed") from None
        raise BackupError(f"cannot write backup {dest}: {describe(exc)}; nothing was changed") from None
    except BaseException:  # BackupError, CopyTimeout, KeyboardInterrupt, SystemExit: unchanged
        _discard(tmp)
        raise
    finally:
        if fd >= 0:  # after every SQLite connection to the file closed (closing drops POSIX locks)
            os.close(fd)
    return dest


def _discard(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        tmp.unlink()


def _copy_file(conn: sqlite3.Connection, dest: Path) -> bool:
    """The fast path for a database in rollback-journal mode: copy the file itself while holding
    SQLite's write lock, a consistent snapshot since every committed page is in the file (3x the backup
    API's speed, measured). Returns False (nothing done) in WAL mode, or when a progress display wants
    page counts; the caller then uses the backup API. In WAL mode the backup API reads in one read
    transaction, which never blocks the application's writes, where the copy would hold the write lock
    for the whole file (0.6 s at 1 GB, measured by benchmarks/bigdb.py). In rollback-journal mode any
    reader blocks writers anyway, so the shortest lock wins."""
    name = conn.execute("PRAGMA database_list").fetchone()[2]
    if not name or conn.in_transaction or progress.current().enabled or not os.path.getsize(name):
        return False
    if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
        return False
    try:
        conn.execute("BEGIN IMMEDIATE")  # no writer can change the file while it is copied
        source = _held_fd(name)
        with open(dest, "wb") as out:
            size, offset = os.fstat(source).st_size, 0
            while offset < size:
                sent = os.sendfile(out.fileno(), source, offset, size - offset)
                if sent == 0:
                    raise OSError(f"{name}: short read while copying")
                offset += sent
        return True
    finally:  # BEGIN in the `try`: no window for a signal; a busy BEGIN opened nothing to roll back
        if conn.in_transaction:
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
        _HELD[key] = os.open(name, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOINHERIT", 0))
    return _HELD[key]


def release_held() -> None:
    """Close the descriptors `_held_fd` kept, once this process has no SQLite connection left to those files
    (as SQLite closes its unused descriptors with a file's last connection). A process that works on many
    databases in turn (`run --all-databases`) calls it after each: else it holds one descriptor per database
    and runs out of them (ulimit -n) on a big fleet."""
    while _HELD:
        os.close(_HELD.popitem()[1])


def _fsync(path: Path) -> None:
    """Make `path` durable; for a directory, the renames in it. Windows cannot open a directory as a file
    and needs no such sync (NTFS journals its directory entries), so there it is a no-op."""
    if os.name == "nt" and path.is_dir():
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Tables a replicator keeps in the live database for itself: Litestream (https://litestream.io) creates
# these two when it starts and needs them for its read lock and its checkpoints. They belong to the live
# file, not to its data: a restore whose source lacks them (a snapshot or backup taken before Litestream
# was set up) removed them, after which every Litestream checkpoint failed until it was restarted, and
# the WAL only grew. Both restores keep them (empty when recreated: their rows mean nothing to the data).
REPLICATOR_TABLES = ("_litestream_seq", "_litestream_lock")


def _tables(conn: sqlite3.Connection, schema: str, names: tuple[str, ...]) -> dict[str, str]:
    """{name: CREATE statement} of those of the tables `names` that `schema` ('main' or an alias) has."""
    if not names:
        return {}
    marks = ", ".join("?" * len(names))
    return dict(conn.execute(f"SELECT name, sql FROM {schema}.sqlite_master WHERE type = 'table' AND "
                             f"name IN ({marks})", names).fetchall())


def _recreate(conn: sqlite3.Connection, tables: dict[str, str]) -> None:
    """Create again, empty, those of `tables` that the page copy removed (in their own transaction: the
    backup API commits its own)."""
    present = _tables(conn, "main", tuple(tables))
    missing = [sql for name, sql in tables.items() if name not in present]
    if not missing:
        return
    with write_transaction(conn):
        for sql in missing:
            conn.execute(sql)


def restore(conn: sqlite3.Connection, source: Path, *, verified: bool = False, timeout: float | None = None) -> None:
    """Copy `source` over the live database behind `conn`, through the backup API (safe with WAL and
    with other open connections, unlike replacing the file). `verified`: the caller just checked it.
    A replicator's tables (REPLICATOR_TABLES) that the source lacks are created again, and the live
    database keeps its identity (a database without one takes the source's: a new file restored from a
    backup continues that database)."""
    if not verified:
        verify(source)
    replicator = _tables(conn, "main", REPLICATOR_TABLES)
    identity = read_identity(conn)
    src = sqlite3.connect(readonly_uri(source), uri=True)
    try:
        _copy(src, conn, f"restoring {source.name}", timeout)
    finally:
        src.close()
    _recreate(conn, replicator)
    if identity is not None:
        keep_identity(conn, identity)


_ALIAS = "tablemigrate_backup"


def restore_in_transaction(conn: sqlite3.Connection, source: Path,
                           may_restore: Callable[[sqlite3.Connection], bool]) -> bool:
    """Restore `source` over the live database as one write transaction: drop every object, recreate
    it from the backup, copy every row. The write lock is held from `may_restore` (the last check that
    no other connection wrote) until COMMIT, so nothing can commit in between and be lost. Returns
    False, changing nothing, when `may_restore` says no. Any error rolls everything back."""
    if conn.in_transaction:  # ATTACH/DETACH would fail with a message that hides why
        raise BackupError("the connection is still inside a transaction that the failed migration left open")
    conn.execute(f"ATTACH DATABASE ? AS {_ALIAS}", (str(source),))
    fk = conn.execute("PRAGMA foreign_keys").fetchone()[0]
    try:
        if conn.execute(f"SELECT 1 FROM main.sqlite_master WHERE sql LIKE 'CREATE VIRTUAL%' UNION ALL "
                        f"SELECT 1 FROM {_ALIAS}.sqlite_master WHERE sql LIKE 'CREATE VIRTUAL%'").fetchone():
            raise NeedsPageRestore
        conn.execute("PRAGMA foreign_keys = OFF")
        try:
            conn.execute("BEGIN IMMEDIATE")
            if not may_restore(conn):
                conn.execute("ROLLBACK")
                return False
            # A replicator's tables that the backup lacks stay as they are (see REPLICATOR_TABLES).
            kept = set(_tables(conn, "main", REPLICATOR_TABLES)) - set(_tables(conn, _ALIAS, REPLICATOR_TABLES))
            live = conn.execute(f"SELECT type, name FROM main.sqlite_master WHERE {user_objects()} AND "
                                "type IN ('view', 'trigger', 'table') ORDER BY type != 'view', type != 'trigger'")
            for kind, name in live.fetchall():
                if name not in kept:
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
            # Dependency order: a trigger needs its table or view (an INSTEAD OF trigger made before
            # its view failed the whole restore), a view the views it reads.
            for kind, _name, sql in objects:
                if kind == "index":
                    conn.execute(sql)
            _create_views(conn, [(name, sql) for kind, name, sql in objects if kind == "view"])
            for kind, _name, sql in objects:
                if kind == "trigger":
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


def _create_views(conn: sqlite3.Connection, views: list[tuple[str, str]]) -> None:
    """Create `views` so that each comes after the views it reads. SQLite itself says when that holds:
    it accepts a view whose sources are missing (names resolve when the view is used), but compiling
    `SELECT * FROM` the view fails until they exist. A view that does not compile yet is dropped and
    retried after the others; what still does not compile when a round makes no progress was broken in
    the backup as well, and is recreated exactly as it was."""
    waiting = views
    while waiting:
        later = []
        for name, sql in waiting:
            conn.execute(sql)
            try:
                conn.execute(f"SELECT * FROM main.{quote(name)} LIMIT 0").fetchall()
            except sqlite3.OperationalError:
                conn.execute(f"DROP VIEW main.{quote(name)}")
                later.append((name, sql))
        if len(later) == len(waiting):
            for _name, sql in later:
                conn.execute(sql)
            return
        waiting = later


def _copy(source: sqlite3.Connection, target: sqlite3.Connection, what: str, timeout: float | None = None) -> None:
    """The backup API: one step (fastest) unless a progress display wants page counts. Python retries
    a busy step forever; with `timeout`, the progress callback (also called on busy steps) gives up."""
    shown = progress.current()
    deadline = None if timeout is None else time.monotonic() + timeout

    def report(status: int, remaining: int, total: int) -> None:
        if deadline is not None and status in (SQLITE_BUSY, SQLITE_LOCKED) \
                and time.monotonic() > deadline:
            raise CopyTimeout(f"{what}: the database stayed locked by another connection for {timeout:g}s; "
                              "nothing was changed")
        shown.show(f"{what}: {total - remaining:,}/{total:,} pages")

    # Steps (for a progress display) start over after any commit by another connection; in WAL mode
    # the application keeps committing, so the copy is one step there: one read transaction.
    stepped = shown.enabled and source.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal"
    try:
        source.backup(target, pages=4096 if stepped else -1, progress=report, sleep=0.05)
    finally:
        shown.clear()


def automatic_backups(directory: Path, db_path: Path, who: Owner | None = None) -> list[Path]:
    """Automatic backups of this database, oldest first (by the time in their names, whatever their
    tag: a moved database's backups carry its earlier path's). Each file named as an automatic backup
    is asked whether it is this database's (`Owner.owns`), so the backups of `app.sqlite3` are never
    taken for those of `app.db`, nor those of a database that shares the directory."""
    if not directory.is_dir():
        return []
    who = who or owner(db_path)
    found = [(match["stamp"], p) for entry in os.scandir(directory)  # names first: a fleet's directory is big
             if (match := AUTOMATIC.fullmatch(entry.name)) and entry.is_file() and who.owns(p := Path(entry.path))]
    return [p for _stamp, p in sorted(found)]


# The pin: the backup that holds the database as it was before the first failed run --------------

def pin_path(directory: Path, db_path: Path) -> Path:
    return directory / f"{database_tag(db_path)}.pin"


def _pins(directory: Path, db_path: Path, who: Owner) -> list[tuple[Path, Path]]:
    """(pin, the backup it pins) for each pin in `directory` that names an existing automatic backup of
    this database: the one under its own tag first, then any written under an earlier path (a pin
    survives a move). A pin naming anything else pins nothing: the next run pins afresh."""
    own = pin_path(directory, db_path)
    found = sorted((directory / n for n in os.listdir(directory) if PIN_NAME.fullmatch(n)), key=lambda p: (p != own, p.name))
    out = []
    for pin_file in found:
        try:
            name = pin_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            continue
        held = directory / name
        if AUTOMATIC.fullmatch(name) and held.is_file() and who.owns(held):
            out.append((pin_file, held))
    return out


def pinned(directory: Path, db_path: Path, who: Owner | None = None) -> Path | None:
    """The pinned backup of this database, if a pin names one of its automatic backups that still
    exists."""
    if not directory.is_dir():
        return None
    found = _pins(directory, db_path, who or owner(db_path))
    return found[0][1] if found else None


def pin(directory: Path, db_path: Path, backup: Path) -> None:
    """Pin `backup` (one of this database's automatic backups in `directory`): written to a temporary
    file (0600), synced and renamed, so the pin is always whole. A SIGKILLed run leaves it in place,
    which is what it is for."""
    path = pin_path(directory, db_path)
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            os.write(fd, backup.name.encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        _fsync(directory)
    except OSError as exc:
        _discard(tmp)
        raise BackupError(f"cannot write the pin {path}: {describe(exc)}; nothing was changed") from None
    except BaseException:
        _discard(tmp)
        raise


def unpin(directory: Path, db_path: Path) -> None:
    """The failing streak is over: a run succeeded, a run found nothing pending (the failing module was
    removed, or a signal came after every migration had committed), or a restore chose a state. The
    pinned backup is an ordinary one again (pruned by age); the next failing run pins its own. Cheap
    when there is no pin (a `run` with nothing pending calls it): one listing of the directory, no
    file opened."""
    if not directory.is_dir():
        return
    own = pin_path(directory, db_path)
    others = [directory / n for n in os.listdir(directory) if PIN_NAME.fullmatch(n) and n != own.name]
    found = [pin_file for pin_file, _held in _pins(directory, db_path, owner(db_path))] if others else []
    found += [own] if os.path.lexists(own) else []
    for pin_file in dict.fromkeys(found):
        pin_file.unlink(missing_ok=True)
    if found:
        _fsync(directory)


def prune(directory: Path, db_path: Path, keep: int) -> list[Path]:
    """Keep the newest `keep` automatic backups, and always the pinned one: while a pin exists it takes
    the place of the oldest of those `keep` (so a crash-looping start still keeps `keep` files; with
    keep=1, the newest stays too, so 2). Also removes half-written ones a killed run left (`.partial`:
    never trusted, and the caller holds the runner lock, so none is being written)."""
    who = owner(db_path)
    backups = automatic_backups(directory, db_path, who)
    kept = backups[-keep:] if keep > 0 else []
    held = pinned(directory, db_path, who)
    if held is not None and held not in kept:
        kept = kept[1:] if len(kept) > 1 else kept
        kept.append(held)
    removed = [p for p in backups if p not in kept]
    if directory.is_dir():
        pattern = re.compile(re.escape(database_tag(db_path)) + rf"-{STAMP}\.sqlite3\.partial")
        removed += [directory / n for n in os.listdir(directory) if pattern.fullmatch(n)]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed
