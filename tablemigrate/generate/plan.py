"""A table's typed changes -> the steps of `up` and `down`. Pure: no connections, no files.

The diff (diff.py) has already said what changes (changes.py); the planner only decides how SQLite
makes it (`path`): native `ALTER TABLE` (RENAME TABLE, RENAME/ADD/DROP COLUMN) when SQLite can make
exactly the change, else a `RebuildTable` (the 12-step procedure, in operations.py). `down` is planned
from the reversed changes (new -> old), so each direction picks its own path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

from tablemigrate.history.loader import Step
from tablemigrate.operations import AlterTableInPlace, FillColumn, RebuildTable
from tablemigrate.project.build import RuntimeValue
from tablemigrate.sqlite import changes, ddl, sqltext
from tablemigrate.sqlite.changes import (
    AddColumn,
    AddConstraint,
    AddIndex,
    AlterColumn,
    Change,
    DropColumn,
    DropConstraint,
    DropIndex,
    RenameColumn,
    RenameTable,
    of_type,
)
from tablemigrate.sqlite.diff import TableChange, column_sources, rename_order
from tablemigrate.sqlite.schema import Check, Column, ForeignKey, Table, affinity
from tablemigrate.sqlite.sqltext import quote

Value = Union[str, RuntimeValue]  # an SQL literal computed at generate time, or a RuntimeValue
# (table lower, column lower) -> value for existing rows
Values = dict[tuple[str, str], Value]


@dataclass
class PlannedMigration:
    kind: str  # create | alter | drop
    table: str
    up: list[Step]
    down: list[Step]
    destructive: list[str] = field(default_factory=list)
    down_destructive: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    old_table: str | None = None
    # The table's shape just before `up` and just after it (shapes.py), once generate has verified the
    # module: what the module will expect to find.
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    noun: str = "table"  # what `table` names: "view" and "virtual table" in baseline's modules too
    adoption_point: list[tuple[str, str]] | None = None  # baseline's last module: loader.Migration's
    # The models this module renames, (app label, old model name, new model name), as their content
    # types name them: recorded in the module (`model_renames`) for `run` and `revert`.
    model_renames: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def verb(self) -> str:
        if self.kind == "alter" and self.old_table and self.old_table.lower() != self.table.lower():
            return "rename"
        return {"create": "create", "alter": "update", "drop": "drop"}[self.kind]


def zero_literal(col: Column) -> str:
    return {"INTEGER": "0", "REAL": "0.0", "NUMERIC": "0", "TEXT": "''", "BLOB": "X''"}[affinity(col.type)]


def unique_column(table: Table, key: str) -> bool:
    """Whether column `key` is in `table`'s primary key, a UNIQUE constraint or the key of a unique index
    (an expression key that reads it too, partial or not): where one value in every row would fail, so a
    value computed at run time is computed for each row (`FillColumn(per_row=True)`). A column that only
    a partial index's WHERE reads is not: it decides which rows are indexed, not what must differ."""
    return (key in table.primary_key
            or any(key in [sqltext.unquote(x).lower() for x in u.columns] for u in table.uniques)
            or any(i.unique and _in_index_key(i.sql, key) for i in table.indexes.values()))


def _in_index_key(sql: str, key: str) -> bool:
    """Whether a key term of CREATE INDEX text `sql` reads column `key` (the whole text when the reader
    cannot tell its terms apart: per row is never wrong, only slower)."""
    index = ddl.read_index(sql)
    if index is None or index.terms is None:
        return sqltext.mentions(sql, key)
    return any(sqltext.mentions(" ".join(t.text for t in term), key) for term in index.terms)


def _filled_by_copy(table: Table, key: str) -> bool:
    """Whether a rebuild's copy computes new column `key`'s value for each row (`RebuildTable(fill=...)`):
    a NOT NULL column that is filled per row. A stand-in value copied first and replaced by a
    `FillColumn` after the rebuild would have to satisfy the column's UNIQUE, CHECK and every other rule
    in every row, which no stand-in can promise."""
    return table.columns[key].notnull and unique_column(table, key)


