"""Free disk space, checked before `run`/`revert` writes anything.

Issue 15: "check free space before a backup or a rebuild, and refuse with one line when it will not
fit".

What a run can write, as SQLite and the backup do it:
- the backup: a copy of every page of the database file (`page_count * page_size`), in the backups
  directory;
- each rebuild: a new copy of the table and its indexes in the database file, less the free pages the
  file already has (SQLite reuses those first); in WAL mode the new pages go to the WAL first and are
  copied into the database at the checkpoint, so twice that.
The sizes come from SQLite (`PRAGMA page_count`, `freelist_count`, the `dbstat` table); where `dbstat`
is not compiled in, a rebuilt table counts as the whole database. When the backups directory and the
database share a file system, their needs add up.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from tablemigrate.errors import NoSpace
from tablemigrate.history.loader import Migration
from tablemigrate.operations import AlterTableInPlace, RebuildTable
from tablemigrate.sqlite.sqltext import quote

#: Headroom on top of the estimate: the journal, SQLite's temporary files, estimate error.
MARGIN = 1.1
SLACK = 8 * 2**20


def _pages(conn: sqlite3.Connection, pragma: str) -> int:
    return conn.execute(f"PRAGMA main.{pragma}").fetchone()[0]


def database_bytes(conn: sqlite3.Connection) -> int:
    return _pages(conn, "page_count") * _pages(conn, "page_size")


def table_bytes(conn: sqlite3.Connection, table: str) -> int:
    """The pages of `table` and of its indexes, by SQLite's `dbstat`; the whole database without it."""
    names = [table] + [r[0] for r in conn.execute(
        "SELECT name FROM main.sqlite_master WHERE type = 'index' AND lower(tbl_name) = lower(?)", (table,))]
    try:
        total = 0
        for name in names:
            row = conn.execute("SELECT sum(pgsize) FROM dbstat('main', 1) WHERE name = ?", (name,)).fetchone()
            total += row[0] or 0
        return total
    except sqlite3.OperationalError:  # no dbstat in this SQLite build
        return database_bytes(conn)


def _free(path: Path) -> tuple[int, int]:
    """(free bytes, device) of the file system holding `path` (or its nearest existing parent)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free, os.stat(path).st_dev


def _mb(n: float) -> str:
    return f"{n / 2**20:,.0f} MB"


def check(conn: sqlite3.Connection, db_path: Path | None, backups_dir: Path | None,
          migrations: list[Migration], direction: str, copy: str = "the backup") -> None:
    """Raise NoSpace when the backup (`backups_dir`: None for no backup; `copy` names it) and the
    rebuilds of `migrations` in the database at `db_path` would not fit on their file systems. An
    in-memory database (`db_path` None) writes nothing to disk."""
    if db_path is None:
        return
    needs: dict[int, list[tuple[str, float, Path]]] = {}
    free_by_dev: dict[int, int] = {}

    def need(what: str, size: float, where: Path) -> None:
        free, dev = _free(where)
        free_by_dev[dev] = free
        needs.setdefault(dev, []).append((what, size, where))

    if backups_dir is not None:
        need(copy, database_bytes(conn), backups_dir)
    rebuilt = sorted({s.table for m in migrations for s in m.steps(direction)
                      if isinstance(s, RebuildTable) and not isinstance(s, AlterTableInPlace)}, key=str.lower)
    if rebuilt:
        wal = conn.execute("PRAGMA main.journal_mode").fetchone()[0].lower() == "wal"
        reusable = _pages(conn, "freelist_count") * _pages(conn, "page_size")
        exists = {r[0].lower() for r in conn.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'")}
        size = sum(table_bytes(conn, t) for t in rebuilt if t.lower() in exists)
        need(f"the rebuild of {', '.join(quote(t) for t in rebuilt)}", max(0, size - reusable) * (2 if wal else 1),
             db_path.parent)
    for dev, items in needs.items():
        total = sum(size for _what, size, _where in items) * MARGIN + SLACK
        if total > free_by_dev[dev]:
            what = " and ".join(w for w, _s, _p in items)
            verb = "need" if len(items) > 1 else "needs"
            raise NoSpace(f"not enough free disk space: {what} {verb} about {_mb(total)} on the file system of "
                          f"{items[0][2]}, which has {_mb(free_by_dev[dev])} free; nothing was changed (free "
                          "space, or point TABLEMIGRATE_BACKUP_DIR at another disk)")
