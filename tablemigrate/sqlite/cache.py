"""Every cache tablemigrate keeps, and the one rule they share.

**The rule: a cache is keyed by the content it stands for, and never decides anything.**
- *Parsed tables* (`table`): a table's structure is a pure function of its name, its CREATE text and
  its indexes' texts for a given SQLite, so it is keyed by exactly those, within a process and, for
  `generate`, between runs (`persistent`: a pickle stamped with the cache format, tablemigrate's version
  and SQLite's version; another stamp is ignored).
- *Values derived from a frozen schema value* (`derived`: a table's structure digest, its pretty
  CREATE text) are kept on the value itself, so they live exactly as long as it does, and travel in
  the pickle with it.
- *Database A* (`load_database_a`, `keep_database_a`): the pages of the database that the statements
  of one `schema.sql` build, keyed by the file's bytes. A `generate` that writes modules keeps A after
  them, keyed by the `schema.sql` it wrote: the cache the next `generate` needs (the edit loop). Whatever
  loaded A, `generate` checks its fingerprint against `schema.sql`'s header before using it.

Nothing is invalidated by time or by hand: other content has another key, and each kind keeps only
its newest entries (A: the one written and the one the run started from; tables: those the last
runs used, while they are at most a few times what one run uses). Files live in
`$TMPDIR/tablemigrate-cache-<uid>/`, a 0700 directory of this user (mode 0600 files); on Windows, which
has no user ids, in `tablemigrate-cache` of the user's own temporary directory (`%LOCALAPPDATA%\\Temp`,
which only that user can write). A cache file anywhere else, or not private, is not read. A cache that
cannot be read or written costs time, nothing else.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import sqlite3
import stat
import tempfile
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from tablemigrate import __version__

from .sqltext import readonly_uri

T = TypeVar("T")

#: Bump whenever the schema dataclasses or the parser change: a pickle of another format is not read.
FORMAT = 3


def path(directory: Path, suffix: str) -> Path:
    """A file of this project's private cache: `$TMPDIR/tablemigrate-cache-<uid>/<project><suffix>`
    (`tablemigrate-cache` where the system has no user ids: Windows, whose temporary directory is the
    user's own)."""
    digest = hashlib.sha256(str(directory.resolve()).encode()).hexdigest()[:20]
    owner = f"-{os.getuid()}" if hasattr(os, "getuid") else ""
    return Path(tempfile.gettempdir()) / f"tablemigrate-cache{owner}" / f"{digest}{suffix}"


def is_private(file: Path) -> bool:
    """True when `file`'s directory is this user's own, mode 0700 (nobody else could have written it).
    Without user ids and modes (Windows), the directory's place decides: `path` puts it in the user's
    own temporary directory, whose access list admits that user alone."""
    try:
        st = file.parent.stat()
    except OSError:
        return False
    if not hasattr(os, "getuid"):
        return file.parent.parent == Path(tempfile.gettempdir())
    return st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) == 0o700


def _write_private(file: Path, write: Callable[[Path], None]) -> None:
    """Write `file` atomically (`write` fills a 0600 temporary file beside it), best effort."""
    try:
        file.parent.mkdir(mode=0o700, exist_ok=True)
        if not is_private(file):
            return
        tmp = file.with_suffix(f".{os.getpid()}.tmp")
        os.close(os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600))
        write(tmp)
        os.replace(tmp, file)
    except (OSError, sqlite3.Error, pickle.PickleError):
        pass


# --- values derived from a frozen schema value ------------------------------------------------------

computed = 0  # values `derived` has computed so far (the persistent cache is rewritten when this grows)


def derived(value: Any, attribute: str, compute: Callable[[Any], T]) -> T:
    """`compute(value)` for an immutable `value`, computed once and kept on it."""
    cached = value.__dict__.get(attribute)
    if cached is None:
        global computed
        cached = compute(value)
        object.__setattr__(value, attribute, cached)
        computed += 1
    return cached


# --- parsed tables -----------------------------------------------------------------------------------

_TABLES: dict[Hashable, Any] = {}
_SAME_NAME: dict[tuple, list[tuple]] = {}  # (name, index texts) -> keys of _TABLES
_USED: set[Hashable] = set()
_LIMIT = 20_000  # a process that introspects without end (a test suite) starts over past this