def _is_constant(default: str | None) -> bool:
    if default is None:
        return True
    tokens = sqltext.tokenize(default)
    if len(tokens) == 2 and tokens[0].text in "+-":
        tokens = tokens[1:]
    return len(tokens) == 1 and (tokens[0].kind in ("number", "string", "blob")
                                 or tokens[0].keyword() in ("null", "true", "false"))


def describe_value(value: Value, per_row: bool = False) -> str:
    if isinstance(value, RuntimeValue):
        return FillColumn("", "", value.field, per_row=per_row).describe()
    return value


def _added_columns(changes: list[TableChange], notnull: bool) -> list[tuple[str, str]]:
    """(table, column) of the columns the changes add, NOT NULL or nullable, with no SQL default."""
    return [(ch.table.name, op.column.name) for ch in changes for op in of_type(ch.ops, AddColumn)
            if ch.kind == "alter" and op.column.notnull == notnull and op.column.default is None
            and not op.column.generated]


def added_nullable_columns(changes: list[TableChange]) -> list[tuple[str, str]]:
    """(table, column) of added nullable columns with no SQL default: Django's AddField still gives
    existing rows the field's effective default when it has one (a BooleanField(null=True,
    default=True) matches `filter(flag=True)` on old rows too)."""
    return _added_columns(changes, notnull=False)


def needed_values(changes: list[TableChange]) -> list[tuple[str, str]]:
    """(table, column) of added NOT NULL columns with no SQL default: existing rows need a value."""
    return _added_columns(changes, notnull=True)


def made_not_null(changes: list[TableChange]) -> list[tuple[Table, Column]]:
    """(table, column) of the columns that stay and become NOT NULL (existing NULLs need a value)."""
    return [(ch.table, op.new) for ch in changes for op in of_type(ch.ops, AlterColumn)
            if op.new.notnull and not op.old.notnull and not op.new.generated]


@dataclass
class _Transition:
    steps: list[Step]
    destructive: list[str]
    summary: list[str]


NATIVE, IN_PLACE, REBUILD = "native", "in place", "rebuild"


def path(frm: Table, to: Table, ops: tuple[Change, ...], values: dict[str, Value]) -> str:
    """How SQLite makes `ops` (frm -> to): NATIVE when `ALTER TABLE` (RENAME TABLE, RENAME/ADD/DROP
    COLUMN) and CREATE/DROP INDEX make exactly these changes, REBUILD otherwise."""
    drop_indexes = [op.index for op in of_type(ops, DropIndex)]
    fk_cols = {col for fk in to.foreign_keys for col in fk.columns}

    def can_add(c: Column) -> bool:
        null_default = c.default is None or c.default == "null"
        return (not c.pk and c.generated_kind != "stored" and _is_constant(c.default)
                and not (c.notnull and null_default) and not (c.key in fk_cols and not null_default)
                and not isinstance(values.get(c.key), str))  # a constant goes into the rebuild's copy

    def can_drop(c: Column) -> bool:
        k = c.key
        others = [oc.generated for ok, oc in frm.columns.items() if ok != k and oc.generated]
        return (not c.pk and not any(k in [sqltext.unquote(x).lower() for x in u.columns] for u in frm.uniques)
                and not any(sqltext.mentions(i.sql, k) for i in frm.indexes.values() if i not in drop_indexes)
                and not any(k in fk.columns and not fk.inline for fk in frm.foreign_keys)
                and not any(sqltext.mentions(g, k) for g in others if g))

    def native(op: Change) -> bool:
        if isinstance(op, (RenameTable, RenameColumn, AddIndex, DropIndex)):
            return True
        if isinstance(op, AddColumn):
            return can_add(op.column)
        if isinstance(op, DropColumn):
            return can_drop(op.column)
        if isinstance(op, AddConstraint):  # carried by its added column's definition
            return op.column is not None
        if isinstance(op, DropConstraint):  # goes with its dropped column (a CHECK: SQLite refuses)
            return op.column is not None and isinstance(op.constraint, ForeignKey)
        return False  # AlterColumn, AlterTable: SQLite has no ALTER for these

    if all(native(op) for op in ops):
        return NATIVE
    return IN_PLACE if _in_place(frm, to, ops) else REBUILD


