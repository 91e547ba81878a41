"""Which databases `--all-databases` covers, and pointing an alias at one of them.

Every SQLite alias in DATABASES that is a file and that tablemigrate migrates (it has a history and gets
tables of the owned models), plus the files TABLEMIGRATE_FLEET names for an alias:
databases that are copies of that alias's database (one per tenant, say). Such a file is migrated *as
the alias*: the alias's settings, its routers' answers and its migrations directory, with NAME set to
the file, so that every single-database rule holds for it unchanged. The alias's own NAME is not a
member (it need not exist; `provision` keeps its templates in the backups directory).
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import itertools
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connections
from django.utils.module_loading import import_string

from tablemigrate import conf
from tablemigrate.errors import ConfigurationError
from tablemigrate.project.build import managed_models
from tablemigrate.project.fingerprint import model_tables

#: Files SQLite and tablemigrate keep beside a database: never databases themselves, whatever a glob matches.
SIDE_FILES = ("-wal", "-shm", "-journal", ".tablemigrate.lock")


@dataclass(frozen=True)
class Member:
    """One database of a fleet: `name` is the alias, or `alias:path` for a TABLEMIGRATE_FLEET file (its
    path relative to BASE_DIR when it lies under it). `path` is None for the alias's own database."""

    name: str
    alias: str
    path: str | None = None


def base_dir() -> Path:
    return Path(getattr(settings, "BASE_DIR", None) or os.getcwd())


def _sources() -> dict[str, Any]:
    fleet = getattr(settings, "TABLEMIGRATE_FLEET", None) or {}
    if not isinstance(fleet, dict):
        raise ConfigurationError("TABLEMIGRATE_FLEET must be a dict {alias: glob or callable}")
    return fleet


def _is_file_database(alias: str) -> bool:
    """A SQLite alias whose database is a file (not in-memory)."""
    try:
        wrapper = connections[alias]
        return wrapper.vendor == "sqlite" and not wrapper.is_in_memory_db() and bool(wrapper.settings_dict.get("NAME"))
    except Exception:  # another backend's driver may not even be installed
        return False


def _holds_the_history(alias: str) -> bool:
    """Whether tablemigrate migrates `alias`: `default`, or an alias TABLEMIGRATE_MIGRATIONS_DIR's dict names;
    with one directory for every alias, another alias only when the routers give it the same tables of the
    owned models as `default` (that history's): a cache or archive alias that holds other models is never
    handed another database's tables."""
    try:
        directory = conf.migrations_dir(alias)
    except ConfigurationError:
        return False
    if alias == "default" or isinstance(getattr(settings, "TABLEMIGRATE_MIGRATIONS_DIR", None), dict):
        return True  # named for it (`run` also applies the other apps' Django migrations there)
    tables = model_tables(managed_models(alias))
    return bool(tables) and "default" in settings.DATABASES and conf.migrations_dir("default") == directory \
        and tables == model_tables(managed_models("default"))


def _source(alias: str, source: Any) -> Callable[[], Iterable[Any]] | str:
    """One TABLEMIGRATE_FLEET entry as a callable, or as an absolute glob pattern: a str with a path
    separator or a wildcard, or a Path (relative to BASE_DIR); any other str is a callable's dotted path."""
    if isinstance(source, str) and not any(c in source for c in "/\\*?[") and not source.endswith(".sqlite3"):
        try:
            source = import_string(source)
        except ImportError as exc:
            raise ConfigurationError(f"TABLEMIGRATE_FLEET[{alias!r}] = {source!r} is neither a glob (no '/' or "
                                     f"wildcard) nor an importable callable ({exc})") from None
    if callable(source):
        return source
    if isinstance(source, (str, os.PathLike)):
        return str(base_dir() / Path(source))
    raise ConfigurationError(f"TABLEMIGRATE_FLEET[{alias!r}] must be a glob, a callable or its dotted path, "
                             f"not {type(source).__name__}")


