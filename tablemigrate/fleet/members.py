"""Which databases `--all-databases` covers, and pointing an alias at one of them.

Every SQLite alias in DATABASES that is a file, plus the files TABLEMIGRATE_FLEET names for an alias:
databases that are copies of that alias's database (one per tenant, say). Such a file is migrated *as
the alias*: the alias's settings, its routers' answers and its migrations directory, with NAME set to
the file, so that every single-database rule holds for it unchanged. The alias's own NAME is not a
member (it may be where `provision` keeps the template).
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
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
    """A SQLite alias whose database is a file (not in-memory): what `--all-databases` takes."""
    try:
        wrapper = connections[alias]
        return wrapper.vendor == "sqlite" and not wrapper.is_in_memory_db() and bool(wrapper.settings_dict.get("NAME"))
    except Exception:  # another backend's driver may not even be installed
        return False


def _paths(alias: str, source: Any) -> list[Path]:
    """The files of one TABLEMIGRATE_FLEET entry: a glob (a str with a path separator or a wildcard, or a
    Path; relative to BASE_DIR), or a callable (or its dotted path) returning paths. A glob that matches
    no database file is refused (a typo must not pass for a fleet with no database); a callable may
    return none."""
    if isinstance(source, str) and not any(c in source for c in "/\\*?[") and not source.endswith(".sqlite3"):
        try:
            source = import_string(source)
        except ImportError as exc:
            raise ConfigurationError(f"TABLEMIGRATE_FLEET[{alias!r}] = {source!r} is neither a glob (no '/' or "
                                     f"wildcard) nor an importable callable ({exc})") from None
    if callable(source):
        return [base_dir() / Path(p) for p in _call(alias, source)]
    if isinstance(source, (str, os.PathLike)):
        pattern = str(base_dir() / Path(source))
        found = [Path(p) for p in sorted(glob.glob(pattern, recursive=True))
                 if os.path.isfile(p) and not p.endswith(SIDE_FILES)]
        if not found:
            raise ConfigurationError(f"TABLEMIGRATE_FLEET[{alias!r}] = {str(source)!r} matches no database file "
                                     f"({pattern}): check the glob, or return the paths from a callable")
        return found
    raise ConfigurationError(f"TABLEMIGRATE_FLEET[{alias!r}] must be a glob, a callable or its dotted path, "
                             f"not {type(source).__name__}")


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
        if alias in fleet or not _is_file_database(alias):
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