def _in_place(frm: Table, to: Table, ops: tuple[Change, ...]) -> bool:
    """Whether the stored CREATE text can simply be replaced (operations.AlterTableInPlace): no stored
    record moves or reads differently. Every change is a column outside the primary key (a column
    declared exactly `INTEGER PRIMARY KEY` is the rowid, stored in no record: any other type would make
    it a column of its own, NULL in every row) keeping its place, affinity, collation, default and
    generated expression while it changes its declared type or gains or drops NOT NULL, a CHECK or
    foreign key added or dropped, or an index added or dropped. A default is left out: a column added
    by ADD COLUMN reads its default from the schema in rows written before it existed; so is a UNIQUE
    constraint (SQLite keeps it in a hidden index). What is added is proved on the rows at run time
    (`tightens`); existing NULLs of a column made NOT NULL first take their value by an UPDATE."""
    if list(frm.columns) != list(to.columns) or frm.strict or to.strict:
        return False
    changed = False
    for op in ops:
        if isinstance(op, AlterColumn):
            old, new = op.old, op.new
            if (old.pk or new.pk  # `INTEGER PRIMARY KEY` is the rowid itself; `bigint PRIMARY KEY` is not
                    or affinity(old.type) != affinity(new.type) or old.collation != new.collation
                    or old.default != new.default or (old.generated, old.generated_kind)
                    != (new.generated, new.generated_kind)):
                return False
            changed = True
        elif isinstance(op, (DropConstraint, AddConstraint)) and op.column is None and isinstance(
                op.constraint, (Check, ForeignKey)):
            changed = True
        elif not isinstance(op, (AddIndex, DropIndex)):
            return False
    return changed


def tightens(ops: tuple[Change, ...]) -> bool:
    """Whether the changes add a rule the rows must satisfy (NOT NULL, CHECK, foreign key)."""
    return any((isinstance(op, AlterColumn) and op.new.notnull and not op.old.notnull)
               or isinstance(op, AddConstraint) for op in ops)


def _transition(frm: Table, to: Table, ops: tuple[Change, ...], values: dict[str, Value]) -> _Transition:
    """Steps that make `ops`, turning table `frm` into `to`; `values`: `to` column (lower) -> value for
    existing rows (a literal, or a RuntimeValue computed at run time). Steps follow the tables' column
    and index order, so `up` and `down` (from the reversed changes) read alike."""
    t = to.name
    renames = {op.old.lower(): op.new.lower() for op in of_type(ops, RenameColumn)}
    source = column_sources(frm, to, renames)
    added = {op.column.key for op in of_type(ops, AddColumn)}
    dropped = {op.column.key for op in of_type(ops, DropColumn)}
    altered = {op.new.key: op for op in of_type(ops, AlterColumn)}
    drop_keys = {op.index.name.lower() for op in of_type(ops, DropIndex)}
    add_keys = {op.index.name.lower() for op in of_type(ops, AddIndex)}
    drop_indexes = [i for k, i in frm.indexes.items() if k in drop_keys]
    create_indexes = [i for k, i in to.indexes.items() if k in add_keys]
    way = path(frm, to, ops, values)
    rebuild = way != NATIVE

    destructive = [line for k in frm.columns if k in dropped for line in DropColumn(frm.columns[k]).destructive(t)]
    destructive += [line for k in source if k in altered for line in altered[k].destructive(t)]
    summary = []
    for op in ops:
        if isinstance(op, AddColumn) and op.column.key in values:
            shown = describe_value(values[op.column.key], unique_column(to, op.column.key))
            summary.append(f"{op.describe()} (existing rows: {shown})")
        elif not isinstance(op, AddIndex) and op.describe():
            summary.append(op.describe())
    if way == IN_PLACE:
        summary.append("change the table's definition in place (no row is copied)")
    elif rebuild:
        summary.append("rebuild table (SQLite cannot ALTER this change)")
    summary += [op.describe() for op in of_type(ops, AddIndex)]

    steps: list[Step] = [f"DROP INDEX {quote(i.name)}" for i in drop_indexes]
    if frm.key != to.key:
        steps.append(f"ALTER TABLE {quote(frm.name)} RENAME TO {quote(to.name)}")
    renamed = rename_order(t, {o: n for n, o in source.items() if n != o})
    steps += [f"ALTER TABLE {quote(t)} RENAME COLUMN {quote(frm.columns[o].name)} TO {quote(to.columns[n].name)}"
              for o, n in renamed]
    # Values computed when the migration runs: after the column exists (added columns), or before the
    # rebuild makes it NOT NULL (existing NULLs), as Django's AddField / AlterField compute them then.
    # A rebuild computes a NOT NULL column's value for each row in its copy itself (`fill`).
    fill_after = [FillColumn(t, to.columns[k].name, v.field, per_row=unique_column(to, k)) for k, v in values.items()
                  if isinstance(v, RuntimeValue) and k in added
                  and not (rebuild and _filled_by_copy(to, k))]
    if not rebuild:
        steps += [f"ALTER TABLE {quote(t)} DROP COLUMN {quote(c.name)}" for k, c in frm.columns.items() if k in dropped]
        steps += [f"ALTER TABLE {quote(t)} ADD COLUMN {c.definition}" for k, c in to.columns.items() if k in added]
    elif source or added or dropped:
        steps += _rebuild(frm, to, source, values, destructive, in_place=way == IN_PLACE,
                          check=way == IN_PLACE and tightens(ops))
    steps += fill_after
    steps += [i.raw for i in create_indexes]
    return _Transition(steps, destructive, summary)