def _paths(alias: str, source: Any) -> list[Path]:
    """The files of one TABLEMIGRATE_FLEET entry: those its glob matches, or the paths its callable returns.
    A glob whose directory does not exist is refused (a typo must not pass for a fleet with no database);
    one that matches nothing in an existing directory is a fleet with no database yet (a new deployment)."""
    found = _source(alias, source)
    if callable(found):
        return [base_dir() / Path(p) for p in _call(alias, found)]
    pattern = Path(found)
    fixed = Path(*itertools.takewhile(lambda part: not any(c in part for c in "*?["), pattern.parts))
    root = fixed.parent if fixed == pattern else fixed  # without a wildcard the glob names one file
    if not root.is_dir():
        raise ConfigurationError(f"TABLEMIGRATE_FLEET[{alias!r}] = {str(source)!r}: directory {root} does not "
                                 "exist (a typo?); a directory with no database yet is a fleet of none")
    return [Path(p) for p in sorted(glob.glob(found, recursive=True)) if os.path.isfile(p) and not p.endswith(SIDE_FILES)]


def _call(alias: str, source: Callable[[], Iterable[Any]]) -> list[Any]:
    try:
        return list(source())
    except Exception as exc:
        raise ConfigurationError(f"TABLEMIGRATE_FLEET[{alias!r}] raised {type(exc).__name__}: {exc}") from None


def _display(path: Path) -> str:
    try:
        return path.relative_to(base_dir()).as_posix()
    except ValueError:
        return path.as_posix()


def _real(path: Any) -> str:
    return os.path.realpath(str(path))


def _backup_dirs(databases: Iterable[str]) -> list[str]:
    """Where tablemigrate keeps the backups and snapshots of these databases (TABLEMIGRATE_BACKUP_DIR, or
    `backups` beside each): copies of a database, never databases of the fleet, whatever a glob matches."""
    configured = conf.backup_dir()
    found = {_real(configured)} if configured else {os.path.join(os.path.dirname(d), "backups") for d in databases}
    return sorted(found)


def _inside(path: str, directories: Iterable[str]) -> bool:
    return any(path.startswith(d + os.sep) for d in directories)


def members(only: str | None = None) -> list[Member]:
    """Every database `--all-databases` covers, in a stable order: the aliases as DATABASES lists them,
    then each TABLEMIGRATE_FLEET alias's files sorted by path. `only`: an fnmatch pattern on the names.
    A file reached twice (an alias's database that a glob matches too) is taken once, the first time; a
    fleet alias's own NAME (a template) and the files in a backups directory are never members; a file
    that two fleet aliases name is refused (which history would it follow?), and so is a member's alias
    that has no history (TABLEMIGRATE_MIGRATIONS_DIR as a dict without it): before any database is opened."""
    fleet = _sources()
    found: list[Member] = []
    taken: dict[str, str] = {}  # resolved path -> the alias it is migrated as
    for alias in settings.DATABASES:
        if alias in fleet or not _is_file_database(alias) or not _holds_the_history(alias):
            continue
        found.append(Member(alias, alias))
        taken[_real(settings.DATABASES[alias]["NAME"])] = alias
    for alias in fleet:
        conf.sqlite_alias(alias)
    templates = {_real(settings.DATABASES[alias].get("NAME", "")) for alias in fleet}
    named = {alias: _paths(alias, source) for alias, source in fleet.items()}
    backups = _backup_dirs([*taken, *templates, *(_real(p) for paths in named.values() for p in paths)])
    for alias, paths in named.items():
        files = {_real(p): p for p in paths}
        for real, path in sorted(files.items()):
            if real in templates or _inside(real, backups):
                continue
            if real in taken:
                if taken[real] != alias and taken[real] in fleet:
                    raise ConfigurationError(f"{path} is named by TABLEMIGRATE_FLEET[{taken[real]!r}] and "
                                             f"[{alias!r}]: a database follows one alias's history")
                continue
            taken[real] = alias
            found.append(Member(f"{alias}:{_display(path)}", alias, str(path)))
    if only:
        found = [m for m in found if fnmatch.fnmatchcase(m.name, only)]
    for alias in dict.fromkeys(m.alias for m in found):
        try:
            conf.migrations_dir(alias)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{exc}; --all-databases takes every SQLite alias: leave it out with "
                                     "--only") from None
    return found


