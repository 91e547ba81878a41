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


def _paths(alias: str, source: Any) -> Iterable[Path]:
    """The files of one TABLEMIGRATE_FLEET entry: a glob (a str with a path separator or a wildcard, or a
    Path; relative to BASE_DIR), or a callable (or its dotted path) returning paths."""
    if isinstance(source, str) and not any(c in source for c in "/\\*?[") and not source.endswith(".sqlite3"):
        try:
            source = import_string(source)
        except ImportError as exc:
            raise ConfigurationError(f"TABLEMIGRATE_FLEET[{alias!r}] = {source!r} is neither a glob (no '/' or "
                                     f"wildcard) nor an importable callable ({exc})") from None
    if callable(source):
        return (base_dir() / Path(p) for p in _call(alias, source))
    if isinstance(source, (str, os.PathLike)):
        pattern = str(base_dir() / Path(source))
        return (Path(p) for p in sorted(glob.glob(pattern, recursive=True))
                if os.path.isfile(p) and not p.endswith(SIDE_FILES))
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


def members(only: str | None = None) -> list[Member]:
    """Every database `--all-databases` covers, in a stable order: the aliases as DATABASES lists them,
    then each TABLEMIGRATE_FLEET alias's files sorted by path. `only`: an fnmatch pattern on the names.
    A file reached twice (an alias's database that a glob matches too) is taken once, the first time."""
    fleet = _sources()
    found: list[Member] = []
    seen: set[str] = set()
    for alias in settings.DATABASES:
        if alias in fleet or not _is_file_database(alias):
            continue
        found.append(Member(alias, alias))
        seen.add(os.path.realpath(str(settings.DATABASES[alias]["NAME"])))
    for alias, source in fleet.items():
        conf.sqlite_alias(alias)
        own = os.path.realpath(str(settings.DATABASES[alias].get("NAME", "")))
        files = sorted({os.path.realpath(p): p for p in _paths(alias, source)}.items())
        for real, path in files:
            if real in seen or real == own:
                continue
            seen.add(real)
            found.append(Member(f"{alias}:{_display(path)}", alias, str(path)))
    if only:
        found = [m for m in found if fnmatch.fnmatchcase(m.name, only)]
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
