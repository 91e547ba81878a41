"""Schema x Schema -> per-table typed changes (changes.py). Pure: values in, values out, no I/O.

Only tables (with their columns, constraints and indexes) are diffed. Triggers and views are never
created by models, so they belong to hand-written migrations: the diff leaves them alone and table
rebuilds carry them over.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from django.db.backends.utils import strip_quotes, truncate_name

from . import sqltext
from .changes import (
    AddColumn,
    AddConstraint,
    AddIndex,
    AlterColumn,
    AlterTable,
    Change,
    CreateTable,
    DropColumn,
    DropConstraint,
    DropIndex,
    DropTable,
    RenameColumn,
    RenameTable,
    of_type,
)
from .schema import Column, ForeignKey, Schema, Table, Unique


@dataclass(frozen=True)
class ModelRename:
    """A model renamed along with its table (Django's RenameModel), as its content type names it:
    `app_label`, the old and the new model name (lower-case). `old` is None where it is not known (the
    old table is not Django's default name for a model of that app, and nobody said)."""

    app_label: str
    old: str | None
    new: str
    label: str  # the new model's label, `blog.Topic`, for messages


@dataclass
class Renames:
    """Renames the user confirmed, and those that go with them (`carry_renames`): tables old -> new,
    columns per (new) table old -> new (lower-case). `models`: the model renames declared with model
    labels, (app label, new model name) -> old model name (lower-case); `model_tables`: the model each
    renamed table belongs to, by its new name (filled by `generate`, for the content types)."""

    tables: dict[str, str] = field(default_factory=dict)
    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    models: dict[tuple[str, str], str] = field(default_factory=dict)
    model_tables: dict[str, ModelRename] = field(default_factory=dict)

    def add_table(self, old: str, new: str) -> None:
        self.tables[old.lower()] = new.lower()

    def add_column(self, table: str, old: str, new: str) -> None:
        self.columns.setdefault(table.lower(), {})[old.lower()] = new.lower()

    @classmethod
    def parse(cls, specs: list[str]) -> Renames:
        """`TABLE.OLD:NEW` renames a column of (the new) TABLE; `OLDTABLE:NEWTABLE` renames a table;
        `APP.OLDMODEL:APP.NEWMODEL` (model labels, as Django writes them) renames a model: its table
        when that has Django's default name, and its content type."""
        renames = cls()
        for spec in specs:
            old, sep, new = spec.partition(":")
            if not sep or not old or not new:
                raise ValueError(f"--rename {spec!r}: expected TABLE.OLD:NEW, OLDTABLE:NEWTABLE or "
                                 "APP.OLDMODEL:APP.NEWMODEL")
            if "." in new:
                (app, _, old_model), (new_app, _, new_model) = old.partition("."), new.partition(".")
                if not (app and old_model and new_model) or app != new_app:
                    raise ValueError(f"--rename {spec!r}: a model rename is APP.OLDMODEL:APP.NEWMODEL, in one app "
                                     "(Django's RenameModel renames a model within its app)")
                renames.models[(app, new_model.lower())] = old_model.lower()
            elif "." in old:
                table, _, column = old.partition(".")
                renames.add_column(table, column, new)
            else:
                renames.add_table(old, new)
        return renames


@dataclass(frozen=True)
class TableChange:
    """How one table changes: `kind` create/alter/drop, the table before and after, and the typed
    changes (changes.py) that take it from `old` to `new`."""

    kind: str  # 'create' | 'alter' | 'drop'
    old: Table | None
    new: Table | None
    ops: tuple[Change, ...] = ()

    @property
    def table(self) -> Table:
        table = self.new or self.old
        assert table is not None
        return table

    @property
    def renamed(self) -> bool:
        return self.old is not None and self.new is not None and self.old.key != self.new.key

    @property
    def column_renames(self) -> dict[str, str]:
        """Old column (lower) -> new column (lower)."""
        return {r.old.lower(): r.new.lower() for r in of_type(self.ops, RenameColumn)}


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


def column_sources(frm: Table, to: Table, renames: dict[str, str]) -> dict[str, str]:
    """For each column of `to` that comes from a column of `frm`: to key -> frm key.
    `renames` maps frm column -> to column (lower-case)."""
    inverse = {n: o for o, n in renames.items()}
    sources = {}
    for key in to.columns:
        origin = inverse.get(key, key if key not in renames else None)
        if origin is not None and origin in frm.columns:
            sources[key] = origin
    return sources


@dataclass(frozen=True)
class Context:
    """The renames of every table in the diff, to compare references across tables."""

    table_renames: dict[str, str]  # old lower -> new lower
    column_renames: dict[str, dict[str, str]]  # old table lower -> {old col: new col}


def _rename_fk(fk: ForeignKey, own: dict[str, str], ctx: Context, self_key: str) -> ForeignKey:
    ref_cols = ctx.column_renames.get(fk.ref_table, own if fk.ref_table == self_key else {})
    return dataclasses.replace(
        fk,
        columns=tuple(own.get(c, c) for c in fk.columns),
        ref_table=ctx.table_renames.get(fk.ref_table, fk.ref_table),
        ref_columns=tuple(ref_cols.get(c, c) for c in fk.ref_columns),
    )


def table_changes(old: Table, new: Table, renames: dict[str, str], ctx: Context) -> tuple[Change, ...]:
    """The typed changes that turn table `old` into `new`, comparing with the renames applied to the old
    side (`renames`: old col -> new col, lower; `ctx`: every table's renames). In the order a summary
    lists them: table rename, columns dropped, added, renamed, constraints, table facts, altered
    columns, indexes dropped and added."""
    source = column_sources(old, new, renames)
    added = [k for k in new.columns if k not in source]
    dropped = [k for k in old.columns if k not in source.values()]
    col_map = {o: n for n, o in source.items() if n != o}  # old key -> new key
    mapped = {o: new.columns[n].name for o, n in col_map.items()}
    mapped.update(ctx.table_renames)

    def ren(norm: str) -> str:
        return sqltext.rename_identifiers(norm, mapped)

    ops: list[Change] = []
    if old.key != new.key:
        ops.append(RenameTable(old.name, new.name))
    ops += [DropColumn(old.columns[k]) for k in dropped]
    ops += [AddColumn(new.columns[k]) for k in added]
    ops += [RenameColumn(old.columns[o].name, new.columns[n].name) for o, n in col_map.items()]

    new_uniques = set(new.uniques)
    old_uniques = {u: Unique(tuple(ren(c) for c in u.columns), u.name) for u in old.uniques}
    ops += [DropConstraint(u) for u, r in old_uniques.items() if r not in new_uniques]
    ops += [AddConstraint(u) for u in new.uniques if u not in set(old_uniques.values())]
    new_checks = set(new.checks)
    old_checks = {c: dataclasses.replace(c, expr=ren(c.expr)) for c in old.checks}
    ops += [DropConstraint(c, c.column if c.column in dropped else None)
            for c, r in old_checks.items() if r not in new_checks]
    ops += [AddConstraint(c, c.column if c.column in added else None)
            for c in new.checks if c not in set(old_checks.values())]
    new_fks = set(new.foreign_keys)
    old_fks = {fk: _rename_fk(fk, col_map, ctx, old.key) for fk in old.foreign_keys}
    ops += [DropConstraint(fk, _own_column(fk, dropped)) for fk, r in old_fks.items() if r not in new_fks]
    ops += [AddConstraint(fk, _own_column(fk, added))
            for fk in new.foreign_keys if fk not in set(old_fks.values())]

    old_pk = tuple(col_map.get(c, c) for c in old.primary_key)
    if old_pk != new.primary_key:
        ops.append(AlterTable("primary key", old.primary_key, new.primary_key))
    for attribute in ("autoincrement", "strict", "without_rowid"):
        if getattr(old, attribute) != getattr(new, attribute):
            ops.append(AlterTable(attribute.replace("_", " "), getattr(old, attribute), getattr(new, attribute)))

    for n, o in source.items():
        oc, nc = old.columns[o], new.columns[n]
        if dataclasses.replace(oc, generated=ren(oc.generated) if oc.generated else None) != nc:
            ops.append(AlterColumn(oc, nc))

    old_index_sql = {k: ren(i.sql) for k, i in old.indexes.items()}
    new_index_sql = {i.sql for i in new.indexes.values()}
    kept_sql = {s for s in old_index_sql.values() if s in new_index_sql}
    ops += [DropIndex(i) for k, i in old.indexes.items() if old_index_sql[k] not in new_index_sql]
    ops += [AddIndex(i) for i in new.indexes.values() if i.sql not in kept_sql]
    return tuple(ops)


def _own_column(fk: ForeignKey, columns: list[str]) -> str | None:
    """The column whose own REFERENCES clause is `fk`, when that column is in `columns`."""
    return fk.columns[0] if fk.inline and set(fk.columns) <= set(columns) else None


def _pairs(a: Schema, b: Schema, renames: Renames) -> list[tuple[Table, Table]]:
    pairs = [(a.tables[k], b.tables[k]) for k in a.tables if k in b.tables and k not in renames.tables]
    pairs += [(a.tables[old], b.tables[new]) for old, new in renames.tables.items()
              if old in a.tables and new in b.tables]
    return pairs


def check_renames(a: Schema, b: Schema, renames: Renames) -> None:
    """ValueError unless every declared rename names a table or column pair the two sides have."""
    for old, new in renames.tables.items():
        if old not in a.tables or new not in b.tables or new in a.tables:
            raise ValueError(f"rename {old} -> {new}: expected {old} in the history and {new} "
                             "only in the models")
    pairs = {new_t.key: (old_t, new_t) for old_t, new_t in _pairs(a, b, renames)}
    for table, columns in renames.columns.items():
        old_t, new_t = pairs.get(table, (None, None))
        for old_c, new_c in columns.items():
            if old_t is None or new_t is None or old_c not in old_t.columns or new_c not in new_t.columns:
                raise ValueError(f"rename {table}.{old_c} -> {new_c}: no such column pair")
            # A name that one column leaves and another takes in the same step (an old column dropped
            # while another is renamed onto its name, or the renamed column's old name taken by a new
            # column): SQLite renames onto no name a table still has, in `up` or in `down`, and which
            # column a CHECK or an index means would be ambiguous.
            if new_c != old_c and new_c in old_t.columns and new_c not in columns:
                raise ValueError(f"rename {table}.{old_c} -> {new_c}: {old_t.name} still has a column "
                                 f"{new_c}; drop or rename it first (generate, then generate the rename)")
            if new_c != old_c and old_c in new_t.columns and old_c not in columns.values():
                raise ValueError(f"rename {table}.{old_c} -> {new_c}: the models also have a new column {old_c}; "
                                 "generate the rename first, then add the new column")
        rename_order(table, columns)


def rename_order(table: str, columns: dict[str, str]) -> list[tuple[str, str]]:
    """The column renames (old -> new) in an order SQLite can run them one by one: a rename onto a
    name the table has comes after the rename that frees that name. ValueError for a cycle (a swap)."""
    pending, done = dict(columns), []
    while pending:
        ready = [(o, n) for o, n in pending.items() if n == o or n not in pending]
        if not ready:
            raise ValueError(f"renames {', '.join(f'{table}.{o} -> {n}' for o, n in pending.items())} form a "
                             "cycle: SQLite renames one column at a time; rename through a temporary name "
                             "in two generates")
        for o, n in ready:
            done.append((o, n))
            del pending[o]
    return done


def diff_schemas(a: Schema, b: Schema, renames: Renames | None = None) -> list[TableChange]:
    """Every table that differs, with its typed changes. Raises ValueError for a rename that names
    no such table or column pair."""
    renames = renames or Renames()
    check_renames(a, b, renames)
    ctx = Context(dict(renames.tables), {old_t.key: renames.columns.get(new_t.key, {})
                                         for old_t, new_t in _pairs(a, b, renames)
                                         if renames.columns.get(new_t.key)})
    changes: list[TableChange] = []
    for old_t, new_t in _pairs(a, b, renames):
        col_renames = renames.columns.get(new_t.key, {})
        # A child of a renamed table compares under the rename even where its text is the same: its
        # foreign key may name a new table that took the freed name.
        follows = any(fk.ref_table in renames.tables for fk in old_t.foreign_keys)
        if old_t.key != new_t.key or col_renames or old_t != new_t or follows:
            ops = table_changes(old_t, new_t, col_renames, ctx)
            changes.append(TableChange("alter", old_t, new_t, ops))
    renamed_new = set(renames.tables.values())
    # A name a rename frees may be taken by a new table in the same step (the plan renames first).
    changes += [TableChange("create", None, t, (CreateTable(t),)) for k, t in b.tables.items()
                if (k not in a.tables or k in renames.tables) and k not in renamed_new]
    changes += [TableChange("drop", t, None, (DropTable(t),)) for k, t in a.tables.items()
                if k not in b.tables and k not in renames.tables]
    return changes


@dataclass(frozen=True)
class JoinTable:
    """A many-to-many table Django creates for a field (its auto-created through model), as the models'
    metadata gives it: `table`, and `owner`, the table of the model the field is on (lower-case).
    `field`: the field's name when Django names the table after the owner's table and the field (the
    name follows the owner's table when it is renamed); None when the field names it (`db_table`)."""

    table: str
    owner: str
    field: str | None = None
    max_length: int | None = None  # Django's limit on names (None on SQLite)

    def name_for(self, owner: str) -> str:
        """The table's name with the owner's table named `owner`, by Django's own rule."""
        if self.field is None:
            return self.table
        return truncate_name(f"{strip_quotes(owner)}_{self.field}", self.max_length).lower()


def _columns_by_reference(table: Table, table_renames: dict[str, str]) -> dict[str, list[str]]:
    """Referenced table (the renames applied) -> the columns whose own foreign key references it, in
    the table's column order."""
    out: dict[str, list[str]] = {}
    for key in table.columns:
        for ref in sorted({fk.ref_table for fk in table.foreign_keys if fk.columns == (key,)}):
            out.setdefault(table_renames.get(ref, ref), []).append(key)
    return out


def carry_renames(a: Schema, b: Schema, renames: Renames, joins: list[JoinTable]) -> None:
    """Adds to `renames` what Django's RenameModel renames along with a model: the many-to-many tables
    Django created for the model's fields (their name follows the model's table) and, in every such
    table, a column named after a renamed model (`item_id` -> `product_id`, in the renamed model's own
    tables and in those of other models' fields that point at it). Which tables these are and what
    their names follow comes from the models' metadata (`joins`); which column is which, from the
    schemas: the column whose foreign key references the same table (the renames applied), in the
    same place among the columns that reference it. Nothing is added where the sides do not pair up
    so: the diff then drops and creates, and says so."""
    inverse = {new: old for old, new in renames.tables.items()}
    pairs: list[tuple[Table, Table]] = []
    # The tables of renamed owners first: a name they leave may be taken by a new model's table.
    for join in sorted(joins, key=lambda j: (j.owner not in inverse, j.table)):
        if join.table not in b.tables:
            continue
        renamed_owner = a.tables.get(inverse.get(join.owner, ""))
        old = inverse.get(join.table) or (join.name_for(renamed_owner.name) if renamed_owner else join.table)
        if old not in a.tables or renames.tables.get(old, join.table) != join.table:
            continue  # a new table, or its old name taken by another rename
        if old != join.table and old not in renames.tables:
            if join.table in a.tables:
                continue  # a rename onto a table A still has: left to the diff (and check_renames)
            renames.add_table(old, join.table)
            inverse[join.table] = old
        pairs.append((a.tables[old], b.tables[join.table]))
    for old_t, new_t in pairs:
        declared = renames.columns.get(new_t.key, {})
        old_refs = _columns_by_reference(old_t, renames.tables)
        for ref, new_cols in _columns_by_reference(new_t, {}).items():
            old_cols = old_refs.get(ref, [])
            if len(old_cols) != len(new_cols):
                continue
            for o, n in zip(old_cols, new_cols):
                if (o != n and o not in declared and n not in declared.values() and n not in old_t.columns
                        and o not in new_t.columns):
                    renames.add_column(new_t.key, o, n)


def _shape(table: Table) -> list[tuple[str, Column]]:
    return sorted(table.columns.items(), key=lambda kv: kv[0])


def rename_candidates(a: Schema, b: Schema, renames: Renames) -> list[RenameCandidate]:
    """Plausible renames not yet decided (`candidates`), of the diff of `a` and `b` under `renames`."""
    return candidates(diff_schemas(a, b, renames))


def candidates(changes: list[TableChange]) -> list[RenameCandidate]:
    """Plausible renames not yet decided, read from the diff's own changes: a dropped and a created
    table with the same columns, a dropped and an added column with the same definition (evidence,
    not names). Columns compare by definition (Column's equality leaves the name out)."""
    out: list[RenameCandidate] = []
    created = [c.new for c in changes if c.kind == "create" and c.new]
    for gone in (c.old for c in changes if c.kind == "drop" and c.old):
        out += [RenameCandidate("table", t.name, gone.name, t.name) for t in created if _shape(t) == _shape(gone)]
    for ch in changes:
        if ch.kind != "alter" or ch.new is None:
            continue
        added = [op.column for op in of_type(ch.ops, AddColumn)]
        for dropped in of_type(ch.ops, DropColumn):
            out += [RenameCandidate("column", ch.new.name, dropped.column.name, col.name)
                    for col in added if col == dropped.column]
    return out
