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
from .loader import SQUASHED_DIR, Migration, body_checksum, checksum, load_migration, load_source, migration_files


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
        return run_lock(self.path or Path(tempfile.gettempdir()) / f"tablemigrate-memory-{self.alias}", timeout,
                        self.backup_dir)


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
    # A checkpoint (`squash`) this database reached by applying every module it replaces, not recorded yet:
    # `run` records it in their place. `applied` already lists it where they were (`checkpoint_of`).
    checkpoint: Migration | None = None
    replaced: list[str] = field(default_factory=list)  # the recorded names `checkpoint` takes the place of
    checkpoint_refusal: str = ""  # why the checkpoint cannot be taken: modules it replaces not applied here


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
    if files and applied and (st.missing or files[0] in st.pending):
        checkpoint_of(st, files[0])
    return st


def checkpoint_of(st: Status, path: Path) -> None:
    """When the first module is a checkpoint (`replaces`; `squash` writes one, always first) and this
    database recorded modules it replaces: those are not missing. With every one recorded (in the version
    the checkpoint replaces) the checkpoint is applied: `applied` lists it in their place, `checkpoint`
    says `run` must record it. With only some, or another version of one: `checkpoint_refusal`."""
    assert st.modules is not None
    try:
        m = load_source(st.modules.source(path), path.stem, path)
    except MigrationFileError:
        return  # `run` and `show` report the file when they load it
    recorded = {a.name: a for a in st.applied}
    done = [r for r in m.replaces if r.name in recorded]
    if not done:
        return
    names = {r.name for r in m.replaces}
    st.missing = [n for n in st.missing if n not in names]
    lacking = [r.name for r in m.replaces if r.name not in recorded]
    other = [r.name for r in done if recorded[r.name].checksum not in r.checksums]
    where = path.parent / SQUASHED_DIR / m.name
    if other:
        st.checkpoint_refusal = (
            f"this database applied another version of {other[0]} than the one checkpoint {m.name} replaces (its "
            "checksum differs), so the checkpoint cannot stand for it here; nothing was changed. Compare the "
            f"version in {where} with what this database applied")
        return
    if lacking:
        more = f" and {len(lacking) - 1} more" if len(lacking) > 1 else ""
        st.checkpoint_refusal = (
            f"this database applied {len(done)} of the {len(m.replaces)} migrations checkpoint {m.name} replaces, "
            f"but not {lacking[0]}{more}: the checkpoint creates every table at once, so it cannot bring this "
            "database forward; nothing was changed. Apply the rest with the modules as they were first: check out "
            f"the commit before the squash (the replaced modules are also kept in {where}), run `manage.py "
            "tablemigrate run` there, then come back and run again")
        return
    st.replaced = [a.name for a in st.applied if a.name in names]
    if path not in st.pending:  # recorded already (beside the rows it replaces: left by hand)
        st.applied = [a for a in st.applied if a.name not in names]
        return
    first = next(i for i, a in enumerate(st.applied) if a.name in names)
    entry = history.Applied(m.name, m.table, st.modules.checksum(path), st.applied[first].applied_at, 0)
    st.applied = [*st.applied[:first], entry, *(a for a in st.applied[first:] if a.name not in names)]
    st.pending.remove(path)
    st.checkpoint = m


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
    if st.checkpoint_refusal:
        raise HistoryMismatch(st.checkpoint_refusal)
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
