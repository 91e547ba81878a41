"""Which database a backup or snapshot belongs to, decided from what is inside both.

Before its first backup a database is given a random identity (`tablemigrate_identity`, one row, written
once); every backup, being a page copy, carries it. So a project copied or moved together with its
backups still lists, restores, pins and prunes them, wherever its files are. The row also records where
the database lived and where its backups went at its last backup: a file of this identity taken at
another path is this database's (it moved) unless a copy of it still lives there and keeps its backups
in the same directory (two copies of one database sharing a directory keep their files apart).

Databases and files without an identity (written before it existed, or that cannot be read) go by the
key in the file's name: a hash of the database file's resolved path (`database_key`), as before.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path

from tablemigrate.errors import is_busy, is_readonly
from tablemigrate.sqlite.introspect import IDENTITY_TABLE
from tablemigrate.sqlite.sqltext import readonly_uri
from tablemigrate.sqlite.transaction import write_transaction

STAMP = r"\d{8}T\d{6}_\d{6}Z"
_KEY = r"[0-9a-f]{12}"
AUTOMATIC = re.compile(rf"(?P<tag>.+-(?P<key>{_KEY}))-(?P<stamp>{STAMP})\.sqlite3")
TAG = re.compile(rf".+-(?P<key>{_KEY})")
PIN_NAME = re.compile(rf".+-{_KEY}\.pin")


def database_key(db_path: Path) -> str:
    """A hash of the database file's resolved path: the key in the names of its files, and what decides
    for a database or a file without an identity (see `Owner`)."""
    return hashlib.sha256(os.fsencode(os.path.realpath(db_path))).hexdigest()[:12]


def database_tag(db_path: Path) -> str:
    """`<stem>-<key>`: the stem for people reading a listing, the key to be unambiguous."""
    return f"{db_path.stem}-{database_key(db_path)}"


def _origin_tag(path: Path) -> str | None:
    """The tag recorded in the name of `path` (an automatic backup) or of its directory (a snapshot);
    None for a file tablemigrate did not write (or wrote before keys)."""
    match = AUTOMATIC.fullmatch(path.name)
    if match:
        return match["tag"]
    if TAG.fullmatch(path.parent.name) and path.parent.parent.name == "snapshots" and path.suffix == ".sqlite3":
        return path.parent.name
    return None


@dataclass(frozen=True)
class Identity:
    """What `tablemigrate_identity` holds: `id`, random, written once and copied with every page of the
    database; `path` and `backups`, the database file and the backups directory of its last backup
    (resolved paths)."""

    id: str
    path: str
    backups: str


_CREATE_IDENTITY = (f'CREATE TABLE IF NOT EXISTS "{IDENTITY_TABLE}" ("id" text NOT NULL PRIMARY KEY, '
                    '"path" text NOT NULL, "backups" text NOT NULL)')


def read_identity(conn: sqlite3.Connection) -> Identity | None:
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (IDENTITY_TABLE,)).fetchone():
        return None
    row = conn.execute(f'SELECT id, path, backups FROM "{IDENTITY_TABLE}" ORDER BY rowid LIMIT 1').fetchone()
    return None if row is None else Identity(*row)


def identity_at(path: Path | str) -> Identity | None:
    """The identity inside the database file at `path`; None when it has none, or is missing or cannot
    be read (damaged, locked): the callers then go by the key in the names. Opened read-write when it
    may be (nothing is written: a read-only connection to a WAL database leaves its -wal and -shm
    behind), read-only otherwise."""
    if not os.path.isfile(path):
        return None
    base = readonly_uri(path).removesuffix("?mode=ro")
    for mode in ("rw", "ro"):
        try:
            conn = sqlite3.connect(f"{base}?mode={mode}", uri=True, timeout=5)
        except sqlite3.Error:
            continue
        try:
            return read_identity(conn)
        except sqlite3.Error:
            return None
        finally:
            conn.close()
    return None


#: Identities read from database files, by what changes when the file is written: its inode, size, mtime
#: and ctime, and its -wal's (WAL mode). A backup or snapshot is written once and never changed, and another
#: tenant's database changes rarely, so a process that lists many databases' backups in one directory
#: (`run --all-databases` over tenants copied from one database, which share its identity) reads each file
#: once, not once per database; the key is one stat of each file, no open (opening every tenant's file for
#: each tenant made the fleet quadratic). Bounded; only found identities are kept (a file without one, or
#: locked for a moment, is asked again).
_FILE_IDENTITIES: dict[tuple, Identity] = {}
FILE_IDENTITIES_KEPT = 50_000


def _version(path: Path | str, written_once: bool) -> tuple | None:
    """What changes whenever the database at `path` is written (None: no such file). `written_once`: a
    backup or snapshot, which is never written again (its own stat is enough, without its -wal's)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    main = (os.fspath(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if written_once:
        return main
    try:
        wal = os.stat(f"{os.fspath(path)}-wal")
        journal = (wal.st_ino, wal.st_size, wal.st_mtime_ns, wal.st_ctime_ns)
    except OSError:
        journal = None
    return (*main, journal)


def file_identity(path: Path | str, written_once: bool = False) -> Identity | None:
    """`identity_at`, read once per process while the file is unchanged (`written_once`: a backup or snapshot)."""
    key = _version(path, written_once)
    if key is None:
        return None
    found = _FILE_IDENTITIES.get(key)
    if found is None:
        found = identity_at(path)
        if found is not None:
            if len(_FILE_IDENTITIES) >= FILE_IDENTITIES_KEPT:
                del _FILE_IDENTITIES[next(iter(_FILE_IDENTITIES))]
            _FILE_IDENTITIES[key] = found
    return found


def record_identity(conn: sqlite3.Connection, backups_dir: Path) -> None:
    """Before a backup: give the database behind `conn` its identity if it has none, and record where
    it is and where its backups go if that changed (so the backup carries both). Nothing is written
    when nothing changed (every backup after the first), into an empty database (a new file, which
    takes the identity of what is restored into it), or into one that cannot be written; and it waits
    at most 0.1 s for another connection's write (a backup of a WAL database never waits for the
    application's writes): the backup is then taken as the database is, and goes by what it holds
    (no identity: the path key) until a later backup records it."""
    name = conn.execute("PRAGMA database_list").fetchone()[2]
    if not name or conn.in_transaction or not conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
        return
    where = (os.path.realpath(name), os.path.realpath(backups_dir))
    known = read_identity(conn)
    if known is not None and (known.path, known.backups) == where:
        return
    timeout = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    conn.execute("PRAGMA busy_timeout = 100")
    try:
        with write_transaction(conn):
            conn.execute(f"PRAGMA busy_timeout = {int(timeout)}")
            conn.execute(_CREATE_IDENTITY)
            known = read_identity(conn)  # again, under the write lock
            if known is None:
                conn.execute(f'INSERT INTO "{IDENTITY_TABLE}" (id, path, backups) VALUES (?, ?, ?)',
                             (uuid.uuid4().hex, *where))
            else:
                conn.execute(f'UPDATE "{IDENTITY_TABLE}" SET path = ?, backups = ?', where)
    except sqlite3.OperationalError as exc:
        # opened read-only (mode=ro), or another connection kept writing past 0.1 s: the backup goes by
        # what the database holds
        if not (is_readonly(exc) or is_busy(exc)):
            raise
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout)}")


