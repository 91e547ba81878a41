"""SQLite's table rebuild done one way: a filled copy swapped in, and the writable_schema edit.

Both rebuilds, `RebuildTable` (one transaction) and the online one (chunks, then a short swap), end with
the same procedure, `swap`: it reads what must survive (the table's own triggers and indexes, the views
and triggers that depend on it, its AUTOINCREMENT counter), lets the caller fill the new table (the copy
is the caller's step), checks the row counts, puts the new table in the old one's place, makes the
dependents again and checks that no schema object was lost. `edit_schema` is the one direct edit of
`sqlite_schema` (decision 108), used by the in-place alter and by the online swap. `Scratch` is an
in-memory database that reads CREATE TABLE texts one at a time: what SQLite makes of a definition is
asked of one connection, not of one connection per question.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from types import TracebackType

from . import ddl, sqltext
from .sqltext import quote

Dependent = tuple[str, str, str]  # (type, name, sql)


def schema_objects(conn: sqlite3.Connection) -> set[tuple[str, str]]:
    """(type, lower name) of every user object: what a rebuild must leave exactly as it found it."""
    return {(k, n.lower()) for k, n in conn.execute(
        f"SELECT type, name FROM sqlite_master WHERE {sqltext.user_objects()}")}


def dependents(conn: sqlite3.Connection, table: str) -> tuple[list[Dependent], list[Dependent]]:
    """The objects a rebuild of `table` must carry over, read from the live database at run time (so
    objects made by hand survive too), each list in creation order:
    - its own indexes and triggers, which DROP TABLE removes with it;
    - every view and trigger that depends on it, transitively: views and triggers that mention the
      table, views and triggers that mention such a view, and INSTEAD OF triggers on such a view.
      SQLite re-validates them when the rebuilt table is renamed into place, and dropping a view
      silently drops its triggers, so all of them are dropped first and recreated afterwards.
    Views come before triggers in `dependents` (an INSTEAD OF trigger needs its view)."""
    rows = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL "
        f"AND type IN ('index', 'trigger', 'view') AND {sqltext.user_objects()} ORDER BY rowid").fetchall()
    key = table.lower()
    own = [(k, n, s) for k, n, tbl, s in rows if tbl.lower() == key and k in ("index", "trigger")]
    names, found = {key}, set()
    grew = True
    while grew:
        grew = False
        for kind, name, tbl, sql in rows:
            if kind == "index" or (kind, name) in found or tbl.lower() == key:
                continue
            if tbl.lower() in names or any(sqltext.mentions(sql, n) for n in names):
                found.add((kind, name))
                grew = grew or kind == "view"
                if kind == "view":
                    names.add(name.lower())
    carried = [(k, n, s) for kind in ("view", "trigger") for k, n, _t, s in rows
               if k == kind and (k, n) in found]
    return own, carried


def sequence_value(conn: sqlite3.Connection, table: str) -> int | None:
    """`table`'s AUTOINCREMENT counter (None: it has none)."""
    if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone():
        return None
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE lower(name) = lower(?)", (table,)).fetchone()
    return row[0] if row else None


def restore_sequence(conn: sqlite3.Connection, table: str, saved: int) -> None:
    updated = conn.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE lower(name) = lower(?)",
                           (saved, table))
    if updated.rowcount == 0:
        conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, saved))


