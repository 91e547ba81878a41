"""Read an SQLite database into a `Schema`.

PRAGMAs for what they report, the stored CREATE text read by `ddl.read_table` for what no PRAGMA shows
(collation, CHECK, generated expressions, AUTOINCREMENT, DEFERRABLE, constraint names, STRICT /
WITHOUT ROWID)."""

from __future__ import annotations

import dataclasses
import sqlite3

from . import cache, ddl, sqltext
from .schema import Column, ForeignKey, Index, Schema, Table, Trigger, View, table_digest

#: The table, in the target database, that records the applied migrations (tablemigrate.history).
HISTORY_TABLE = "tablemigrate_history"
#: The models' fingerprint a test database built from the models was built for (tablemigrate.testing).
TEST_MODELS_TABLE = "tablemigrate_test_models"
#: The database's identity (one row, written before its first backup), which its backups carry (backup.py).
IDENTITY_TABLE = "tablemigrate_identity"
# Tables that belong to SQLite, to tablemigrate, or to Django's own migration bookkeeping.
INTERNAL_TABLES = frozenset({HISTORY_TABLE, TEST_MODELS_TABLE, IDENTITY_TABLE, "django_migrations"})


def is_internal(name: str) -> bool:
    lower = name.lower()
    return lower.startswith("sqlite_") or lower in INTERNAL_TABLES


def _foreign_keys(conn: sqlite3.Connection, qname: str, parsed: ddl.TableText) -> frozenset[ForeignKey]:
    groups: dict[int, list[tuple]] = {}
    for row in conn.execute(f"PRAGMA main.foreign_key_list({qname})"):
        groups.setdefault(row[0], []).append(row)
    fks = set()
    for rows in groups.values():
        rows.sort(key=lambda r: r[1])
        cols = tuple(r[3].lower() for r in rows)
        ref_cols = tuple(r[4].lower() for r in rows if r[4] is not None)
        fks.add(ForeignKey(cols, rows[0][2].lower(), ref_cols, rows[0][5].upper(), rows[0][6].upper(),
                           rows[0][7].upper(), parsed.deferred_fks.get(cols, False),
                           inline=cols in parsed.inline_fks))
    return frozenset(fks)


def introspect_table(conn: sqlite3.Connection, name: str, sql: str,
                     index_rows: list[tuple[str, str]]) -> Table:
    """The table's structure. Everything PRAGMAs report is determined by the CREATE text, so results
    are cached on (name, CREATE text, indexes) (cache.py): `generate` introspects the same tables
    several times, and again on its next run."""
    indexes = tuple(index_rows)
    return cache.table((name, sql, indexes),
                       lambda: _laid_out_again(name, sql, indexes) or _introspect_table(conn, name, sql, index_rows))


def _laid_out_again(name: str, sql: str, indexes: tuple) -> Table | None:
    """The table parsed from another layout of the same statement, when `sql` is that statement laid
    out one column per line (`pretty_create_table`: how modules create tables and `schema.sql` keeps
    them, while database B holds Django's one-line text). The layout keeps every token and every
    column's and constraint's own text, so SQLite and the parser read the same table: only `sql` (and
    the derived values that depend on it) differ. Database A of a fresh checkout is mostly such tables."""
    if "\n" not in sql:
        return None
    for key, parsed in cache.tables_named(name, indexes):
        other = key[1]
        try:
            if other != sql and sqltext.pretty_create_table(other) == sql:
                twin = dataclasses.replace(parsed, sql=sql)
                # The compared fields are the same, so is the digest; the layout is its own (it is
                # idempotent) and the other's.
                object.__setattr__(twin, "_digest", table_digest(parsed))
                object.__setattr__(twin, "_pretty", sql)
                object.__setattr__(parsed, "_pretty", sql)
                return twin
        except ValueError:
            continue
    return None