class _Pickle:
    """The project's pickle while a `persistent` block runs: read at the first table not parsed in this
    process, so a `generate --check` that parses nothing never pays for reading it."""

    file: Path | None = None
    loaded: set[Hashable] = set()

    @classmethod
    def load(cls) -> None:
        file, cls.file = cls.file, None
        try:
            if file is not None and is_private(file):
                with file.open("rb") as fh:
                    stamp, tables = pickle.load(fh)
                if stamp == _stamp():
                    for key, value in tables.items():
                        _remember(key, value)
                    cls.loaded = set(tables)
        except (OSError, pickle.PickleError, EOFError, ValueError, TypeError, AttributeError):
            pass


def table(key: Hashable, compute: Callable[[], T]) -> T:
    """The parsed table for `key` (name, CREATE text, index texts), computed once."""
    _USED.add(key)
    found = _TABLES.get(key)
    if found is None and _Pickle.file is not None:
        _Pickle.load()
        found = _TABLES.get(key)
    if found is None:
        if len(_TABLES) > _LIMIT:
            _TABLES.clear()
            _SAME_NAME.clear()
        found = compute()
        _remember(key, found)
    return found


def _remember(key: Hashable, value: Any) -> None:
    if key not in _TABLES and isinstance(key, tuple):
        _SAME_NAME.setdefault((key[0], key[2]), []).append(key)
    _TABLES[key] = value


def tables_named(name: str, indexes: tuple) -> list[tuple[tuple, Any]]:
    """The parsed tables of this name with these index texts, under any CREATE text."""
    return [(k, _TABLES[k]) for k in _SAME_NAME.get((name, indexes), ()) if k in _TABLES]


def _stamp() -> tuple:
    return (FORMAT, __version__, sqlite3.sqlite_version)


@contextlib.contextmanager
def persistent(directory: Path) -> Iterator[None]:
    """Keep the tables parsed while the block runs for the next run of this project (`generate`)."""
    file = path(directory, ".pickle")
    _Pickle.file, _Pickle.loaded = file, set()
    _USED.clear()
    before = computed
    try:
        yield
        pending, loaded = _Pickle.file is not None, _Pickle.loaded
        if not pending and (not _USED <= loaded or computed != before):  # something new to remember
            # What this run used, and what the last runs kept while that stays small: a `--check` that
            # never builds database A must not make the next `generate` parse A's tables again.
            keep = _USED | loaded if len(_USED | loaded) <= 3 * len(_USED) + 100 else _USED

            def dump(tmp: Path) -> None:
                with tmp.open("wb") as fh:
                    pickle.dump((_stamp(), {k: _TABLES[k] for k in keep if k in _TABLES}), fh,
                                protocol=pickle.HIGHEST_PROTOCOL)

            _write_private(file, dump)
    finally:
        _USED.clear()
        _Pickle.file = None


# --- database A --------------------------------------------------------------------------------------

def database_a_path(directory: Path, snapshot: bytes) -> Path:
    """Where database A for this `schema.sql` text is cached."""
    return path(directory, f"-A-{hashlib.sha256(snapshot).hexdigest()[:32]}.sqlite3")


def load_database_a(directory: Path, snapshot: bytes, conn: sqlite3.Connection) -> bool:
    """Copy the cached database A for `snapshot` into `conn` (empty); False when there is none."""
    file = database_a_path(directory, snapshot)
    if not (is_private(file) and file.is_file()):
        return False
    cached = sqlite3.connect(readonly_uri(file), uri=True)
    try:
        cached.backup(conn)
    finally:
        cached.close()
    return True


def keep_database_a(conn: sqlite3.Connection, directory: Path, snapshot: bytes, also: bytes | None = None) -> None:
    """Keep `conn` as database A for `snapshot`, replacing this project's older ones except the one for
    `also` (the `schema.sql` this run started from: a developer who throws the new modules away and
    generates again finds it)."""
    file = database_a_path(directory, snapshot)

    def copy(tmp: Path) -> None:
        target = sqlite3.connect(tmp)
        try:
            conn.backup(target)
        finally:
            target.close()

    _write_private(file, copy)
    if not is_private(file):
        return
    kept = {file, database_a_path(directory, also)} if also is not None else {file}
    with contextlib.suppress(OSError):
        for old in file.parent.glob(file.name.split("-A-")[0] + "-A-*.sqlite3"):
            if old not in kept:
                old.unlink(missing_ok=True)