def swap(conn: sqlite3.Connection, table: str, new: str, fill: Callable[[int], int], *,
         aside: str | None = None, settle: Callable[[], None] | None = None,
         counted: Callable[[tuple[str, str]], bool] = lambda _object: True) -> None:
    """Put table `new` in `table`'s place, inside the caller's transaction (foreign keys off):
    1. `fill(rows)` fills `new` (it may make it first) and returns how many rows it holds; `rows` is
       how many `table` holds, and the two must be equal;
    2. `table`'s own triggers and indexes, its dependent views and triggers (`dependents`) and its
       AUTOINCREMENT counter are read, the dependents dropped;
    3. without `aside`, `table` is dropped; with it, renamed to `aside` (its indexes and rows go with it,
       its rows for the caller to drop later), with `legacy_alter_table` so other tables' foreign keys
       keep naming `table`; then `new` takes the name `table`;
    4. `settle()`, when given (the online rebuild's edit of the definitions, `edit_schema`);
    5. the triggers (and, without `aside`, the indexes: with it, `new` was given its own) and the
       dependents are made again, the counter restored;
    6. the schema objects (those `counted`, before and after) must be the ones there were: one lost
       fails the rebuild, which the caller rolls back."""
    before_objects = {o for o in schema_objects(conn) if counted(o)}
    before = conn.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()[0]
    after = fill(before)
    if after != before:
        raise sqlite3.IntegrityError(f"rebuild of {table} copied {after} of {before} rows; nothing was changed")
    sequence = sequence_value(conn, table)
    own, carried = dependents(conn, table)
    if aside is not None:
        own = [d for d in own if d[0] == "trigger"]  # the indexes stay with the old table
    for kind, name, _sql in reversed(carried + (own if aside is not None else [])):
        conn.execute(f"DROP {kind.upper()} IF EXISTS {quote(name)}")  # triggers before the views they hang on
    if aside is None:
        conn.execute(f"DROP TABLE {quote(table)}")
        conn.execute(f"ALTER TABLE {quote(new)} RENAME TO {quote(table)}")
    else:
        unqualify_indexes(conn, table)
        conn.execute("PRAGMA legacy_alter_table = ON")  # other tables' keys keep naming `table`
        try:
            conn.execute(f"ALTER TABLE {quote(table)} RENAME TO {quote(aside)}")
            conn.execute(f"ALTER TABLE {quote(new)} RENAME TO {quote(table)}")
        finally:
            conn.execute("PRAGMA legacy_alter_table = OFF")
    if settle is not None:
        settle()
    for _kind, _name, sql in own + carried:
        conn.execute(sql)
    if sequence is not None:
        restore_sequence(conn, table, sequence)
    lost = before_objects - {o for o in schema_objects(conn) if counted(o)}
    if lost:
        raise sqlite3.IntegrityError(f"rebuild of {table} would lose "
                                     + ", ".join(f"{k} {n}" for k, n in sorted(lost)) + "; nothing was changed")


# --- the one edit of sqlite_schema ----------------------------------------------------------------------

SchemaEdit = tuple[str, str, str, str]  # (type, name, new name, new text)


def edit_schema(conn: sqlite3.Connection, edits: list[SchemaEdit]) -> bool:
    """Rewrite rows of `sqlite_schema` with SQLite's `writable_schema` procedure (decision 108;
    lang_altertable.html, "making other kinds of table schema changes"), in the caller's transaction:
    one UPDATE of each row's name and text (exactly one row each, else IntegrityError), a
    `schema_version` bump, `writable_schema` off again whatever happens, then SQLite reads the new
    schema (and each edited table). A new name another object has (SQLite's names are schema-wide, in
    any case) is refused before anything is written. Returns False, having written nothing, when SQLite
    does not let this connection write `sqlite_schema` (defensive mode, an authorizer)."""
    version = conn.execute("PRAGMA main.schema_version").fetchone()[0]
    renamed = {name.lower() for _kind, name, new, _sql in edits if new != name}
    for kind, name, new, _sql in edits:
        if new != name and conn.execute("SELECT 1 FROM main.sqlite_master WHERE lower(name) = lower(?)",
                                        (new,)).fetchone() and new.lower() not in renamed:
            raise sqlite3.IntegrityError(f"cannot rename {kind} {name} to {new}: another object of the "
                                         "schema has that name")
    conn.execute("PRAGMA writable_schema = ON")
    try:
        for n, (kind, name, new, sql) in enumerate(edits):
            try:
                updated = conn.execute("UPDATE main.sqlite_master SET name = ?, sql = ? WHERE type = ? AND name = ?",
                                       (new, sql, kind, name)).rowcount
            except sqlite3.DatabaseError:
                if n == 0:  # SQLite refuses when it prepares the statement: nothing was written
                    return False
                raise
            if updated != 1:
                raise sqlite3.IntegrityError(f"{kind} {name} was found {updated} times in the schema, not once")
        conn.execute(f"PRAGMA main.schema_version = {int(version) + 1}")
    finally:
        conn.execute("PRAGMA writable_schema = OFF")
    conn.execute("SELECT * FROM main.sqlite_master LIMIT 0").fetchall()  # SQLite reads the new schema
    for kind, _name, new, _sql in edits:
        if kind == "table":
            conn.execute(f"SELECT * FROM main.{quote(new)} LIMIT 0").fetchall()
    return True


