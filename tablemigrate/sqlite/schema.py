"""The structural model of an SQLite schema: plain frozen dataclasses with structural equality.

Names are keyed in lower case (SQLite identifiers are case-insensitive); expressions are stored in the
normalised form of `sqltext.normalize`. Fields marked `compare=False` carry original text used for
rendering SQL, never for deciding whether two schemas differ. Column order does not count.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field

from . import cache, sqltext

#: What a table's digest (`table_digest`) means: bump it whenever the digest of some table changes (the
#: compared fields of these dataclasses, what introspection or the parser puts in them, `_structure`).
#: `schema.sql`, committed with each project, states it (its `tables` line, its `ddl` digest) instead of
#: the package's version, so that an upgrade rewrites no project's `schema.sql` unless its meaning
#: changed; a file of another number is read as SQL, by the full comparison. tests/test_schema_file.py
#: pins the digests of a sample schema to this number.
DIGEST_FORMAT = 1


def affinity(declared: str) -> str:
    """SQLite's type affinity rules (datatype3.html section 3.1)."""
    t = declared.upper()
    if "INT" in t:
        return "INTEGER"
    if any(s in t for s in ("CHAR", "CLOB", "TEXT")):
        return "TEXT"
    if "BLOB" in t or not t.strip():
        return "BLOB"
    if any(s in t for s in ("REAL", "FLOA", "DOUB")):
        return "REAL"
    return "NUMERIC"


def stores_alike(old: str, new: str) -> bool:
    """Whether a column of declared type `new` stores every value exactly as one of type `old` does: the
    same affinity, or INTEGER and NUMERIC, which "behave the same" except in a CAST (datatype3.html
    section 3.1): `integer` → `decimal(10, 2)` changes no stored value, nor does the way back."""
    kinds = {affinity(old), affinity(new)}
    return len(kinds) == 1 or kinds == {"INTEGER", "NUMERIC"}