def _introspect_table(conn: sqlite3.Connection, name: str, sql: str,
                      index_rows: list[tuple[str, str]]) -> Table:
    parsed = ddl.read_table(sql)
    qname = sqltext.quote(name)
    columns: dict[str, Column] = {}
    pk: list[tuple[int, str]] = []
    for _cid, cname, ctype, notnull, dflt, cpk, hidden in conn.execute(f"PRAGMA main.table_xinfo({qname})"):
        key = cname.lower()
        columns[key] = Column(
            name=cname,
            type=sqltext.normalize(ctype) if ctype else "",
            notnull=bool(notnull),
            default=sqltext.normalize(dflt) if dflt is not None else None,
            pk=cpk,
            collation=parsed.collations.get(key),
            generated=parsed.generated.get(key),
            generated_kind={2: "virtual", 3: "stored"}.get(hidden),
            definition=parsed.definitions.get(key, ""),
        )
        if cpk:
            pk.append((cpk, key))
    indexes = {
        iname.lower(): Index(iname, sqltext.normalize(isql), sqltext.tokenize(isql)[1].keyword() == "unique", isql)
        for iname, isql in index_rows
    }
    return Table(
        name=name,
        columns=columns,
        primary_key=tuple(k for _, k in sorted(pk)),
        autoincrement=parsed.autoincrement,
        foreign_keys=_foreign_keys(conn, qname, parsed),
        uniques=frozenset(parsed.uniques),
        checks=frozenset(parsed.checks),
        indexes=indexes,
        strict=parsed.strict,
        without_rowid=parsed.without_rowid,
        sql=sql,
    )


_SHADOW_SUFFIXES = ("content", "docsize", "config", "data", "idx", "segments", "segdir", "stat", "node",
                    "parent", "rowid")


def shadow_tables(conn: sqlite3.Connection) -> set[str]:
    """Lower-case names of the tables virtual tables (FTS, R*Tree) keep their data in: created and
    dropped with their virtual table, never by a migration of their own."""
    try:
        return {r[1].lower() for r in conn.execute("PRAGMA main.table_list") if r[2] == "shadow"}
    except sqlite3.OperationalError:  # SQLite before 3.37: by the modules' naming convention
        return {f"{v.lower()}_{suffix}" for v in virtual_tables(conn) for suffix in _SHADOW_SUFFIXES}


def virtual_tables(conn: sqlite3.Connection) -> list[str]:
    """The names of the virtual tables (FTS, R*Tree) of the main database, as SQLite keeps them."""
    try:
        return [r[1] for r in conn.execute("PRAGMA main.table_list") if r[2] == "virtual"]
    except sqlite3.OperationalError:  # SQLite before 3.37 (which stores each as CREATE VIRTUAL TABLE ...)
        return [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND sql LIKE 'CREATE VIRTUAL%'")]


def sql_made_tables(conn: sqlite3.Connection) -> set[str]:
    """Lower-case names of the virtual tables (FTS5, R*Tree) and views of the main database: objects
    a model may stand for (`managed` or not) that only SQL makes, which the diff leaves alone."""
    try:
        return {r[1].lower() for r in conn.execute("PRAGMA main.table_list") if r[2] in ("virtual", "view")}
    except sqlite3.OperationalError:  # SQLite before 3.37
        return {r[0].lower() for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'view' OR (type = 'table' AND sql LIKE 'CREATE VIRTUAL%')")}


def introspect(conn: sqlite3.Connection) -> Schema:
    """The whole schema of the main database of `conn`: internal tables and the shadow tables of virtual
    tables left out, virtual tables by their SQL only."""
    rows = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name").fetchall()
    index_rows: dict[str, list[tuple[str, str]]] = {}
    for kind, name, tbl, sql in rows:
        if kind == "index":
            index_rows.setdefault(tbl.lower(), []).append((name, sql))
    tables: dict[str, Table] = {}
    triggers: dict[str, Trigger] = {}
    views: dict[str, View] = {}
    virtual: dict[str, str] = {}
    shadows = shadow_tables(conn)
    for kind, name, tbl, sql in rows:
        if kind == "table" and sql.lstrip()[:20].upper().startswith("CREATE VIRTUAL"):
            virtual[name.lower()] = sql
        elif kind == "table" and not is_internal(name) and name.lower() not in shadows:
            tables[name.lower()] = introspect_table(conn, name, sql, index_rows.get(name.lower(), []))
        elif kind == "trigger" and not is_internal(tbl):
            triggers[name.lower()] = Trigger(name, tbl.lower(), sqltext.normalize(sql), sql)
        elif kind == "view":
            views[name.lower()] = View(name, sqltext.normalize(sql), sql)
    return Schema(tables=tables, triggers=triggers, views=views, virtual=virtual)