def _glob_would_list(pattern: str, path: str) -> bool:
    """Whether `glob.glob(pattern, recursive=True)` would list `path` once the file exists: name by name,
    `**` any number of directories, and no wildcard matching a name that starts with a dot (as glob)."""

    def match(pats: tuple[str, ...], names: tuple[str, ...]) -> bool:
        if not pats:
            return not names
        if pats[0] == "**":
            return any(match(pats[1:], names[i:]) for i in range(len(names) + 1)
                       if not any(n.startswith(".") for n in names[:i]))
        return bool(names) and fnmatch.fnmatch(names[0], pats[0]) \
            and (pats[0].startswith(".") or not names[0].startswith(".")) and match(pats[1:], names[1:])

    return match(Path(pattern).parts, Path(path).parts)


def member_for(alias: str) -> Member | None:
    """The fleet file an alias stands for, when the alias has no tablemigrate history of its own (not in a
    dict TABLEMIGRATE_MIGRATIONS_DIR) and its database is a file a TABLEMIGRATE_FLEET entry names: an alias
    the application registers at run time for one tenant's database (dj-lite-tenant's `tenant_<pk>`,
    which calls `migrate --database tenant_<pk>` on a new, not yet existing file). Such a database is
    migrated as the fleet alias, as `--all-databases` migrates it. None for any other alias."""
    fleet = _sources()
    if alias in fleet or alias not in settings.DATABASES or not fleet:
        return None
    try:
        conf.migrations_dir(alias)
        return None
    except ConfigurationError:
        pass
    name = settings.DATABASES[alias].get("NAME")
    if not name or not _is_file_database(alias):
        return None
    path = base_dir() / Path(name)
    spellings = {os.path.abspath(path), os.path.realpath(path)}
    for owner, source in fleet.items():
        found = _source(owner, source)
        if callable(found):
            covered = any(os.path.realpath(p) in spellings for p in _paths(owner, source))
        else:
            covered = any(_glob_would_list(found, p) for p in spellings)
        if covered:
            conf.sqlite_alias(owner)
            return Member(f"{owner}:{_display(path)}", owner, str(path))
    return None


@contextlib.contextmanager
def as_its_fleet_alias(alias: str) -> Iterator[str]:
    """`alias`, or, for an alias that stands for a fleet file (`member_for`), its fleet alias pointed at
    that file while the block runs: what a command given `--database alias` works on."""
    member = member_for(alias)
    if member is None:
        yield alias
        return
    with pointed_at(member) as owner:
        yield owner


def _forget(alias: str) -> None:
    """Close the alias's connection and drop its wrapper: the next use opens the database NAME names then."""
    connections[alias].close()
    del connections[alias]


@contextlib.contextmanager
def pointed_at(member: Member) -> Iterator[str]:
    """The member's alias, with its NAME set to the member's file while the block runs (its own
    connection closed first and after): Django, the routers and tablemigrate all see that database."""
    if member.path is None:
        yield member.alias
        return
    entries = [connections.settings[member.alias]]
    if settings.DATABASES.get(member.alias) is not entries[0]:  # the same dict, unless a test overrode it
        entries.append(settings.DATABASES[member.alias])
    before = [entry["NAME"] for entry in entries]
    _forget(member.alias)
    for entry in entries:
        entry["NAME"] = member.path
    try:
        yield member.alias
    finally:
        _forget(member.alias)
        for entry, name in zip(entries, before):
            entry["NAME"] = name