@dataclass(frozen=True)
class Column:
    name: str = field(compare=False)
    type: str  # normalised declared type, '' when none
    notnull: bool
    default: str | None  # normalised default expression
    pk: int  # position in the primary key, 0 when not part of it
    collation: str | None
    generated: str | None = None  # normalised expression
    generated_kind: str | None = None  # 'stored' | 'virtual'
    definition: str = field(default="", compare=False)  # the column's text inside CREATE TABLE

    @property
    def key(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class ForeignKey:
    columns: tuple[str, ...]  # lower-case
    ref_table: str  # lower-case
    ref_columns: tuple[str, ...]  # lower-case; () when REFERENCES names no columns
    on_update: str
    on_delete: str
    match: str
    deferred: bool  # DEFERRABLE INITIALLY DEFERRED
    inline: bool = field(default=True, compare=False)  # column-level REFERENCES clause


@dataclass(frozen=True)
class Unique:
    columns: tuple[str, ...]  # normalised indexed-column texts
    name: str | None = None


@dataclass(frozen=True)
class Check:
    expr: str  # normalised
    name: str | None = None
    column: str | None = field(default=None, compare=False)  # set for a column-level CHECK


@dataclass(frozen=True)
class Index:
    name: str = field(compare=False)
    sql: str  # normalised CREATE INDEX text (includes the name and the table)
    unique: bool = False
    raw: str = field(default="", compare=False)


@dataclass(frozen=True)
class Table:
    name: str = field(compare=False)
    columns: dict[str, Column]  # lower name -> column
    primary_key: tuple[str, ...]  # lower names in key order
    autoincrement: bool
    foreign_keys: frozenset[ForeignKey]
    uniques: frozenset[Unique]
    checks: frozenset[Check]
    indexes: dict[str, Index]  # lower name -> index (explicit CREATE INDEX only)
    strict: bool = False
    without_rowid: bool = False
    sql: str = field(default="", compare=False)  # CREATE TABLE text as stored

    @property
    def key(self) -> str:
        return self.name.lower()

    def column_names(self) -> list[str]:
        return [c.name for c in self.columns.values()]


@dataclass(frozen=True)
class Trigger:
    name: str = field(compare=False)
    table: str  # lower
    sql: str  # normalised
    raw: str = field(default="", compare=False)


@dataclass(frozen=True)
class View:
    name: str = field(compare=False)
    sql: str  # normalised
    raw: str = field(default="", compare=False)


@dataclass(frozen=True)
class Schema:
    tables: dict[str, Table]
    triggers: dict[str, Trigger] = field(default_factory=dict)
    views: dict[str, View] = field(default_factory=dict)
    # Virtual tables (FTS5, R*Tree): lower-case name -> the CREATE VIRTUAL TABLE text. Never diffed;
    # kept so that `schema.sql` (and database A built from it) has them, as the history does.
    virtual: dict[str, str] = field(default_factory=dict)

    def table(self, name: str) -> Table | None:
        return self.tables.get(name.lower())

    def without(self, names: Collection[str]) -> Schema:
        """The same schema without the tables named (lower-case): tables the diff leaves alone."""
        if not names:
            return self
        return Schema({k: t for k, t in self.tables.items() if k not in names}, self.triggers, self.views,
                      self.virtual)

    def statements(self) -> list[str]:
        """Every CREATE statement, in a stable order (tables by name, then triggers, then views)."""
        out: list[str] = []
        for key in sorted(self.tables):
            table = self.tables[key]
            out.append(cache.derived(table, "_pretty", lambda t: sqltext.pretty_create_table(t.sql)))
            out.extend(table.indexes[k].raw for k in sorted(table.indexes))
        out.extend(self.virtual[k] for k in sorted(self.virtual))
        out.extend(self.triggers[k].raw for k in sorted(self.triggers))
        out.extend(self.views[k].raw for k in sorted(self.views))
        return out

    def fingerprint(self) -> str:
        """A hash of the structure (not the text): structurally equal schemas hash the same."""
        return fingerprint_of({k: table_digest(t) for k, t in self.tables.items()},
                              [("trigger", k, repr(_structure(t))) for k, t in sorted(self.triggers.items())]
                              + [("view", k, repr(_structure(v))) for k, v in sorted(self.views.items())]
                              + [("virtual", k, sqltext.normalize(sql)) for k, sql in sorted(self.virtual.items())])


def fingerprint_of(table_digests: dict[str, str], others: list[tuple[str, str, str]] | None = None) -> str:
    """`Schema.fingerprint` from the tables' digests (`table_digest`, by lower-case name) and the other
    objects' parts: `schema.sql`'s markers give the digests of tables nobody parsed."""
    parts = [("table", k, d) for k, d in sorted(table_digests.items())] + (others or [])
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def same_tables(x: dict[str, Table], y: dict[str, Table]) -> bool:
    """`x == y` for two schemas' tables, by their cached structure digests (equal exactly when the
    compared fields are equal): a 200-table comparison costs microseconds, not a deep walk."""
    return x.keys() == y.keys() and all(t is y[k] or table_digest(t) == table_digest(y[k]) for k, t in x.items())


def table_digest(table: Table) -> str:
    """The structure of one table: equal exactly when the compared fields are equal."""
    return cache.derived(table, "_digest", lambda t: hashlib.sha256(repr(_structure(t)).encode()).hexdigest())


def _structure(value: object) -> object:
    """The compared fields of a schema value, as nested sorted tuples (text-only fields left out)."""
    names = _COMPARED.get(type(value))
    if names is None and dataclasses.is_dataclass(value):
        names = _COMPARED[type(value)] = tuple(f.name for f in dataclasses.fields(value) if f.compare)
    if names is not None:
        return tuple((name, _structure(getattr(value, name))) for name in names)
    if isinstance(value, dict):
        return tuple(sorted((k, _structure(v)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return tuple(sorted(repr(_structure(v)) for v in value))
    return value


#: The compared fields of each schema dataclass, in declaration order (read once per class: asking
#: `dataclasses.fields` for every value was a third of a 200-table fingerprint).
_COMPARED: dict[type, tuple[str, ...]] = {}