def unqualify_indexes(conn: sqlite3.Connection, table: str) -> None:
    """A partial index whose WHERE names its table (`t.x`) fails the rename of the table with
    `legacy_alter_table` ("error in index ... after rename"): the table's indexes lose their qualifiers
    first (the same index: the table is the only one there)."""
    edits: list[SchemaEdit] = []
    for name, sql in conn.execute("SELECT name, sql FROM main.sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                                  "AND lower(tbl_name) = lower(?)", (table,)).fetchall():
        index = ddl.read_index(sql)
        if index is not None and index.plain and index.qualifiers():
            edits.append(("index", name, name, ddl.rename_index(sql, name, table)))
    if edits and not edit_schema(conn, edits):
        raise sqlite3.DatabaseError("SQLite does not let this connection write sqlite_schema")


# --- how SQLite stores a table ---------------------------------------------------------------------------

def layout_on(conn: sqlite3.Connection, name: str) -> tuple:
    """How SQLite stores table `name`, as SQLite reports it: its columns in order (a record holds its
    values by position), whether it has a rowid, and its hidden indexes (PRIMARY KEY and UNIQUE
    constraints) in the order SQLite numbers them, with their columns, sort orders and collations. Two
    definitions with the same layout read the same stored pages. (Only a column declared exactly
    `INTEGER PRIMARY KEY` is the rowid; `PRIMARY KEY DESC` on the column is not;
    `sqlite_autoindex_<table>_N` follows the order the constraints are written in.)"""
    q = quote(name)
    columns = conn.execute(f"PRAGMA table_xinfo({q})").fetchall()
    indexes = []
    for _seq, index, unique, origin, partial in conn.execute(f"PRAGMA index_list({q})").fetchall():
        if origin != "c":  # made by the table's own text
            indexes.append((index, unique, origin, partial,
                            conn.execute(f"PRAGMA index_xinfo({quote(index)})").fetchall()))
    try:
        conn.execute(f"SELECT rowid FROM {q} LIMIT 0")
        rowid = True
    except sqlite3.OperationalError:  # WITHOUT ROWID
        rowid = False
    alias = [c[1] for c in columns if c[5] == 1 and rowid and not any(i[2] == "pk" for i in indexes)]
    return ([(c[1].lower(), c[6]) for c in columns], rowid, alias, sorted(indexes))


def kept_rowid(live: tuple | None, new: tuple | None) -> str | None:
    """The name by which a copy between tables of these layouts (`layout_on`) carries each row's rowid:
    when both have a rowid that no column holds (no INTEGER PRIMARY KEY: a Django model whose primary key
    is a CharField or UUIDField), an INSERT would number the rows afresh, and whatever is keyed on them
    (an FTS5 external-content index, say) would point at other rows. None when a column holds the rowid
    (copying the column keeps it), when either table has none, or when columns take all three of its
    names (`rowid`, `_rowid_`, `oid`: no SQL can then read it, nor copy it)."""
    if live is None or new is None or not (live[1] and new[1]) or live[2] or new[2]:
        return None
    taken = {c for c, _hidden in live[0] + new[0]}
    return next((n for n in ("rowid", "_rowid_", "oid") if n not in taken), None)


class Scratch:
    """One in-memory database that holds one CREATE TABLE text at a time (`holding`), opened on first
    use: the questions about a definition (its layout, its keys, what its expressions read) are asked of
    one connection, and each text's layout is read once. Use as a context manager (closes it).
    `connect()` opens the in-memory database: with the SQL functions the project's definitions may call
    (a CHECK with Django's REGEXP: project.build.connect), which this stage does not know."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]) -> None:
        self._connect = connect
        self._conn: sqlite3.Connection | None = None
        self._held: str | None = None
        self._layouts: dict[tuple[str, str], tuple | None] = {}

    def __enter__(self) -> Scratch:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def holding(self, create: str) -> sqlite3.Connection:
        """The connection, with the table `create` makes as its only table (sqlite3.Error when SQLite
        does not accept the text)."""
        if self._conn is None:
            self._conn = self._connect()
        conn = self._conn
        if self._held != create:
            self._held = None
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND "
                                        f"{sqltext.user_objects()}").fetchall():
                conn.execute(f"DROP TABLE {quote(name)}")
            conn.execute(create)
            self._held = create
        return conn

    def layout(self, create: str, name: str) -> tuple | None:
        """How SQLite stores the table `create` makes (`layout_on`); None when the text does not make a
        table."""
        key = (create, name)
        if key not in self._layouts:
            try:
                self._layouts[key] = layout_on(self.holding(create), name)
            except sqlite3.Error:
                self._layouts[key] = None
        return self._layouts[key]


def layout(create: str, name: str, connect: Callable[[], sqlite3.Connection]) -> tuple | None:
    """`Scratch.layout` of one text, on a scratch database of its own (`connect()`: as `Scratch`'s)."""
    with Scratch(connect) as scratch:
        return scratch.layout(create, name)
