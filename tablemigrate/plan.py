"""A table change -> the steps of `up` and `down`. Pure: no connections, no files.

Native `ALTER TABLE` (RENAME TABLE, RENAME/ADD/DROP COLUMN) is used when SQLite can make exactly the
change; everything else becomes a `RebuildTable` (the 12-step procedure, in operations.py). `up` and
`down` are planned independently (old -> new, new -> old), so each direction picks its own method.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Union

from . import sqltext
from .diff import TableChange
from .loader import Step
from .operations import FillColumn, RebuildTable
from .schema import Column, ForeignKey, Table, Unique
from .sqltext import quote


@dataclass(frozen=True)
class RuntimeValue:
    """A value for existing rows that Django computes anew each time (a callable default, auto_now):
    the migration computes it when it runs (`FillColumn`). `placeholder` is the value computed at
    generate time; it only fills a NOT NULL column while the table is rebuilt, and is replaced."""

    field: Any  # an unbound Django field carrying the default
    placeholder: str


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

    @property
    def verb(self) -> str:
        if self.kind == "alter" and self.old_table and self.old_table.lower() != self.table.lower():
            return "rename"
        return {"create": "create", "alter": "update", "drop": "drop"}[self.kind]


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


def zero_literal(col: Column) -> str:
    return {"INTEGER": "0", "REAL": "0.0", "NUMERIC": "0", "TEXT": "''", "BLOB": "X''"}[affinity(col.type)]


def _is_constant(default: str | None) -> bool:
    if default is None:
        return True
    tokens = sqltext.tokenize(default)
    if len(tokens) == 2 and tokens[0].text in "+-":
        tokens = tokens[1:]
    return len(tokens) == 1 and (tokens[0].kind in ("number", "string", "blob")
                                 or tokens[0].keyword() in ("null", "true", "false"))


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


def display_type(declared: str) -> str:
    """A normalised declared type as people write it: `varchar(100)`, `decimal(10, 2)`."""
    return sqltext.compact_type(declared) or "(no type)"


def describe_value(value: Value) -> str:
    if isinstance(value, RuntimeValue):
        return FillColumn("", "", value.field).describe()
    return value


def column_change(old: Column, new: Column) -> str:
    """What changed in a column, in a few words (`varchar(100) → varchar(150), NOT NULL added`)."""
    parts = []
    if old.type != new.type:
        parts.append(f"{display_type(old.type)} → {display_type(new.type)}")
    if old.notnull != new.notnull:
        parts.append("NOT NULL added" if new.notnull else "NOT NULL dropped")
    if old.default != new.default:
        parts.append(f"default {old.default or 'none'} → {new.default or 'none'}")
    if old.collation != new.collation:
        parts.append(f"collation {old.collation or 'none'} → {new.collation or 'none'}")
    if bool(old.pk) != bool(new.pk) or (old.pk and old.pk != new.pk):
        parts.append("primary key added" if new.pk and not old.pk else
                     "primary key dropped" if old.pk and not new.pk else "primary key order changed")
    if (old.generated, old.generated_kind) != (new.generated, new.generated_kind):
        parts.append(f"generated {old.generated_kind or 'no'} ({old.generated or '-'}) → "
                     f"{new.generated_kind or 'no'} ({new.generated or '-'})")
    return ", ".join(parts) or "definition"


def _added_columns(changes: list[TableChange], notnull: bool) -> list[tuple[str, str]]:
    """(table, column) of the columns the changes add, NOT NULL or nullable, with no SQL default."""
    out = []
    for ch in changes:
        if ch.kind != "alter":
            continue
        assert ch.old is not None and ch.new is not None
        sources = column_sources(ch.old, ch.new, ch.column_renames)
        for key, col in ch.new.columns.items():
            if key not in sources and col.notnull == notnull and col.default is None and not col.generated:
                out.append((ch.new.name, col.name))
    return out


def added_nullable_columns(changes: list[TableChange]) -> list[tuple[str, str]]:
    """(table, column) of added nullable columns with no SQL default: Django's AddField still gives
    existing rows the field's effective default when it has one (a BooleanField(null=True,
    default=True) matches `filter(flag=True)` on old rows too)."""
    return _added_columns(changes, notnull=False)


def needed_values(changes: list[TableChange]) -> list[tuple[str, str]]:
    """(table, column) of added NOT NULL columns with no SQL default: existing rows need a value."""
    return _added_columns(changes, notnull=True)


@dataclass
class _Transition:
    steps: list[Step]
    destructive: list[str]
    summary: list[str]


@dataclass
class _Context:
    table_renames: dict[str, str]  # old lower -> new lower, all tables
    column_renames: dict[str, dict[str, str]]  # old table lower -> {old col: new col}


def _rename_fk(fk: ForeignKey, own: dict[str, str], ctx: _Context, self_key: str) -> ForeignKey:
    ref_cols = ctx.column_renames.get(fk.ref_table, own if fk.ref_table == self_key else {})
    return dataclasses.replace(
        fk,
        columns=tuple(own.get(c, c) for c in fk.columns),
        ref_table=ctx.table_renames.get(fk.ref_table, fk.ref_table),
        ref_columns=tuple(ref_cols.get(c, c) for c in fk.ref_columns),
    )


def _transition(old: Table, new: Table, renames: dict[str, str], values: dict[str, Value],
                ctx: _Context) -> _Transition:
    """Steps that turn table `old` into `new`. `renames`: old col -> new col (lower); `values`:
    new col (lower) -> value for existing rows (a literal, or a RuntimeValue computed at run time)."""
    t = new.name
    source = column_sources(old, new, renames)
    added = [k for k in new.columns if k not in source]
    dropped = [k for k in old.columns if k not in source.values()]
    col_map = {o: n for n, o in source.items() if n != o}  # old key -> new key
    mapped = {o: new.columns[n].name for o, n in col_map.items()}
    mapped.update(ctx.table_renames)

    def ren(norm: str) -> str:
        return sqltext.rename_identifiers(norm, mapped)

    destructive: list[str] = []
    summary: list[str] = []
    steps: list[Step] = []

    old_index_sql = {k: ren(i.sql) for k, i in old.indexes.items()}
    new_index_sql = {i.sql for i in new.indexes.values()}
    drop_indexes = [i for k, i in old.indexes.items() if old_index_sql[k] not in new_index_sql]
    kept_sql = {s for s in old_index_sql.values() if s in new_index_sql}
    create_indexes = [i for i in new.indexes.values() if i.sql not in kept_sql]

    renamed_columns = {old.columns[o].name: new.columns[n].name for o, n in col_map.items()}
    for k in dropped:
        destructive.append(f"drops column {t}.{old.columns[k].name} and the values in it")
        summary.append(f"drop column {old.columns[k].name}")
    for k in added:
        filled = f" (existing rows: {describe_value(values[k])})" if k in values else ""
        summary.append(f"add column {new.columns[k].name}{filled}")
    for a, b in renamed_columns.items():
        summary.append(f"rename column {a} to {b}")

    # Compare what stays, with the renames applied to the old side.
    changed_columns = []
    for n, o in source.items():
        oc, nc = old.columns[o], new.columns[n]
        if dataclasses.replace(oc, generated=ren(oc.generated) if oc.generated else None) != nc:
            changed_columns.append((oc, nc))
    old_uniques = {Unique(tuple(ren(c) for c in u.columns), u.name) for u in old.uniques}
    old_checks = {dataclasses.replace(c, expr=ren(c.expr)) for c in old.checks}
    added_set = set(added)
    new_checks_native = {c for c in new.checks if not (c.column in added_set)}
    old_fks = {_rename_fk(fk, col_map, ctx, old.key) for fk in old.foreign_keys
               if not (fk.inline and set(fk.columns) <= set(dropped))}
    new_fks = {fk for fk in new.foreign_keys if not (fk.inline and set(fk.columns) <= added_set)}
    same_table_facts = (
        tuple(col_map.get(c, c) for c in old.primary_key) == new.primary_key
        and old.autoincrement == new.autoincrement and old.strict == new.strict
        and old.without_rowid == new.without_rowid and old_uniques == set(new.uniques)
        and old_checks == new_checks_native and old_fks == new_fks
    )
    if old_uniques != set(new.uniques) or old_checks != set(new.checks) or old_fks != new_fks:
        summary.append("change table constraints")

    def can_add(k: str) -> bool:
        c = new.columns[k]
        fk_cols = {col for fk in new.foreign_keys for col in fk.columns}
        null_default = c.default is None or c.default == "null"
        return (not c.pk and c.generated_kind != "stored" and _is_constant(c.default)
                and not (c.notnull and null_default) and not (k in fk_cols and not null_default)
                and not isinstance(values.get(k), str))  # a constant goes into the rebuild's copy

    def can_drop(k: str) -> bool:
        c = old.columns[k]
        others = [oc.generated for ok, oc in old.columns.items() if ok != k and oc.generated]
        return (not c.pk and not any(k in [sqltext.unquote(x).lower() for x in u.columns] for u in old.uniques)
                and not any(sqltext.mentions(i.sql, k) for i in old.indexes.values() if i not in drop_indexes)
                and not any(k in fk.columns and not fk.inline for fk in old.foreign_keys)
                and not any(sqltext.mentions(g, k) for g in others if g))

    native = (same_table_facts and not changed_columns and all(can_add(k) for k in added)
              and all(can_drop(k) for k in dropped))

    for oc, nc in changed_columns:
        summary.append(f"alter column {nc.name}: {column_change(oc, nc)}")
        if affinity(oc.type) != affinity(nc.type) and affinity(nc.type) in ("INTEGER", "REAL", "NUMERIC"):
            destructive.append(f"changes the type of {t}.{nc.name} from {oc.type or 'none'} to {nc.type}: "
                               "values that do not convert are stored as they are or lose precision")

    steps += [f"DROP INDEX {quote(i.name)}" for i in drop_indexes]
    summary += [f"drop index {i.name}" for i in drop_indexes]
    if old.key != new.key:
        steps.append(f"ALTER TABLE {quote(old.name)} RENAME TO {quote(new.name)}")
    steps += [f"ALTER TABLE {quote(t)} RENAME COLUMN {quote(a)} TO {quote(b)}" for a, b in renamed_columns.items()]
    # Values computed when the migration runs: after the column exists (added columns), or before the
    # rebuild makes it NOT NULL (existing NULLs), as Django's AddField / AlterField compute them then.
    fill_after = [FillColumn(t, new.columns[k].name, v.field) for k, v in values.items()
                  if isinstance(v, RuntimeValue) and k in added]
    if native:
        steps += [f"ALTER TABLE {quote(t)} DROP COLUMN {quote(old.columns[k].name)}" for k in dropped]
        steps += [f"ALTER TABLE {quote(t)} ADD COLUMN {new.columns[k].definition}" for k in added]
    elif source or added or dropped:
        copy: dict[str, str] = {}
        for key, col in new.columns.items():
            if col.generated:
                continue
            value = values.get(key)
            if key in source:
                expr = quote(col.name)
                if col.notnull and not old.columns[source[key]].notnull and value is not None:
                    if isinstance(value, RuntimeValue):
                        steps.append(FillColumn(t, col.name, value.field, only_null=True))
                    else:
                        expr = f"COALESCE({expr}, {value})"
                    destructive.append(f"NULLs in {t}.{col.name} become {describe_value(value)}")
                copy[col.name] = expr
            elif isinstance(value, str):
                copy[col.name] = value
            elif isinstance(value, RuntimeValue) and col.notnull:
                copy[col.name] = value.placeholder  # replaced by the FillColumn that follows
        steps.append(RebuildTable(t, sqltext.pretty_create_table(new.sql), copy))
        summary.append("rebuild table (SQLite cannot ALTER this change)")
    steps += fill_after
    steps += [i.raw for i in create_indexes]
    summary += [f"add index {i.name}" for i in create_indexes]
    return _Transition(steps, destructive, summary)


def _create_steps(table: Table) -> list[Step]:
    steps: list[Step] = [sqltext.pretty_create_table(table.sql)]
    return steps + [i.raw for i in table.indexes.values()]


def plan_change(change: TableChange, values: Values, ctx: _Context, inverse_ctx: _Context) -> PlannedMigration:
    if change.kind == "create":
        t = change.new
        assert t is not None
        return PlannedMigration("create", t.name, _create_steps(t), [f"DROP TABLE {quote(t.name)}"],
                                down_destructive=[f"drops table {t.name} and all its rows"],
                                summary=[f"create table {t.name}"])
    if change.kind == "drop":
        t = change.old
        assert t is not None
        return PlannedMigration("drop", t.name, [f"DROP TABLE {quote(t.name)}"], _create_steps(t),
                                destructive=[f"drops table {t.name} and all its rows"],
                                summary=[f"drop table {t.name}"])
    old, new = change.old, change.new
    assert old is not None and new is not None
    up_values = {c: v for (tb, c), v in values.items() if tb == new.key}
    up = _transition(old, new, change.column_renames, up_values, ctx)
    inverse = {n: o for o, n in change.column_renames.items()}
    # Rows that reach `down` need values for NOT NULL columns it brings back (their data is gone).
    down_sources = column_sources(new, old, inverse)
    down_values: dict[str, Value] = {k: zero_literal(c) for k, c in old.columns.items()
                   if c.notnull and not c.generated
                   and ((k not in down_sources and c.default is None)
                        or (k in down_sources and not new.columns[down_sources[k]].notnull))}
    down = _transition(new, old, inverse, down_values, inverse_ctx)
    for k, lit in down_values.items():
        if k not in down_sources:
            down.destructive.append(
                f"restores column {old.name}.{old.columns[k].name} as {lit} in every row (up dropped its "
                "values); this fails if a constraint rejects that value: restore a backup instead")
    summary = ([f"rename table {old.name} to {new.name}"] if old.key != new.key else []) + up.summary
    return PlannedMigration("alter", new.name, up.steps, down.steps, up.destructive, down.destructive,
                            summary, old_table=old.name)


def _contexts(changes: list[TableChange]) -> tuple[_Context, _Context]:
    table_renames = {c.old.key: c.new.key for c in changes if c.renamed and c.old and c.new}
    col_renames = {c.old.key: dict(c.column_renames) for c in changes if c.column_renames and c.old}
    inv_cols = {c.new.key: {n: o for o, n in c.column_renames.items()}
                for c in changes if c.column_renames and c.new}
    return (_Context(table_renames, col_renames),
            _Context({n: o for o, n in table_renames.items()}, inv_cols))


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
    ctx, inverse_ctx = _contexts(changes)
    creates = _topological([c.new for c in changes if c.kind == "create" and c.new])
    drops = list(reversed(_topological([c.old for c in changes if c.kind == "drop" and c.old])))
    alters = sorted((c for c in changes if c.kind == "alter"), key=lambda c: (not c.renamed, c.table.key))
    by_create = {c.new.key: c for c in changes if c.kind == "create" and c.new}
    by_drop = {c.old.key: c for c in changes if c.kind == "drop" and c.old}
    ordered = ([c for c in alters if c.renamed] + [by_create[t.key] for t in creates]
               + [c for c in alters if not c.renamed] + [by_drop[t.key] for t in drops])
    plans = [plan_change(c, values, ctx, inverse_ctx) for c in ordered]
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
    if isinstance(step, RebuildTable):
        return RebuildTable(step.table, sqltext.rename_references(step.create, mapping), step.copy)
    if isinstance(step, str):
        return sqltext.rename_references(step, mapping)
    return step
