"""Rehearsal of pending migrations on a schema-only copy of the live database.

It runs before anything is touched. Two things come out of it:

- **validation**: syntax and reference errors surface here, and so does any statement that works only
  because SQLite reads a double-quoted name that matches nothing as a string literal (the statements
  run with every double-quoted name in backticks, which SQLite never reads as text);
- **virtual tables that stop working**: after each migration every virtual table of the copy is read
  once (a full scan, which an FTS index with external content runs on its content table and columns);
  one that worked before the migration and fails after it refuses the run. SQLite updates triggers and
  views on a RENAME, but never the names a virtual table was created with (`content='shop_item'`);
- **what each statement does**, as SQLite itself reports it: the authorizer callback while the
  statement runs (tables dropped, tables whose rows are written; quoting and `main.` already resolved)
  and the copy's tables before and after it (columns dropped or renamed, tables renamed). The data
  checks count those effects on the live rows instead of reading them from the SQL text.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field

from tablemigrate.errors import DoubleQuotedString, MigrationFailed, ObjectExists, SchemaCopyFailed, VirtualTableBroken
from tablemigrate.history.loader import Migration
from tablemigrate.operations import Operation
from tablemigrate.project.build import private_database, raw
from tablemigrate.sqlite import shapes, sqltext
from tablemigrate.sqlite.introspect import is_internal, shadow_tables, virtual_tables
from tablemigrate.sqlite.sqltext import quote, user_objects

from .apply import Applier, short_sql

StatementKey = tuple[str, int, int]  # (migration name, step number from 1, statement index from 0)

_WRITES = {sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE}
_CREATES = {sqlite3.SQLITE_CREATE_TABLE, sqlite3.SQLITE_CREATE_VTABLE}
_DROPS = {sqlite3.SQLITE_DROP_TABLE, sqlite3.SQLITE_DROP_VTABLE}
_SCHEMA = {sqlite3.SQLITE_ALTER_TABLE} | _CREATES | _DROPS
# Authorizer actions whose first argument names a table, and those whose second does (an index's or a
# trigger's table).
_TABLE_IN_ARG1 = _CREATES | _DROPS | _WRITES | {sqlite3.SQLITE_READ}
_TABLE_IN_ARG2 = {sqlite3.SQLITE_CREATE_INDEX, sqlite3.SQLITE_DROP_INDEX, sqlite3.SQLITE_CREATE_TRIGGER,
                  sqlite3.SQLITE_DROP_TRIGGER}


@dataclass
class Effects:
    """What one plain-SQL statement does, named as the tables and columns are named when it runs."""

    dropped_tables: list[str] = field(default_factory=list)
    dropped_columns: list[tuple[str, str]] = field(default_factory=list)  # (table, column)
    renamed_tables: list[tuple[str, str]] = field(default_factory=list)  # (old, new)
    renamed_columns: list[tuple[str, str, str]] = field(default_factory=list)  # (table, old, new)
    written: list[str] = field(default_factory=list)  # tables whose rows it inserts, updates or deletes
    created_tables: list[str] = field(default_factory=list)  # tables it creates (`written` too if it fills them)
    read: list[str] = field(default_factory=list)  # tables whose columns it reads
    named: set[str] = field(default_factory=set)  # lower-case: every table of `main` it reads, writes or changes


Columns = dict[str, tuple[str, list[str]]]  # lower table name -> (name, column names in order)


def _table_columns(conn: sqlite3.Connection, name: str) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM pragma_table_xinfo(?) ORDER BY cid", (name,))]


def _columns(conn: sqlite3.Connection) -> Columns:
    names = [r[0] for r in conn.execute(f"SELECT name FROM sqlite_master WHERE type = 'table' AND {user_objects()}")]
    return {n.lower(): (n, _table_columns(conn, n)) for n in names}


def _refreshed(conn: sqlite3.Connection, known: Columns, actions: list[tuple]) -> Columns:
    """`known` after the schema actions just authorized: only the tables they name are read again (a
    history of hundreds of CREATE TABLEs must not re-read every table after each one); an ALTER TABLE,
    which may have renamed one, lists the tables again."""
    out = dict(known)
    for action, arg1, arg2, db in actions:
        if action in _CREATES and db == "main" and arg1:
            out[arg1.lower()] = (arg1, _table_columns(conn, arg1))
        elif action in _DROPS and db == "main" and arg1:
            out.pop(arg1.lower(), None)
        elif action == sqlite3.SQLITE_ALTER_TABLE and arg1 == "main" and arg2:
            listed = {r[0].lower(): r[0] for r in conn.execute(
                f"SELECT name FROM sqlite_master WHERE type = 'table' AND {user_objects()}")}
            out = {k: v for k, v in out.items() if k in listed}
            for key, name in listed.items():
                if key not in out or key == arg2.lower():
                    out[key] = (name, _table_columns(conn, name))
    return out


class _Recorder:
    """The copy's authorizer, and the observer the applier calls after each step's statements."""

    def __init__(self, conn: sqlite3.Connection):
        self.actions: list[tuple[int, str | None, str | None, str | None]] = []
        self.tables = _columns(conn)
        self.effects: dict[StatementKey, Effects] = {}
        self.migration = ""
        self.listening = True
        self.created_virtual = False  # whether a statement created a virtual table (since last cleared)
        conn.set_authorizer(self.authorize)

    def authorize(self, action: int, arg1: str | None, arg2: str | None, db: str | None,
                  _inner: str | None) -> int:
        if self.listening:
            self.actions.append((action, arg1, arg2, db))
            self.created_virtual |= action == sqlite3.SQLITE_CREATE_VTABLE
        return sqlite3.SQLITE_OK

    @contextlib.contextmanager
    def deaf(self) -> Iterator[None]:
        """What runs meanwhile is the rehearsal's own reading, no statement's (its reads once made the
        next CREATE TABLE look like CREATE TABLE ... AS SELECT, filling its table)."""
        self.listening = False
        try:
            yield
        finally:
            self.listening = True

    def ran(self, conn: sqlite3.Connection, number: int, index: int | None, done: str | Operation,
            seconds: float) -> None:
        """After a statement (`index`) or an operation (`index` None) of step `number` ran."""
        actions, self.actions = self.actions, []
        before = self.tables
        with self.deaf():
            after = _refreshed(conn, before, actions) if any(a[0] in _SCHEMA for a in actions) else before
        self.tables = after
        if index is not None:
            self.effects[(self.migration, number, index)] = _effects(actions, before, after)


def _effects(actions: list[tuple[int, str | None, str | None, str | None]], before: Columns,
             after: Columns) -> Effects:
    out = Effects()
    for action, arg1, arg2, db in actions:
        if action in _DROPS and db == "main" and arg1:
            out.dropped_tables.append(arg1)  # a virtual table's shadow tables too: the checks skip those
        elif action == sqlite3.SQLITE_ALTER_TABLE and arg1 == "main" and arg2 and arg2.lower() in before:
            _altered(out, before[arg2.lower()], before, after)
    dropped = {t.lower() for t in out.dropped_tables}
    # Tables it creates (not there before: IF NOT EXISTS may have kept a table). A virtual table's module
    # creates and fills its shadow tables itself: they go with it.
    new = [(action, arg1) for action, arg1, _arg2, db in actions
           if action in _CREATES and db == "main" and arg1 and arg1.lower() not in before]
    virtual = [t for action, t in new if action == sqlite3.SQLITE_CREATE_VTABLE]
    out.created_tables = virtual or [t for _action, t in new]
    if not virtual and any(a[0] == sqlite3.SQLITE_SELECT for a in actions):  # CREATE TABLE ... AS SELECT fills
        out.written += out.created_tables  # its table: SQLite authorizes the SELECT, and no INSERT
    for action, arg1, arg2, db in actions:
        if action in _TABLE_IN_ARG1 and db == "main" and arg1:
            out.named.add(arg1.lower())
        elif action in _TABLE_IN_ARG2 and db == "main" and arg2:
            out.named.add(arg2.lower())
        elif action == sqlite3.SQLITE_ALTER_TABLE and arg1 == "main" and arg2:
            out.named.add(arg2.lower())
    for action, arg1, _arg2, db in actions:
        if action in _WRITES and db == "main" and arg1 and not is_internal(arg1) \
                and arg1.lower() not in dropped and arg1 not in out.written:
            out.written.append(arg1)
        elif action == sqlite3.SQLITE_READ and db == "main" and arg1 and not is_internal(arg1) \
                and arg1 not in out.read:
            out.read.append(arg1)
    return out


_CREATE_OBJECT = {sqlite3.SQLITE_CREATE_TABLE, sqlite3.SQLITE_CREATE_INDEX, sqlite3.SQLITE_CREATE_VIEW,
                  sqlite3.SQLITE_CREATE_TRIGGER, sqlite3.SQLITE_CREATE_VTABLE}


def _created_but_existing(copy: sqlite3.Connection, actions: list[tuple]) -> str:
    """The name of a table, view or trigger the failed statement was creating that the copy already has
    ('' if none): SQLite asks the authorizer before it looks such a name up (for an index, after)."""
    for action, arg1, _arg2, db in actions:
        if action in _CREATE_OBJECT and db == "main" and arg1 and copy.execute(
                "SELECT 1 FROM sqlite_master WHERE lower(name) = lower(?)", (arg1,)).fetchone():
            return arg1
    return ""


def _altered(out: Effects, old: tuple[str, list[str]], before: Columns, after: Columns) -> None:
    name, old_columns = old
    if name.lower() not in after:  # RENAME TO: the one table the copy did not have before
        new = [after[k][0] for k in after if k not in before]
        if len(new) == 1:
            out.renamed_tables.append((name, new[0]))
        return
    new_columns = after[name.lower()][1]
    kept = {c.lower() for c in new_columns}
    if len(new_columns) < len(old_columns):
        out.dropped_columns += [(name, c) for c in old_columns if c.lower() not in kept]
    elif len(new_columns) == len(old_columns):  # RENAME COLUMN keeps the column's position
        out.renamed_columns += [(name, a, b) for a, b in zip(old_columns, new_columns) if a.lower() != b.lower()]


class VirtualTables:
    """The virtual tables of a database and SQLite's error for each one that does not work: a full scan
    of it fails. An FTS5 or FTS4 index with external content scans its content table, naming the table
    and the columns it was created with, so one whose table or column is gone fails even with no row
    (measured: FTS5's 'integrity-check' passes there, the scan says "no such table: main.shop_item");
    any other module is asked the same way."""

    def __init__(self, conn: sqlite3.Connection):
        self.errors = self._errors(conn)

    @staticmethod
    def _errors(conn: sqlite3.Connection) -> dict[str, tuple[str, str | None]]:
        """lower-case name -> (name, SQLite's error or None)."""
        out: dict[str, tuple[str, str | None]] = {}
        for name in virtual_tables(conn):
            try:
                conn.execute(f"SELECT * FROM main.{quote(name)}").fetchone()
                out[name.lower()] = (name, None)
            except sqlite3.Error as exc:
                out[name.lower()] = (name, str(exc))
        return out

    def broken(self, conn: sqlite3.Connection) -> list[tuple[str, str]]:
        """After a migration: (name, error) of each virtual table that worked before it and fails now."""
        before, self.errors = self.errors, self._errors(conn)
        return [(name, error) for key, (name, error) in self.errors.items()
                if error is not None and key in before and before[key][1] is None]


def broken_message(conn: sqlite3.Connection, migration: str, direction: str, name: str, error: str) -> str:
    """What to say about virtual table `name`, which `migration` leaves failing with `error`."""
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchone() or ("",)
    q = quote(name)
    return (f"migration {migration} ({direction}) leaves virtual table {name} not working: {error} (it was "
            f"created as {short_sql(sql, 120)}; SQLite renames no table or column in it): in the same module, drop "
            f"it and create it again naming the new table and columns, then rebuild its index "
            f"(INSERT INTO {q}({q}) VALUES('rebuild'))")


def _copy_schema(conn: sqlite3.Connection, copy: sqlite3.Connection) -> None:
    """`conn`'s schema, without rows, into the empty database `copy`."""
    rows = conn.execute(
        f"SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL AND {user_objects()} "
        "ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 WHEN 'view' THEN 2 ELSE 3 END, rowid"
    ).fetchall()
    shadows = shadow_tables(conn)  # a virtual table creates its own shadow tables
    copy.execute("PRAGMA foreign_keys = OFF")
    for _kind, name, table, sql in rows:
        if name.lower() in shadows or table.lower() in shadows:
            continue
        try:
            copy.execute(sql)
        except sqlite3.Error as exc:
            raise SchemaCopyFailed(f"validation could not copy the schema ({name}: {exc}); nothing was "
                                   "changed") from None
    copy.execute("PRAGMA foreign_keys = ON")


def rehearse(conn: sqlite3.Connection, migrations: list[Migration], direction: str = "up"
             ) -> dict[StatementKey, Effects]:
    """Apply `migrations` to an empty copy of `conn`'s schema; raise MigrationFailed on the first
    error (VirtualTableBroken for a virtual table one leaves failing). Returns the effects of every
    plain-SQL statement."""
    with private_database() as db:
        copy = raw(db)
        _copy_schema(conn, copy)
        recorder = _Recorder(copy)
        virtual = VirtualTables(copy)
        try:
            for m in migrations:
                recorder.migration = m.name
                shapes.check(copy, m, direction)  # its table as the module expects it, after those before it
                recorder.created_virtual = False
                _rehearse_one(copy, m, direction, recorder)
                if virtual.errors or recorder.created_virtual:  # no cost without virtual tables
                    with recorder.deaf():
                        broken = virtual.broken(copy)
                    if broken:
                        raise VirtualTableBroken(broken_message(copy, m.name, direction, *broken[0]))
        finally:
            sqltext.clear_authorizer(copy)
        return recorder.effects


def broken_virtual_tables(conn: sqlite3.Connection, migrations: list[Migration], direction: str = "up"
                          ) -> list[tuple[str, str]]:
    """(migration, what `broken_message` says) for each virtual table of `conn` that one of `migrations`,
    applied in order on a copy of its schema, leaves failing (none without virtual tables: nothing is
    copied). For `generate`, whose modules have passed their own checks: a migration failing ends it."""
    if not virtual_tables(conn):
        return []
    out: list[tuple[str, str]] = []
    with private_database() as db:
        copy = raw(db)
        _copy_schema(conn, copy)
        virtual = VirtualTables(copy)
        for m in migrations:
            try:
                Applier(copy, python=False).apply(m, direction)
            except MigrationFailed:
                break
            out += [(m.name, broken_message(copy, m.name, direction, *b)) for b in virtual.broken(copy)]
    return out


def _rehearse_one(copy: sqlite3.Connection, m: Migration, direction: str, recorder: _Recorder) -> None:
    tables = recorder.tables
    recorder.actions = []  # what ran since the last statement (the shape check, the last migration's foreign
    # key check and COMMIT) is no statement's
    strict = Applier(copy, observer=recorder, python=False, strict_names=True)
    if not m.atomic:  # its completed statements stay on the copy: one attempt, with the strict names
        strict.apply(m, direction)
        return
    try:
        strict.apply(m, direction)
        return
    except MigrationFailed as exc:
        strict_error = exc
    recorder.tables, recorder.actions = tables, []  # rolled back: as before the migration
    try:
        Applier(copy, observer=recorder, python=False).apply(m, direction)
    except MigrationFailed as exc:  # its own error; named when SQLite said what it was creating
        existing = _created_but_existing(copy, recorder.actions)
        if existing:
            raise ObjectExists(str(exc), existing) from exc
        raise
    raise DoubleQuotedString(
        f"{strict_error}: a double-quoted name in it matches no column or table, and SQLite would read it as "
        "a string (write text in single quotes; if it names a column, that column is not there when this "
        "migration runs)")