def _rebuild(frm: Table, to: Table, source: dict[str, str], values: dict[str, Value],
             destructive: list[str], in_place: bool = False, check: bool = False) -> list[Step]:
    """The rebuild into `to`'s definition, with what each column copies (`source`: to key -> frm key),
    after the fills of existing NULLs it needs. Appends the NULLs it replaces to `destructive`. In place
    (`in_place`), existing NULLs take their value by an UPDATE first, and `check` proves the rows
    satisfy what the definition adds."""
    t = to.name
    steps: list[Step] = []
    copy: dict[str, str] = {}
    fill: dict[str, Any] = {}
    for key, col in to.columns.items():
        if col.generated:
            continue
        value = values.get(key)
        if key in source:
            expr = quote(col.name)
            if col.notnull and not frm.columns[source[key]].notnull and value is not None:
                if isinstance(value, RuntimeValue):
                    steps.append(FillColumn(t, col.name, value.field, only_null=True, per_row=unique_column(to, key)))
                else:
                    expr = f"COALESCE({expr}, {value})"  # the copy, where the change is rebuilt after all
                    if in_place:
                        steps.append(f"UPDATE {quote(t)} SET {quote(col.name)} = {value} "
                                     f"WHERE {quote(col.name)} IS NULL")
                destructive.append(f"NULLs in {t}.{col.name} become {describe_value(value, unique_column(to, key))}")
            copy[col.name] = expr
        elif isinstance(value, str):
            copy[col.name] = value
        elif isinstance(value, RuntimeValue) and _filled_by_copy(to, key):
            fill[col.name] = value.field  # each row's own value, computed as the row is copied
        elif isinstance(value, RuntimeValue) and col.notnull:  # replaced by the FillColumn that follows
            copy[col.name] = value.placeholder
    create = sqltext.pretty_create_table(to.sql)
    steps.append(AlterTableInPlace(t, create, copy, check=check, fill=fill) if in_place
                 else RebuildTable(t, create, copy, fill=fill))
    return steps


def _create_steps(table: Table) -> list[Step]:
    steps: list[Step] = [sqltext.pretty_create_table(table.sql)]
    return steps + [i.raw for i in table.indexes.values()]


def values_for_down(old: Table, undo: tuple[Change, ...]) -> dict[str, Value]:
    """Rows that reach `down` need values for the NOT NULL columns it brings back (their data is gone)
    or makes NOT NULL again: the type's zero."""
    restored = {op.column.key for op in of_type(undo, AddColumn)}
    loosened = {op.new.key for op in of_type(undo, AlterColumn) if not op.old.notnull}
    return {k: zero_literal(c) for k, c in old.columns.items()
            if c.notnull and not c.generated and ((k in restored and c.default is None) or k in loosened)}


