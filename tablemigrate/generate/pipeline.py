"""`generate`: database A (history) vs database B (models) -> one module per changed table.

Before anything is written, the new modules are applied to database A and must reproduce B's schema
exactly; their `down`s, applied in reverse, must return A to where it was. A planner bug therefore
stops `generate` with an error instead of reaching a production database.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType

from django.db import models

from tablemigrate.errors import ConfigurationError, GenerateError, HistoryConflict, MigrationFailed, ShapeMismatch
from tablemigrate.history import schemafile
from tablemigrate.history.loader import (
    SNAPSHOT_NAME,
    Migration,
    Recorded,
    checksum,
    history_checksum,
    load_migrations,
    load_source,
    recorded_files,
)
from tablemigrate.history.schemafile import read_header, statement_key
from tablemigrate.history.schemafile import render as render_snapshot
from tablemigrate.project.build import (
    FieldDefaults,
    build_from_models,
    connect,
    model_sql,
    model_sql_digest,
    private_database,
    raw,
)
from tablemigrate.project.fingerprint import models_fingerprint
from tablemigrate.run.apply import Applier
from tablemigrate.run.rehearse import broken_virtual_tables
from tablemigrate.sqlite import cache, shapes
from tablemigrate.sqlite.diff import (
    JoinTable,
    ModelRename,
    RenameCandidate,
    Renames,
    TableChange,
    candidates,
    carry_renames,
    diff_schemas,
)
from tablemigrate.sqlite.introspect import introspect, sql_made_tables
from tablemigrate.sqlite.schema import Schema, Table, table_digest
from tablemigrate.sqlite.sqltext import quote, user_objects

from . import oneoff, partial
from .plan import PlannedMigration, Value, Values, added_nullable_columns, made_not_null, needed_values, plan_changes
from .verify import Shape, verify
from .writer import module_names, render_parts, shape_lines


class Questioner:
    """Answers generate's questions. The default answers every question with 'no'/'no value'. `given`:
    the one-off values given beforehand (`--default`, oneoff.given_values), never asked about."""

    interactive = False
    given: Mapping[tuple[str, str], Value] = MappingProxyType({})

    def confirm(self, question: str) -> bool:
        return False

    def value(self, question: str) -> str | None:
        return None

    def tell(self, message: str) -> None:
        """Say why an answer was not taken, before the question comes again (interactive only)."""


@dataclass
class GeneratedModule:
    name: str
    text: str
    plan: PlannedMigration
    #: What the module breaks that it cannot mend itself (a virtual table naming a table it renames or
    #: drops): `generate` prints each line, and `run` will refuse the module until it is edited.
    warnings: list[str] = field(default_factory=list)


@dataclass
class GenerateResult:
    modules: list[GeneratedModule]
    directory: Path
    render_snapshot: Callable[[], str] = field(repr=False)  # rendered only when written
    #: With no changes: why `schema.sql` on disk does not describe the history and the models (None when
    #: it does). `generate` rewrites it; `generate --check` fails on it.
    stale_snapshot: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.modules)

    @property
    def snapshot(self) -> str:
        return self.render_snapshot()


def join_tables(model_list: Iterable[type[models.Model]]) -> list[JoinTable]:
    """The many-to-many tables Django creates for the models' fields (auto-created through models),
    from the models' metadata, for `carry_renames`. A table named by Django's rule (the owner's table
    and the field's name) follows the owner's table; one the field names (`db_table`) keeps its name.
    A name that is neither (another Django's rule) is left out: nothing is carried for it."""
    from django.db import connection  # the one Django names the tables for

    limit = connection.ops.max_name_length()
    out = []
    for model in model_list:
        for f in model._meta.local_many_to_many:
            through = f.remote_field.through
            if isinstance(through, str) or not through._meta.auto_created:
                continue
            table, owner = through._meta.db_table, model._meta.db_table
            join = JoinTable(table.lower(), owner.lower(), None if f.db_table else f.name, limit)
            if join.name_for(owner) == join.table:
                out.append(join)
    return out


class Diff:
    """The diff of `a` and `b` under `renames` (diff.diff_schemas, which checks the renames), computed
    again only when `renames` changed since: the rename questions, the candidates nobody was asked about
    and the plan all read the one diff."""

    def __init__(self, a: Schema, b: Schema, renames: Renames):
        self.a, self.b, self.renames = a, b, renames
        self._for: tuple | None = None
        self._changes: list[TableChange] = []

    def changes(self) -> list[TableChange]:
        state = (dict(self.renames.tables), {t: dict(c) for t, c in self.renames.columns.items()})
        if state != self._for:
            self._changes, self._for = diff_schemas(self.a, self.b, self.renames), state
        return self._changes

    def candidates(self) -> list[RenameCandidate]:
        return candidates(self.changes())


def _ask_renames(diff: Diff, questioner: Questioner, joins: list[JoinTable]) -> None:
    """Ask about each plausible rename once, tables before columns (a table rename makes its columns
    comparable); the renames that go with the tables' (`carry_renames`) are made before the columns
    are asked about."""
    refused: set = set()
    renames = diff.renames
    for kind in ("table", "column"):
        if kind == "column":
            carry_renames(diff.a, diff.b, renames, joins)
        pending = True
        while pending:
            pending = False
            for cand in diff.candidates():
                if cand.kind != kind or cand in refused:
                    continue
                if not questioner.confirm(cand.question()):
                    refused.add(cand)
                    continue
                if kind == "table":
                    renames.add_table(cand.old, cand.new)
                else:
                    renames.add_column(cand.table, cand.old, cand.new)
                pending = True  # accepting one rename removes other candidates: list them again
                break


def rename_option(cand: RenameCandidate) -> str:
    """The `--rename` option that declares `cand`."""
    if cand.kind == "table":
        return f"--rename {cand.old}:{cand.new}"
    return f"--rename {cand.table}.{cand.old}:{cand.new}"


def _rename_hint(unasked: list[RenameCandidate], table: str, column: str, refs: set[str]) -> str:
    """' If blog_post.body was renamed to content, pass --rename blog_post.body:content.' or ''. A table
    the column references (`refs`, lower-case) that looks renamed comes first: the columns named after
    it follow its rename (a many-to-many table's `item_id` -> `product_id`)."""
    for cand in unasked:
        if cand.kind == "table" and cand.new.lower() in refs:
            return (f" If table {cand.old} was renamed to {cand.new}, pass `{rename_option(cand)}` (its "
                    "many-to-many tables and columns follow).")
    for cand in unasked:
        if cand.kind == "column" and cand.table.lower() == table.lower() and cand.new.lower() == column.lower():
            return f" If {cand.table}.{cand.old} was renamed to {cand.new}, pass `{rename_option(cand)}`."
    return ""


def _references(table: Table, column: str) -> set[str]:
    """The tables `column`'s own foreign keys reference (lower-case)."""
    return {fk.ref_table for fk in table.foreign_keys if fk.columns == (column.lower(),)}


def _hint_renames(plans: list[PlannedMigration], unasked: list[RenameCandidate]) -> None:
    """Drops and adds that look like renames nobody was asked about (--noinput): each one's plan says
    which `--rename` keeps the values, among the reasons the command prints and `run` asks about."""
    for cand in unasked:
        for plan in plans:
            if cand.kind == "column" and plan.kind == "alter" and plan.table.lower() == cand.table.lower():
                plan.destructive.append(
                    f"column {cand.table}.{cand.old} looks renamed to {cand.new} (same definition), but no "
                    f"rename was declared: this drops its values; to keep them, generate with "
                    f"`{rename_option(cand)}`")
            elif cand.kind == "table" and plan.kind == "drop" and plan.table.lower() == cand.old.lower():
                plan.destructive.append(
                    f"table {cand.old} looks renamed to {cand.new} (same columns), but no rename was declared: "
                    f"this drops its rows; to keep them, generate with `{rename_option(cand)}`")


def _changes(a: Schema, b: Schema, renames: Renames, questioner: Questioner,
             model_list: Iterable[type[models.Model]] = ()) -> Diff:
    """The diff of `a` and `b`, after the renames asked for are checked, the plausible ones asked about,
    and those that go with the tables' added (the models' many-to-many tables and their columns)."""
    diff = Diff(a, b, renames)
    try:
        diff.changes()  # checks the renames asked for (diff.check_renames)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    _ask_renames(diff, questioner, join_tables(model_list))
    _renamed_models(renames, questioner, model_list)
    return diff


def _table_models(model_list: Iterable[type[models.Model]]) -> dict[str, type[models.Model]]:
    """The models that have a content type of their own and a table (not a proxy, not a many-to-many
    field's through model), by lower-case table."""
    return {m._meta.db_table.lower(): m for m in model_list if not m._meta.proxy and not m._meta.auto_created}


def _declared_model_tables(renames: Renames, model_list: Iterable[type[models.Model]]) -> None:
    """The table renames that go with the model renames declared by label (`--rename blog.Category:blog.Topic`):
    the old table is Django's default name for the old model when the new one has the default name;
    otherwise the table rename must be declared too (generate cannot know what the old table was)."""
    by_label = {(m._meta.app_label, m._meta.model_name): m for m in _table_models(model_list).values()}
    for (app, new), old in renames.models.items():
        model = by_label.get((app, new))
        spec = f"--rename {app}.{old}:{app}.{new}"
        if model is None:
            raise ConfigurationError(f"{spec}: no model {app}.{new} among the models tablemigrate owns")
        if (app, old) in by_label:
            raise ConfigurationError(f"{spec}: {by_label[app, old]._meta.label} is still a model; a renamed model "
                                     "is gone under its old name")
        table = model._meta.db_table.lower()
        if table in renames.tables.values():
            continue  # its table rename is declared too
        if table != f"{app}_{new}".lower():
            raise ConfigurationError(
                f"{spec}: {model._meta.label}'s table {model._meta.db_table} is not Django's default name, so its "
                f"old table is not known: declare it too (--rename OLDTABLE:{model._meta.db_table}). If the table "
                "kept its name, only the content type changes: write a module with `model_renames` (docs/modules.md)")
        renames.add_table(f"{app}_{old}", table)


def _renamed_models(renames: Renames, questioner: Questioner, model_list: Iterable[type[models.Model]]) -> None:
    """For each renamed table that is a model's, the model it belonged to before (its content type's
    name): declared by label; else read from the old table when that is Django's default name for a
    model of the same app (`blog_category` -> `category`); else asked (interactive); else unknown."""
    models_by_table = _table_models(model_list)
    for old_table, new_table in renames.tables.items():
        model = models_by_table.get(new_table)
        if model is None:
            continue  # a many-to-many table, or another rename the models do not name
        app, new = model._meta.app_label, model._meta.model_name
        old = renames.models.get((app, new))
        prefix = f"{app}_".lower()
        if old is None and old_table.startswith(prefix) and old_table[len(prefix):].isidentifier():
            old = old_table[len(prefix):]
        if old is None and questioner.interactive:
            answer = questioner.value(
                f"Table {old_table} became {new_table}, the table of {model._meta.label}. What was that model's "
                f"name before (for its content type and permissions)? Press Enter if it was {model._meta.object_name}")
            old = (answer or "").strip().lower() or new
            if not old.isidentifier():
                raise ConfigurationError(f"{model._meta.label}'s old name {answer!r} is not a model name (a Python "
                                         "identifier); nothing was written")
        renames.model_tables[new_table] = ModelRename(app, old, new, model._meta.label)


def follow_models(plans: list[PlannedMigration], renames: Renames) -> None:
    """The model renames the modules record (`model_renames`): `run` renames the model's content type in
    the module's transaction, keeping its id, as Django's RenameContentType does after a RenameModel;
    `revert` renames it back. A model whose old name is not known is named in the summary."""
    for plan in plans:
        found = renames.model_tables.get(plan.table.lower()) if plan.verb == "rename" else None
        if found is None or found.old == found.new:
            continue
        if found.old is None:
            plan.summary.append(
                f"content type: if the model of {plan.old_table} was renamed to {found.label}, its content type and "
                f"permissions follow only when declared: generate again with `--rename {found.app_label}.OLDNAME:"
                f"{found.label}`")
            continue
        plan.model_renames.append((found.app_label, found.old, found.new))
        plan.summary.append(f"content type {found.app_label}.{found.old} becomes {found.app_label}.{found.new} (same "
                            "id: its permissions and generic relations follow the model)")


def _one_off(questioner: Questioner, defaults: FieldDefaults, table: str, column: str, question: str,
             used: set[tuple[str, str]]) -> Value | None:
    """The one-off value for `table`.`column`: given (`--default`), else asked until an answer converts
    (oneoff.value_for), or None (no answer)."""
    key = (table.lower(), column.lower())
    if key in questioner.given:
        used.add(key)
        return questioner.given[key]
    while True:
        answer = questioner.value(question)
        if answer is None or not answer.strip():
            return None
        try:
            return oneoff.value_for(defaults.field(table, column), answer.strip(), f"{table}.{column}")
        except ValueError as exc:
            if not questioner.interactive:
                raise GenerateError(str(exc)) from None
            questioner.tell(f"{exc}; try again, or press Enter to stop")


def _values(changes: list[TableChange], defaults: FieldDefaults, questioner: Questioner,
            unasked: list[RenameCandidate]) -> Values:
    values: Values = {}
    used: set[tuple[str, str]] = set()
    tables = {ch.table.key: ch.table for ch in changes}
    for table, column in needed_values(changes):
        value = defaults.value(table, column)
        if value is None:
            value = _one_off(questioner, defaults, table, column,
                             f"Column {table}.{column} is NOT NULL with no default, and existing rows need a value. "
                             f"Enter a one-off value: {oneoff.PYTHON}", used)
        if value is None:
            hint = _rename_hint(unasked, table, column, _references(tables[table.lower()], column))
            raise GenerateError(
                f"column {table}.{column} is NOT NULL with no default: existing rows need a value."
                f"{hint} Otherwise give the field a default, make it nullable, or give a one-off value: "
                f"--default {table}.{column}=VALUE (VALUE: a Python expression, e.g. 0, 'unknown' or timezone.now)")
        values[(table.lower(), column.lower())] = value
    for table, column in added_nullable_columns(changes):  # Django's AddField fills these too
        value = defaults.value(table, column)
        if value is not None:
            values[(table.lower(), column.lower())] = value
    for altered, col in made_not_null(changes):  # existing NULLs take the model's default when it has one
        literal = defaults.value(altered.name, col.name)
        if literal is None and col.default is not None:
            literal = f"({col.default})"
        if literal is None:
            literal = _one_off(questioner, defaults, altered.name, col.name,
                               f"Column {altered.name}.{col.name} becomes NOT NULL with no default. Enter a one-off "
                               f"value for existing NULLs ({oneoff.PYTHON}), or press Enter to keep them (the "
                               "migration then fails if any row holds NULL)", used)
        if literal is not None:
            values[(altered.key, col.key)] = literal
    refusal = oneoff.unused(questioner.given, used)
    if refusal:
        raise ConfigurationError(refusal)
    return values


def generate(directory: Path, model_list: Iterable[type[models.Model]], *, label: str = "",
             renames: Renames | None = None, questioner: Questioner | None = None,
             now: datetime | None = None, write: bool = True,
             foreign: frozenset[str] = frozenset(), markers: bool = True) -> GenerateResult:
    """Database A (the history) against B (the models) -> one module per changed table. A history that
    conflicts with itself (two merged branches changed one table) is refused; asked interactively, the
    refused module can be re-planned against the merged history instead (a rebase: it is deleted and the
    change is generated again from the history without it), when a writing `generate` is told it is
    applied nowhere. `markers`: compare only the tables `schema.sql`'s markers do not show unchanged,
    when they can be trusted (partial.py); False compares the whole schemas (the same result, slower)."""
    questioner = questioner or Questioner()
    while True:
        try:
            return _generate(directory, model_list, label=label, renames=renames, questioner=questioner, now=now,
                             write=write, foreign=foreign, markers=markers)
        except HistoryConflict as conflict:
            path = directory / f"{conflict.module}.py"
            if not (write and questioner.interactive and path.is_file() and questioner.confirm(
                    f"{conflict}\nRe-plan it: delete {path.name} and generate its change again from the merged "
                    f"history? Answer yes only if {conflict.module} is applied on no database")):
                raise
            path.unlink()


def _generate(directory: Path, model_list: Iterable[type[models.Model]], *, label: str = "",
              renames: Renames | None = None, questioner: Questioner | None = None,
              now: datetime | None = None, write: bool = True,
              foreign: frozenset[str] = frozenset(), markers: bool = True) -> GenerateResult:
    """`foreign`: lower-case tables of apps that keep their Django migrations (build.foreign_tables). A
    history that created them (tablemigrate owned every app before) keeps them in database A, but the
    diff leaves them alone: handing an app to its Django migrations never drops its tables."""
    questioner = questioner or Questioner()
    renames = renames or Renames()
    now = now or datetime.now(timezone.utc)
    model_list = list(model_list)
    _declared_model_tables(renames, model_list)
    with cache.persistent(directory), private_database() as a_db, private_database() as b_db:
        statements = model_sql(b_db, model_list)
        ddl = model_sql_digest(statements)
        recorded = recorded_files(directory)
        header = read_header(directory)
        snapshot_schema = _snapshot_schema(header, recorded)
        fingerprint = functools.cache(lambda: models_fingerprint(model_list))  # once, and only when needed
        quick = not write and not (renames.tables or renames.columns) and snapshot_schema is not None
        if quick and header.get("ddl") == ddl and header.get("models", fingerprint()) == fingerprint():
            # `--check`/`--dry-run` with nothing to do, known from the models' DDL alone: the header's
            # `ddl` line is written only when these very statements built exactly the schema its
            # `schema` line records (the schema after this history: `snapshot_schema`). Neither database
            # is built: a fresh CI checkout would otherwise run and parse every table twice.
            return GenerateResult([], directory, lambda: _models_snapshot(model_list, recorded, fingerprint(), ddl))
        blocks = schemafile.read_blocks(directory, header) if snapshot_schema and markers else None
        # `schema.sql`'s markers say which tables the models' DDL leaves as they are: only the others
        # are built and compared (partial.py). Otherwise, or when they cannot say, the whole schemas.
        narrowed = None if blocks is None else partial.narrow(blocks, statements, ddl, recorded, foreign,
                                                              fingerprint, renames)
        if narrowed is not None:
            sides = Sides(narrowed.a, narrowed.b, recorded, narrowed.check, narrowed.unchanged_snapshot,
                          lambda: _stale_snapshot(directory, header, recorded, header["schema"], fingerprint, True),
                          narrowed.part)
        else:
            build_from_models(b_db, model_list, statements)
            b = introspect(raw(b_db))
            owners = functools.cache(lambda: statement_owners(raw(b_db), statements))
            same_as_b = functools.cache(lambda: b.fingerprint())
            if quick and snapshot_schema == same_as_b() and header.get("models", fingerprint()) == fingerprint():
                # The same, known by building B (an older header without a `ddl` line, or another Django
                # that words the same schema differently). Database A is never built. The header's
                # fingerprint was taken from A after the modules that produced it had been applied and
                # verified; another schema (triggers and views included) does not match, nor does a header
                # recording other models (W002 would warn) or another history.
                return GenerateResult([], directory, lambda: render_snapshot(b, history_checksum(recorded),
                                                                              fingerprint(), ddl, owners()))
            sides = _whole_sides(directory, raw(a_db), recorded, snapshot_schema, header, b, same_as_b, foreign,
                                 ddl, fingerprint, owners)
        result = _compare(sides, directory, renames, questioner, model_list, b_db, label, now)
        if write:
            leave = result.changed and narrowed is None  # the cache the whole comparison reads (cache.py)
            old = directory / SNAPSHOT_NAME
            snapshot_before = old.read_bytes() if leave and old.is_file() else None
            write_result(result)
            if leave:
                _leave_database_a(result, snapshot_before)
    return result


@dataclass
class Sides:
    """What the one pipeline (`_compare`) compares: database A and B as the diff sees them (the whole
    schemas, or the tables `schema.sql`'s markers do not show unchanged: partial.py), the history A is
    after, how the new modules are verified (`check`), and `schema.sql` when nothing changed."""

    a: Schema
    b: Schema
    existing: list  # the history: loaded modules, or `Recorded` entries
    check: Checker
    unchanged: Callable[[], str]
    stale: Callable[[], str | None]
    part: sqlite3.Connection | None = None  # an in-memory database the pipeline closes when it ends
    virtual: sqlite3.Connection | None = None  # database A, when it has virtual tables a module may break


def _whole_sides(directory: Path, a_conn: sqlite3.Connection, recorded: list[Recorded], snapshot_schema: str | None,
                 header: dict[str, str], b: Schema, same_as_b: Callable[[], str], foreign: frozenset[str], ddl: str,
                 fingerprint: Callable[[], str], owners: Callable[[], dict[str, list[str]]]) -> Sides:
    """The whole schemas: database A built (`_database_a`) in `a_conn`, B's schema `b` (whose fingerprint
    `same_as_b` gives)."""
    existing, a, body_ok = _database_a(directory, a_conn, recorded, snapshot_schema)
    # A model standing for a virtual table or view the history made by SQL is left alone, as are
    # the tables of apps that keep their Django migrations.
    sql_made = frozenset(sql_made_tables(a_conn))
    hidden = foreign | sql_made
    a_diff, b_diff = a.without(hidden), b.without(sql_made)

    def check(checked: list, tables: list) -> tuple[list[tuple[Shape, Shape]], Callable[[list], str]]:
        after, shapes = verify(a_conn, a_diff, a, b_diff, checked, tables, hidden, apart=True)

        def snapshot(new: list) -> str:
            digest = ddl if after.fingerprint() == same_as_b() else None
            return render_snapshot(after, history_checksum(existing + new), fingerprint(), digest,
                                   _built_by(after, b, owners()))
        return shapes, snapshot

    def unchanged() -> str:
        return render_snapshot(a, history_checksum(existing), fingerprint(),
                               ddl if a.fingerprint() == same_as_b() else None, _built_by(a, b, owners()))

    return Sides(a_diff, b_diff, existing, check, unchanged,
                 lambda: _stale_snapshot(directory, header, existing, a.fingerprint(), fingerprint, body_ok),
                 virtual=a_conn if a.virtual else None)


def _compare(sides: Sides, directory: Path, renames: Renames, questioner: Questioner, model_list: list,
             b_db, label: str, now: datetime) -> GenerateResult:
    """The one pipeline: the diff (once, and again only for a rename accepted), the values, the plans,
    and the modules, each rendered and loaded once and verified before anything is written."""
    try:
        diff = _changes(sides.a, sides.b, renames, questioner, model_list)
        changes = diff.changes()
        if not changes:
            return GenerateResult([], directory, sides.unchanged, sides.stale())
        unasked = [] if questioner.interactive else diff.candidates()
        values = _values(changes, FieldDefaults(b_db, model_list), questioner, unasked)
        plans = plan_changes(changes, values)
        _hint_renames(plans, unasked)
        follow_models(plans, renames)
        result, loaded = _loaded_modules(directory, plans, label, now, sides.existing, sides.check)
    finally:
        if sides.part is not None:
            sides.part.close()
    if sides.virtual is not None:
        _warn_virtual_tables(sides.virtual, result.modules, loaded)
    return result


def statement_owners(conn: sqlite3.Connection, statements: list[str]) -> dict[str, list[str]]:
    """The keys (`schemafile.statement_key`) of `statements`, by the lower-case table SQLite says each
    made or indexed on `conn`, where they ran. SQLite keeps a CREATE statement's text as it was given;
    a statement it keeps otherwise is left out (a table that misses one is never taken as unchanged:
    partial.py)."""
    made = {sql: tbl.lower() for tbl, sql in conn.execute("SELECT tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL")}
    out: dict[str, list[str]] = {}
    for statement in statements:
        table = made.get(statement.strip().rstrip(";").rstrip())
        if table is not None:
            out.setdefault(table, []).append(statement_key(statement))
    return out


def _built_by(schema: Schema, b: Schema, owners: dict[str, list[str]]) -> dict[str, list[str]]:
    """For `schema.sql`'s markers: the keys of the models' statements of each table of `schema` that is
    exactly the models' (B's) table."""
    return {k: owners[k] for k, t in schema.tables.items()
            if k in owners and k in b.tables and table_digest(t) == table_digest(b.tables[k])}


def _models_snapshot(model_list: list, recorded: list[Recorded], models: str, ddl: str) -> str:
    with private_database() as b_db:
        statements = model_sql(b_db, model_list)
        build_from_models(b_db, model_list, statements)
        b = introspect(raw(b_db))
        return render_snapshot(b, history_checksum(recorded), models, ddl, statement_owners(raw(b_db), statements))


def _snapshot_schema(header: dict[str, str], recorded: list[Recorded]) -> str | None:
    """The schema fingerprint `schema.sql`'s header records, when the header records exactly this
    history (names and file checksums); None otherwise."""
    if recorded and header.get("history") == history_checksum(recorded):
        return header.get("schema") or None
    return None


def _stale_snapshot(directory: Path, header: dict[str, str], existing: list, schema: str,
                    fingerprint: Callable[[], str], body_ok: bool | None) -> str | None:
    """Why `schema.sql` does not describe the history (`existing`, whose schema's fingerprint is
    `schema`) and the models,
    or None when it does. A snapshot without a `models` line (written by `baseline`) records no models."""
    if not (directory / SNAPSHOT_NAME).is_file():
        return f"{SNAPSHOT_NAME} is missing" if existing else None
    if header.get("history") != history_checksum(existing):
        return (f"{SNAPSHOT_NAME} records another migration history than the modules in {directory} "
                "(a module was added, edited or deleted after it was written)")
    if header.get("schema") != schema:
        return f"{SNAPSHOT_NAME} records another schema than the migration history produces"
    if body_ok is False:
        return f"{SNAPSHOT_NAME}'s statements do not build the schema its header records (edited by hand?)"
    if header.get("models", fingerprint()) != fingerprint():
        return f"{SNAPSHOT_NAME} records other models than the current ones (system check tablemigrate.W002)"
    return None


def _database_a(directory: Path, conn: sqlite3.Connection, recorded: list[Recorded],
                snapshot_schema: str | None) -> tuple[list, Schema, bool | None]:
    """Database A: from `schema.sql` when its header records exactly this history (`snapshot_schema`
    set) and that fingerprint matches what the file's statements build; otherwise by importing and
    replaying every module. Returns the history entries, A's schema, and whether the snapshot's
    statements built the schema its header records (None: not tried, the header records another history)."""
    if snapshot_schema:
        try:
            text = (directory / SNAPSHOT_NAME).read_bytes()
            conn.execute("PRAGMA foreign_keys = OFF")
            # A cached A (keyed by the file's bytes) is pages copied: nothing to parse. Otherwise the
            # statements run on a private, empty database: executescript's implicit COMMIT ends nothing early.
            from_cache = cache.load_database_a(directory, text, conn)
            if not from_cache:
                conn.executescript(text.decode("utf-8"))
            a = introspect(conn)
            if a.fingerprint() == snapshot_schema:  # whatever built it, it must be the recorded schema
                if not from_cache:
                    cache.keep_database_a(conn, directory, text)  # only a build that matched its header
                return recorded, a, True
        except (OSError, sqlite3.Error, ValueError):
            pass
        _empty(conn)  # the snapshot does not describe the history: replay it instead
    existing = load_migrations(directory)
    try:
        for m in existing:
            shapes.check(conn, m, "up")  # two branches that changed one table conflict here
            Applier(conn, python=False).apply(m, "up")
    except ShapeMismatch as exc:
        raise HistoryConflict(f"the migration history conflicts with itself: {exc}", exc.module) from None
    except MigrationFailed as exc:
        raise GenerateError(f"replaying the migration history failed: {exc}") from exc
    return existing, introspect(conn), (False if snapshot_schema else None)


def _empty(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA foreign_keys = OFF")
    for kind, name in conn.execute("SELECT type, name FROM sqlite_master WHERE type IN ('view', 'trigger', "
                                   f"'table') AND {user_objects()} ORDER BY type = 'table'").fetchall():
        conn.execute(f"DROP {kind.upper()} IF EXISTS {quote(name)}")


def models_schema(model_list: Iterable[type[models.Model]]) -> Schema:
    """Database B on its own: the schema the models create."""
    with private_database() as b_db:
        build_from_models(b_db, model_list)
        return introspect(raw(b_db))


#: Verifies the modules (loaded, with each one's table before and after it) before anything is written:
#: returns each module's shapes and the snapshot after them, given them as written.
Checker = Callable[[list, list], tuple[list[tuple[Shape, Shape]], Callable[[list], str]]]


def generated_modules(directory: Path, plans: list[PlannedMigration], label: str, now: datetime, existing: list,
             check: Checker) -> GenerateResult:
    """`_loaded_modules`' result alone (baseline.py)."""
    return _loaded_modules(directory, plans, label, now, existing, check)[0]


def _loaded_modules(directory: Path, plans: list[PlannedMigration], label: str, now: datetime, existing: list,
                    check: Checker) -> tuple[GenerateResult, list[Migration]]:
    """The modules for `plans`, after the history `existing`, verified by `check` before anything is
    written; each states the shapes `check` saw (what it will expect to find). Each module is rendered
    once and loaded once: the shape lines, known only after `check`, go between the rendered parts
    (writer.render_parts); the loaded modules are returned too."""
    names = module_names(plans, now, [m.name for m in existing])
    tables = [(None if p.kind == "create" else p.old_table or p.table, None if p.kind == "drop" else p.table)
              for p in plans]
    parts = [render_parts(p, label, now) for p in plans]
    checked = [load_source((head + shape_lines(p) + tail).encode(), n) for n, p, (head, tail) in zip(names, plans, parts)]
    shapes, snapshot = check(checked, tables)
    for plan, (before_shape, after_shape) in zip(plans, shapes):
        plan.before, plan.after = before_shape, after_shape
    modules = [GeneratedModule(n, head + shape_lines(p) + tail, p) for n, p, (head, tail) in zip(names, plans, parts)]
    new = [Recorded(m.name, checksum(m.text.encode())) for m in modules]
    return GenerateResult(modules, directory, functools.cache(lambda: snapshot(new))), checked


def _warn_virtual_tables(a_conn: sqlite3.Connection, modules: list[GeneratedModule], loaded: list[Migration]) -> None:
    """The virtual tables of database A that the new modules (`loaded`) leave failing, asked of SQLite as
    the rehearsal before `run` does (a full scan of each after each module): an FTS index whose content
    table a module renames or drops. Said now, not at deploy, where `run` refuses the module."""
    by_name = {m.name: m for m in modules}
    for migration, line in broken_virtual_tables(a_conn, loaded):
        by_name[migration].warnings.append(line)


def _leave_database_a(result: GenerateResult, snapshot_before: bytes | None) -> None:
    """Leave the cache the next `generate` needs: database A for the `schema.sql` just written (what
    its statements build), keeping the one this run started from (cache.py)."""
    text = result.snapshot
    built = connect(isolation_level=None)
    try:
        built.execute("PRAGMA foreign_keys = OFF")
        built.executescript(text)
        cache.keep_database_a(built, result.directory, text.encode("utf-8"), also=snapshot_before)
    except sqlite3.Error:
        pass  # the next generate builds it from schema.sql and checks it, as with no cache
    finally:
        built.close()


def write_result(result: GenerateResult) -> None:
    directory = result.directory
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for m in result.modules:
            (directory / f"{m.name}.py").write_text(m.text, encoding="utf-8")
        (directory / SNAPSHOT_NAME).write_text(result.snapshot, encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"cannot write to {directory}: {exc.strerror}") from None
