"""Read-only reports: `inspect` (the live schema as the diff sees it) and `stats`."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from dataclasses import dataclass

from tablemigrate.sqlite.ddl import COLUMN_CONSTRAINT_WORDS
from tablemigrate.sqlite.introspect import introspect, is_internal
from tablemigrate.sqlite.schema import Column, Schema, Table
from tablemigrate.sqlite.sqltext import compact_type, quote, tokenize


def declared_type(col: Column) -> str:
    """The column's type as its CREATE TABLE spells it (`varchar(200)`), for people. The schema keeps
    the normalised form (`varchar ( 200 )`), which is what the diff compares."""
    text = col.definition
    try:
        tokens = tokenize(text) if text else []
    except ValueError:
        tokens = []
    type_tokens = []
    for tok in tokens[1:]:  # tokens[0] is the column's name
        if tok.keyword() in COLUMN_CONSTRAINT_WORDS:  # the first constraint ends the type
            break
        type_tokens.append(tok)
    if not type_tokens:
        return compact_type(col.type)
    last = type_tokens[-1]
    return " ".join(text[type_tokens[0].pos:last.pos + len(last.text)].split())


def aligned(header: list[str], rows: list[list[str]], right: Collection[int] = frozenset()) -> list[str]:
    """A header and rows as columns whose widths come from the data; columns in `right` (numbers)
    are right-aligned. The last column is not padded (no trailing spaces)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        out = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))]
        return "  ".join(out).rstrip()
    return [line(header)] + [line(r) for r in rows]


def describe_table(table: Table) -> list[str]:
    """The structural facts the diff compares, one per line."""
    lines = [f"table {table.name}" + "".join(
        f" [{flag}]" for flag, on in (("STRICT", table.strict), ("WITHOUT ROWID", table.without_rowid),
                                     ("AUTOINCREMENT", table.autoincrement)) if on)]
    width = max((len(c.name) for c in table.columns.values()), default=0)
    for col in table.columns.values():
        facts = [declared_type(col) or "(no type)"]
        if col.pk:
            facts.append("PRIMARY KEY" if len(table.primary_key) == 1 else f"PRIMARY KEY part {col.pk}")
        if col.notnull:
            facts.append("NOT NULL")
        if col.default is not None:
            facts.append(f"DEFAULT {col.default}")
        if col.collation:
            facts.append(f"COLLATE {col.collation}")
        if col.generated:
            facts.append(f"GENERATED ({col.generated}) {col.generated_kind or ''}".rstrip())
        lines.append(f"  {col.name.ljust(width)}  {' '.join(facts)}")
    for fk in sorted(table.foreign_keys, key=repr):
        ref = f"{fk.ref_table}({', '.join(fk.ref_columns)})" if fk.ref_columns else fk.ref_table
        extra = "".join(f" ON {w} {a}" for w, a in (("DELETE", fk.on_delete), ("UPDATE", fk.on_update))
                        if a not in ("NO ACTION", ""))
        lines.append(f"  foreign key ({', '.join(fk.columns)}) -> {ref}{extra}"
                     + (" DEFERRABLE INITIALLY DEFERRED" if fk.deferred else ""))
    lines += [f"  unique ({', '.join(u.columns)})" for u in sorted(table.uniques, key=repr)]
    lines += [f"  check ({c.expr})" for c in sorted(table.checks, key=repr)]
    lines += [f"  index {i.name}: {i.raw}" for _k, i in sorted(table.indexes.items())]
    return lines


def describe(schema: Schema, table: str | None = None) -> list[str]:
    if table is not None:
        found = schema.table(table)
        return describe_table(found) if found else []
    lines: list[str] = []
    for key in sorted(schema.tables):
        lines += describe_table(schema.tables[key]) + [""]
    lines += [f"trigger {t.name} on {t.table}: {t.raw}" for _k, t in sorted(schema.triggers.items())]
    lines += [f"view {v.name}: {v.raw}" for _k, v in sorted(schema.views.items())]
    return lines


@dataclass(frozen=True)
class TableStats:
    name: str
    rows: int
    bytes: int | None  # None when SQLite was built without the dbstat table


def table_stats(conn: sqlite3.Connection) -> list[TableStats]:
    names = sorted(t.name for t in introspect(conn).tables.values())
    try:
        sizes = dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall())
        index_owner = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'"))
        for index, owner in index_owner.items():  # a table's size includes its indexes
            if index in sizes and owner in sizes:
                sizes[owner] += sizes.pop(index)
    except sqlite3.OperationalError:
        sizes = None
    return [TableStats(n, conn.execute(f"SELECT count(*) FROM {quote(n)}").fetchone()[0],
                       sizes.get(n) if sizes is not None else None)
            for n in names if not is_internal(n)]


def database_facts(conn: sqlite3.Connection) -> dict[str, object]:
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    return {
        "size": page_size * pages,
        "page_size": page_size,
        "free_pages": conn.execute("PRAGMA freelist_count").fetchone()[0],
        "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
        "sqlite_version": sqlite3.sqlite_version,
    }