def plan_change(change: TableChange, values: Values) -> PlannedMigration:
    """`up` from the change's typed changes, `down` from their reverse."""
    if change.kind in ("create", "drop"):
        table = change.table
        create: list[Step] = _create_steps(table)
        drop: list[Step] = [f"DROP TABLE {quote(table.name)}"]
        forward, backward = (create, drop) if change.kind == "create" else (drop, create)
        undo = changes.reverse_all(change.ops)
        return PlannedMigration(change.kind, table.name, forward, backward,
                                destructive=[d for op in change.ops for d in op.destructive(table.name)],
                                down_destructive=[d for op in undo for d in op.destructive(table.name)],
                                summary=changes.summary(change.ops))
    old, new = change.old, change.new
    assert old is not None and new is not None
    up_values = {c: v for (tb, c), v in values.items() if tb == new.key}
    up = _transition(old, new, change.ops, up_values)
    undo = changes.reverse_all(change.ops)
    down_values = values_for_down(old, undo)
    restored = {op.column.key for op in of_type(undo, AddColumn)}
    down = _transition(new, old, undo, down_values)
    for k, lit in down_values.items():
        if k in restored:
            down.destructive.append(
                f"restores column {old.name}.{old.columns[k].name} as {lit} in every row (up dropped its "
                "values); this fails if a constraint rejects that value: restore a backup instead")
    return PlannedMigration("alter", new.name, up.steps, down.steps, up.destructive, down.destructive,
                            up.summary, old_table=old.name)


def _topological(tables: list[Table]) -> list[Table]:
    """Tables ordered so that a table comes after the tables it references (cycles: by name)."""
    by_key = {t.key: t for t in tables}
    done: list[Table] = []
    seen: set[str] = set()

    def visit(t: Table, stack: set[str]) -> None:
        if t.key in seen or t.key in stack:
            return
        stack.add(t.key)
        for fk in sorted(t.foreign_keys, key=lambda f: f.ref_table):
            if fk.ref_table in by_key:
                visit(by_key[fk.ref_table], stack)
        seen.add(t.key)
        done.append(t)

    for t in sorted(tables, key=lambda t: t.key):
        visit(t, set())
    return done


def plan_changes(changes: list[TableChange], values: Values) -> list[PlannedMigration]:
    """Plans in apply order: table renames, creates (referenced tables first), other alters, drops
    (referencing tables first)."""
    creates = _topological([c.new for c in changes if c.kind == "create" and c.new])
    drops = list(reversed(_topological([c.old for c in changes if c.kind == "drop" and c.old])))
    alters = sorted((c for c in changes if c.kind == "alter"), key=lambda c: (not c.renamed, c.table.key))
    by_create = {c.new.key: c for c in changes if c.kind == "create" and c.new}
    by_drop = {c.old.key: c for c in changes if c.kind == "drop" and c.old}
    ordered = ([c for c in alters if c.renamed] + [by_create[t.key] for t in creates]
               + [c for c in alters if not c.renamed] + [by_drop[t.key] for t in drops])
    plans = [plan_change(c, values) for c in ordered]
    _name_parents_as_they_are_then(ordered, plans)
    return [p for p in plans if p.up or p.down]


def _name_parents_as_they_are_then(ordered: list[TableChange], plans: list[PlannedMigration]) -> None:
    """A foreign key written by a migration must name its parent table as it is *when that migration
    runs*: in `up`, a parent renamed by a later migration still has its old name; in `down` (run in
    reverse), a parent renamed by an earlier migration still has its new name. SQLite's own RENAME
    then rewrites the reference when the parent's rename runs or is undone."""
    renamed = [(i, c.old, c.new) for i, c in enumerate(ordered) if c.renamed and c.old and c.new]
    for i, plan in enumerate(plans):
        up = {new.key: old.name for j, old, new in renamed if j > i}
        down = {old.key: new.name for j, old, new in renamed if j < i}
        plan.up = [_rename_parents(step, up) for step in plan.up]
        plan.down = [_rename_parents(step, down) for step in plan.down]


def _rename_parents(step: Step, mapping: dict[str, str]) -> Step:
    if not mapping:
        return step
    if isinstance(step, RebuildTable):  # or AlterTableInPlace: the same operation, every argument kept
        return step.replaced(create=sqltext.rename_references(step.create, mapping))
    if isinstance(step, str):
        return sqltext.rename_references(step, mapping)
    return step
