"""The history against the migration files: what is applied, pending, edited or missing, read from
file names and checksums (a module is imported only to read whether an edit is accepted); and the
database being migrated (`Target`)."""

from __future__ import annotations

import sqlite3
import tempfile
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from . import djangoapps, history
from .errors import ConfigurationError, HistoryMismatch, MigrationFileError
from .lock import run_lock
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
        """The runner lock of this database (tablemigrate.lock), held for a whole run, revert or adoption."""
        return run_lock(self.path or Path(tempfile.gettempdir()) / f"tablemigrate-memory-{self.alias}", timeout)


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


def status(conn: sqlite3.Connection, directory: Path) -> Status:
    """Applied vs files, from file names and checksums (no module is imported, except an applied one
    edited since: whether it accepts the edit is written in it)."""
    files = migration_files(directory)
    applied = history.applied(conn)
    by_name = {p.stem: p for p in files}
    st = Status(applied, files)
    done = {a.name for a in applied}
    st.pending = [p for p in files if p.stem not in done]
    for a in applied:
        path = by_name.get(a.name)
        if path is None:
            st.missing.append(a.name)
        else:
            source = path.read_bytes()
            if checksum(source) == a.checksum:
                continue
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


def pending_migrations(target: Target, directory: Path) -> tuple[Status, list[Migration]]:
    st = status(target.conn, directory)
    check_history(st)
    return st, [load_migration(p) for p in st.pending]


def _history_names(conn: sqlite3.Connection) -> list[str]:
    """tablemigrate's history and Django's (`django_migrations`): a change to either means a
    migration of this run committed."""
    return [a.name for a in history.applied(conn)] + sorted(f"{a}.{n}" for a, n in djangoapps.recorded(conn))
