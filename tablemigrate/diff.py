"""Schema x Schema -> per-table changes. Pure: values in, values out, no I/O.

Only tables (with their columns, constraints and indexes) are diffed. Triggers and views are never
created by models, so they belong to hand-written migrations: the diff leaves them alone and table
rebuilds carry them over.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .schema import Column, Schema, Table


@dataclass
class Renames:
    """Renames the user confirmed: tables old -> new, columns per (new) table old -> new (lower-case)."""

    tables: dict[str, str] = field(default_factory=dict)
    columns: dict[str, dict[str, str]] = field(default_factory=dict)

    def add_table(self, old: str, new: str) -> None:
        self.tables[old.lower()] = new.lower()

    def add_column(self, table: str, old: str, new: str) -> None:
        self.columns.setdefault(table.lower(), {})[old.lower()] = new.lower()

    @classmethod
    def parse(cls, specs: list[str]) -> Renames:
        """`TABLE.OLD:NEW` renames a column of (the new) TABLE; `OLDTABLE:NEWTABLE` renames a table."""
        renames = cls()
        for spec in specs:
            old, sep, new = spec.partition(":")
            if not sep or not old or not new:
                raise ValueError(f"--rename {spec!r}: expected TABLE.OLD:NEW or OLDTABLE:NEWTABLE")
            if "." in old:
                table, _, column = old.partition(".")
                renames.add_column(table, column, new)
            else:
                renames.add_table(old, new)
        return renames


@dataclass(frozen=True)
class TableChange:
    kind: str  # 'create' | 'alter' | 'drop'
    old: Table | None
    new: Table | None
    column_renames: dict[str, str] = field(default_factory=dict)  # old lower -> new lower

    @property
    def table(self) -> Table:
        table = self.new or self.old
        assert table is not None
        return table

    @property
    def renamed(self) -> bool:
        return self.old is not None and self.new is not None and self.old.key != self.new.key


@dataclass(frozen=True)
class RenameCandidate:
    kind: str  # 'table' | 'column'
    table: str  # for a column: the (new) table name
    old: str
    new: str

    def question(self) -> str:
        if self.kind == "table":
            return f"Did you rename table {self.old} to {self.new}?"
        return f"Did you rename column {self.table}.{self.old} to {self.table}.{self.new}?"


def _column_shape(col: Column) -> tuple:
    return (col.type, col.notnull, col.default, col.pk, col.collation, col.generated, col.generated_kind)


def _pairs(a: Schema, b: Schema, renames: Renames) -> list[tuple[Table, Table]]:
    pairs = [(a.tables[k], b.tables[k]) for k in a.tables if k in b.tables and k not in renames.tables]
    pairs += [(a.tables[old], b.tables[new]) for old, new in renames.tables.items()
              if old in a.tables and new in b.tables]
    return pairs


def rename_candidates(a: Schema, b: Schema, renames: Renames) -> list[RenameCandidate]:
    """Plausible renames not yet decided: same shape on both sides (evidence, not names)."""
    out: list[RenameCandidate] = []
    gone = [t for k, t in a.tables.items() if k not in b.tables and k not in renames.tables]
    new = [t for k, t in b.tables.items() if k not in a.tables and k not in renames.tables.values()]
    for old_t in gone:
        shape = sorted((k, _column_shape(c)) for k, c in old_t.columns.items())
        for new_t in new:
            if sorted((k, _column_shape(c)) for k, c in new_t.columns.items()) == shape:
                out.append(RenameCandidate("table", new_t.name, old_t.name, new_t.name))
    for old_t, new_t in _pairs(a, b, renames):
        decided = renames.columns.get(new_t.key, {})
        dropped = [c for k, c in old_t.columns.items() if k not in new_t.columns and k not in decided]
        added = [c for k, c in new_t.columns.items() if k not in old_t.columns and k not in decided.values()]
        for old_c in dropped:
            for new_c in added:
                if _column_shape(old_c) == _column_shape(new_c):
                    out.append(RenameCandidate("column", new_t.name, old_c.name, new_c.name))
    return out


def diff_schemas(a: Schema, b: Schema, renames: Renames | None = None) -> list[TableChange]:
    renames = renames or Renames()
    for old, new in renames.tables.items():
        if old not in a.tables or new not in b.tables or new in a.tables:
            raise ValueError(f"rename {old} -> {new}: expected {old} only in the history and {new} "
                             "only in the models")
    changes: list[TableChange] = []
    for old_t, new_t in _pairs(a, b, renames):
        col_renames = renames.columns.get(new_t.key, {})
        for old_c, new_c in col_renames.items():
            if old_c not in old_t.columns or new_c not in new_t.columns:
                raise ValueError(f"rename {new_t.name}.{old_c} -> {new_c}: no such column pair")
        if old_t.key != new_t.key or col_renames or old_t != new_t:
            changes.append(TableChange("alter", old_t, new_t, dict(col_renames)))
    renamed_new = set(renames.tables.values())
    changes += [TableChange("create", None, t) for k, t in b.tables.items()
                if k not in a.tables and k not in renamed_new]
    changes += [TableChange("drop", t, None) for k, t in a.tables.items()
                if k not in b.tables and k not in renames.tables]
    return changes
