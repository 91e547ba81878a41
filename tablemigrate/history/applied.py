"""The history table in the target database. Rows are written inside the migration's transaction."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone

from tablemigrate.sqlite.introspect import HISTORY_TABLE
from tablemigrate.sqlite.transaction import write_transaction

from .loader import Migration

_CREATE = (f'CREATE TABLE IF NOT EXISTS "{HISTORY_TABLE}" ('
           '"id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" text NOT NULL UNIQUE, '
           '"table_name" text NULL, "checksum" text NOT NULL, "applied_at" text NOT NULL, '
           '"duration_ms" integer NOT NULL)')


@dataclass(frozen=True)
class Applied:
    name: str
    table: str | None
    checksum: str
    applied_at: str
    duration_ms: int


def exists(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (HISTORY_TABLE,)).fetchone() is not None


def ensure(conn: sqlite3.Connection) -> None:
    conn.execute(_CREATE)


def applied(conn: sqlite3.Connection) -> list[Applied]:
    """Applied migrations in the order they were applied ([] when there is no history table)."""
    if not exists(conn):
        return []
    rows = conn.execute(f'SELECT name, table_name, checksum, applied_at, duration_ms FROM "{HISTORY_TABLE}" '
                        "ORDER BY id").fetchall()
    return [Applied(*r) for r in rows]


def is_applied(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute(f'SELECT 1 FROM "{HISTORY_TABLE}" WHERE name = ?', (name,)).fetchone() is not None


def accept_edits(conn: sqlite3.Connection, checksums: dict[str, tuple[str, str]]) -> None:
    """Record intentional edits of applied modules (name -> (recorded, current checksum)), accepted in
    the modules themselves (`previous_checksums`): from now on the edited file is the applied version,
    so any later edit is refused again. One transaction; a row changed meanwhile is left alone."""
    with write_transaction(conn):
        for name, (old, new) in checksums.items():
            conn.execute(f'UPDATE "{HISTORY_TABLE}" SET checksum = ? WHERE name = ? AND checksum = ?', (new, name, old))


def record(conn: sqlite3.Connection, migration: Migration, direction: str, seconds: float) -> None:
    """Called by the applier inside the migration's transaction."""
    if direction == "up":
        conn.execute(f'INSERT INTO "{HISTORY_TABLE}" (name, table_name, checksum, applied_at, duration_ms) '
                     "VALUES (?, ?, ?, ?, ?)",
                     (migration.name, migration.table, migration.checksum,
                      datetime.now(timezone.utc).isoformat(timespec="seconds"), round(seconds * 1000)))
    else:
        conn.execute(f'DELETE FROM "{HISTORY_TABLE}" WHERE name = ?', (migration.name,))


def record_checkpoint(conn: sqlite3.Connection, checkpoint: Migration, replaced: list[str]) -> None:
    """Record `checkpoint` in the place of the rows of the modules it replaces (`replaced`, all recorded):
    the first one's row becomes the checkpoint's (so it keeps its place in the order they were applied),
    the others are deleted; the history then reads as on a database built from the checkpoint. The caller
    holds the write transaction."""
    ids = [row[0] for name in replaced for row in
           conn.execute(f'SELECT id FROM "{HISTORY_TABLE}" WHERE name = ?', (name,))]
    first = min(ids)
    conn.executemany(f'DELETE FROM "{HISTORY_TABLE}" WHERE id = ?', [(i,) for i in ids if i != first])
    conn.execute(f'UPDATE "{HISTORY_TABLE}" SET name = ?, table_name = ?, checksum = ?, applied_at = ?, '
                 "duration_ms = 0 WHERE id = ?",
                 (checkpoint.name, checkpoint.table, checkpoint.checksum,
                  datetime.now(timezone.utc).isoformat(timespec="seconds"), first))