def keep_identity(conn: sqlite3.Connection, kept: Identity) -> None:
    """After a page copy over the live database: it keeps the identity it had (its own backups stay its
    own, the safety backup of the restore included), whatever the copied file held."""
    if read_identity(conn) == kept:
        return
    with write_transaction(conn):
        conn.execute(_CREATE_IDENTITY)
        conn.execute(f'DELETE FROM "{IDENTITY_TABLE}"')
        conn.execute(f'INSERT INTO "{IDENTITY_TABLE}" (id, path, backups) VALUES (?, ?, ?)',
                     (kept.id, kept.path, kept.backups))


class Owner:
    """A database as its backups know it, to ask whether a file is one of them (`refusal`, `owns`)."""

    def __init__(self, db_path: Path, identity: Identity | None):
        self.path = os.path.realpath(db_path)
        self.tag = database_tag(db_path)
        self.identity = identity
        # The databases living at other paths (this one under another name? its identity there), and the
        # resolved backups directories: read once per listing, which a fleet's shared directory makes long.
        self._at: dict[str, tuple[bool, Identity | None]] = {}
        self._roots: dict[str, str] = {}
        self._me: tuple[int, int] | None = None

    def refusal(self, path: Path) -> str | None:
        """None when `path` is a backup or snapshot of this database, else why not (for a message)."""
        mine = self.identity
        theirs = file_identity(path, written_once=True) if mine is not None else None
        if mine is None or theirs is None:  # a database or a file from before identities
            return self._by_name(path)
        if theirs.id != mine.id:
            return f"was taken from another database (identity {theirs.id}; this one is {mine.id})"
        if theirs.path == self.path:
            return None
        if theirs.path not in self._at:  # another tenant copied from the same database: one stat per listing
            self._at[theirs.path] = self._living_at(theirs.path)
        same, there = self._at[theirs.path]
        if same:  # this very file under another name
            return None
        # Taken of this database at another path: it moved (the file is its own), unless a copy of it
        # lives on there and keeps its backups where this file is (the copy's, not this one's).
        root = str(_backups_root(path))
        if root not in self._roots:
            self._roots[root] = os.path.realpath(root)
        if there is not None and there.id == theirs.id and there.backups == self._roots[root]:
            return (f"was taken from another database: the copy of this one at {theirs.path}, which keeps its "
                    "backups in the same directory")
        return None

    def _living_at(self, other: str) -> tuple[bool, Identity | None]:
        """(whether `other` is this database's own file, the identity of the database living there)."""
        try:
            st = os.stat(other)
        except OSError:
            return False, None
        if self._me is None:
            try:
                own = os.stat(self.path)
                self._me = (own.st_dev, own.st_ino)
            except OSError:
                self._me = (-1, -1)
        if (st.st_dev, st.st_ino) == self._me:
            return True, None
        return False, file_identity(other)

    def _by_name(self, path: Path) -> str | None:
        """The rule before identities: the key in the file's name (or its snapshot directory's)."""
        tag = _origin_tag(path)
        if tag == self.tag:
            return None
        if tag is None:
            return ("does not record which database it was taken from (not written by tablemigrate, or by a "
                    "version before backups named their database)")
        key, own = tag.rsplit("-", 1)[1], self.tag.rsplit("-", 1)[1]
        return f"was taken from another database (key {key}; this one has key {own})"

    def owns(self, path: Path) -> bool:
        return self.refusal(path) is None


def owner(db_path: Path, conn: sqlite3.Connection | None = None) -> Owner:
    """The database at `db_path`, its identity read through `conn` when given, else from the file."""
    try:
        identity = read_identity(conn) if conn is not None else identity_at(db_path)
    except sqlite3.Error:
        identity = None
    return Owner(db_path, identity)


def _backups_root(path: Path) -> Path:
    """The backups directory holding `path`: its own directory, or for a snapshot the one above
    `snapshots/<stem>-<key>/`."""
    return path.parent.parent.parent if path.parent.parent.name == "snapshots" else path.parent
