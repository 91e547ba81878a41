"""The history against the migration files: what is applied, pending, edited or missing.

Read from file names and checksums (a module is imported only to read whether an edit is accepted);
and the database being migrated (`Target`)."""

from __future__ import annotations

import sqlite3
import tempfile
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from tablemigrate.errors import ConfigurationError, HistoryMismatch, MigrationFileError
from tablemigrate.project import djangoapps
from tablemigrate.sqlite.lock import run_lock

from . import applied as history
from .loader import Migration, body_checksum, checksum, load_migration, migration_files


@dataclass
class Target:
    """The database being migrated: Django's raw connection for the alias and where its file lives."""

    alias: str
    conn: sqlite3.Connection
    path: Path | None  # None for an in-memory database
    backup_dir: Path | None = None

    @property
    def backups_dir(self) -> Path:
        if self.backup_dir is not None:
            return self.backup_dir
        if self.path is None:
            raise ConfigurationError("an in-memory database cannot be backed up; use --no-backup")
        return self.path.parent / "backups"

    def lock(self, timeout: float) -> AbstractContextManager[None]:
        """The runner lock of this database (tablemigrate.sqlite.lock), held for a whole run, revert or adoption."""
        return run_lock(self.path or Path(tempfile.gettempdir()) / f"tablemigrate-memory-{self.alias}", timeout)


class ModuleFiles:
    """The migration modules of a directory as one command reads them: each file read and hashed once,
    however often the history is checked against the files (`status` before the runner lock, again under
    it, and after the work). The directory is listed each time, and a file whose size, modification time
    or inode changed since is read again: a module added or edited meanwhile is seen, as before."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.read: dict[Path, tuple[tuple[int, int, int], bytes, str]] = {}  # path -> (stat key, bytes, checksum)

    @property
    def paths(self) -> list[Path]:
        return migration_files(self.directory)

    def _entry(self, path: Path) -> tuple[tuple[int, int, int], bytes, str]:
        st = path.stat()
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        known = self.read.get(path)
        if known is None or known[0] != key:
            source = path.read_bytes()
            known = self.read[path] = (key, source, checksum(source))
        return known

    def source(self, path: Path) -> bytes:
        return self._entry(path)[1]

    def checksum(self, path: Path) -> str:
        return self._entry(path)[2]


@dataclass
class Status:
    applied: list[history.Applied]
    files: list[Path]
    pending: list[Path] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)  # edited after being applied, and accepted in the file
    recorded: dict[str, str] = field(default_factory=dict)  # modified name -> the checksum the database has
    now: dict[str, str] = field(default_factory=dict)  # modified name -> body_checksum of the file now
    modules: ModuleFiles | None = field(default=None, repr=False)  # the files as this command read them


def status(conn: sqlite3.Connection, directory: Path, modules: ModuleFiles | None = None) -> Status:
    """Applied vs files, from file names and checksums (no module is imported, except an applied one
    edited since: whether it accepts the edit is written in it). `modules`: the files as this command
    read them already (the history table is read again; the files are not)."""
    modules = modules or ModuleFiles(directory)
    files = modules.paths
    applied = history.applied(conn)
    by_name = {p.stem: p for p in files}
    st = Status(applied, files, modules=modules)
    done = {a.name for a in applied}
    st.pending = [p for p in files if p.stem not in done]
    for a in applied:
        path = by_name.get(a.name)
        if path is None:
            st.missing.append(a.name)
        else:
            if modules.checksum(path) == a.checksum:
                continue
            source = modules.source(path)
            if accepts(path, source, a.checksum):
                st.accepted.append(a.name)
            else:
                st.modified.append(a.name)
                st.recorded[a.name] = a.checksum
                st.now[a.name] = body_checksum(source)
    return st


def accepts(path: Path, source: bytes, recorded: str) -> bool:
    """Whether the edited module accepts the version this database applied: that version's checksum is
    in its `previous_checksums`, and the file is the version the acceptance was written for (its
    `accepted_checksum`), so a later edit, not accepted, is refused on every database. Only edited
    applied modules are imported here; one that does not load is reported as edited."""
    try:
        m = load_migration(path)
    except MigrationFileError:
        return False
    return recorded in m.previous_checksums and m.accepted_checksum == body_checksum(source)


def out_of_order(st: Status) -> list[Path]:
    """Pending modules whose names sort before the newest applied one: usual after merging a branch.
    They apply (each module states the shape of the table it expects, so one whose table another module
    changed since is refused), and `show` says which they are."""
    newest = max((a.name for a in st.applied), default="")
    return [p for p in st.pending if p.stem < newest]


def acceptance(st: Status, name: str) -> str:
    """The lines that accept the edit of `name` (docs/modules.md)."""
    return (f"previous_checksums = [{st.recorded.get(name, '')!r}] (add it to the list if there is one) and "
            f"accepted_checksum = {st.now.get(name, '')!r}")


def check_history(st: Status) -> None:
    if st.modified:
        name = st.modified[0]
        raise HistoryMismatch(
            f"migration {name} was edited after it was applied (checksum differs); restore the applied "
            "version, or write a new migration for the change. If the edit is intentional and changes "
            f"nothing this database already has, accept it in the module: {acceptance(st, name)}")
    if st.missing:
        raise HistoryMismatch(
            f"applied migration {st.missing[0]} is missing from the migrations directory; restore the file (from "
            "version control), or, to remove it, put it back, `tablemigrate revert` it on this database, then "
            "delete it")


def pending_migrations(target: Target, directory: Path,
                       modules: ModuleFiles | None = None) -> tuple[Status, list[Migration]]:
    st = status(target.conn, directory, modules)
    check_history(st)
    return st, [load_migration(p) for p in st.pending]


def history_names(conn: sqlite3.Connection) -> list[str]:
    """tablemigrate's history and Django's (`django_migrations`): a change to either means a
    migration of this run committed."""
    return [a.name for a in history.applied(conn)] + sorted(f"{a}.{n}" for a, n in djangoapps.recorded(conn))
