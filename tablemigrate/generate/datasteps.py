"""The data steps of the project's own Django migrations, carried through adoption (issue 23, item 4).

Before `baseline`, the apps tablemigrate owns kept Django migrations; their `RunPython` and `RunSQL`
steps put rows into every database `migrate` built (default groups, categories, settings). After the
adoption those migrations are deleted, so a database built by `run` would lack the rows. `baseline`
therefore copies the owned apps' migration packages, verbatim, into `<migrations dir>/django/<app>/`
(the archive) and writes one module per Django migration that has data steps, after the modules that
create the tables: each step a `DjangoDataStep(app, migration, operation)` naming the operation by its
place in the migration. The adopted database records those modules as applied (the steps already ran
there); a new database runs them.

At run time a step is Django's own operation, run as Django's executor runs it: Django's
`MigrationLoader` reads the archive (in place of the deleted packages) and the other apps' migrations,
builds the project state just before the operation, and the operation's `database_forwards` (or
`database_backwards`, for `down`) gets a schema editor on the Django connection of the database being
migrated, inside the module's transaction. A `RunPython` function gets `(apps, schema_editor)` with
`apps` the historical models as of that migration, and the default manager writes into the module's
transaction.

One difference from Django's migrate is unavoidable and handled: the tables are already in their
final shape when the step runs (the baseline modules made them as the adopted database had them). A
column that a later migration added (NOT NULL, with a Django default) would make the historical model's
INSERT fail; so each historical model whose table exists gets the table's columns as SQLite lists them
(`PRAGMA table_xinfo`): a field whose column the table lacks (removed later) is dropped from it, and a
column it lacks (added later) is added as the final model state (the archive's last migrations)
defines the field, default included, which is the value Django's AddField gives the rows that exist.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db.migrations.loader import MigrationLoader
from django.db.migrations.operations import RunPython, RunSQL, SeparateDatabaseAndState

from tablemigrate.errors import ConfigurationError
from tablemigrate.history.loader import Step
from tablemigrate.operations import DjangoDataStep
from tablemigrate.project.build import private_database, raw
from tablemigrate.project.historical import HistoryLoader, archive_dir, file_checksum
from tablemigrate.sqlite import sqltext

from .pipeline import GeneratedModule
from .plan import PlannedMigration
from .writer import module_names, render_data_module

_SCHEMA_ACTIONS = {sqlite3.SQLITE_CREATE_INDEX, sqlite3.SQLITE_CREATE_TABLE, sqlite3.SQLITE_CREATE_TEMP_INDEX,
                   sqlite3.SQLITE_CREATE_TEMP_TABLE, sqlite3.SQLITE_CREATE_TEMP_TRIGGER,
                   sqlite3.SQLITE_CREATE_TEMP_VIEW, sqlite3.SQLITE_CREATE_TRIGGER, sqlite3.SQLITE_CREATE_VIEW,
                   sqlite3.SQLITE_CREATE_VTABLE, sqlite3.SQLITE_DROP_INDEX, sqlite3.SQLITE_DROP_TABLE,
                   sqlite3.SQLITE_DROP_TEMP_INDEX, sqlite3.SQLITE_DROP_TEMP_TABLE, sqlite3.SQLITE_DROP_TEMP_TRIGGER,
                   sqlite3.SQLITE_DROP_TEMP_VIEW, sqlite3.SQLITE_DROP_TRIGGER, sqlite3.SQLITE_DROP_VIEW,
                   sqlite3.SQLITE_DROP_VTABLE, sqlite3.SQLITE_ALTER_TABLE}
_WRITES = {sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE}
_SCHEMA_TABLES = {"sqlite_master", "sqlite_temp_master", "sqlite_schema", "sqlite_temp_schema"}


@dataclass
class Found:
    """A data operation of a Django migration: `path` is its index in `operations`, then (inside a
    `SeparateDatabaseAndState`) in its `database_operations`."""

    app_label: str
    migration: str
    path: list[int]
    operation: Any
    source: Path  # the migration's file

    @property
    def reversible(self) -> bool:
        return bool(self.operation.reversible)

    def describe(self) -> str:
        op = self.operation
        if isinstance(op, RunPython):
            code = op.code
            return f"RunPython {getattr(code, '__module__', '?')}.{getattr(code, '__qualname__', repr(code))}"
        return "RunSQL"


def _data_operations(operations: list, prefix: list[int]) -> Iterator[tuple[list[int], Any]]:
    for i, op in enumerate(operations):
        if isinstance(op, SeparateDatabaseAndState):
            yield from _data_operations(op.database_operations, prefix + [i])
        elif isinstance(op, RunPython) and op.code is not RunPython.noop:
            yield prefix + [i], op
        elif isinstance(op, RunSQL) and op.sql not in (RunSQL.noop, "", [], ()):
            yield prefix + [i], op


def find(apps: list[str], scratch: sqlite3.Connection, wrapper: Any) -> tuple[list[Found], list[str]]:
    """The data operations of the Django migrations of `apps`, in the order Django applies them, and
    what is left out (one line each). A `RunSQL` is carried only when each statement it runs (as Django's
    schema editor would run them, collected on `wrapper`) compiles on `scratch` (the adopted database's
    tables and views) and SQLite's authorizer sees it change no schema: the objects SQL made are the
    baseline modules' (`baseline.made_by_sql`), and they must not be made twice."""
    loader = HistoryLoader({})
    wanted = set(apps)
    nodes: list[tuple[str, str]] = []
    for leaf in sorted(k for k in loader.graph.leaf_nodes() if k[0] in wanted):
        nodes.extend(k for k in loader.graph.forwards_plan(leaf) if k[0] in wanted and k not in nodes)
    found: list[Found] = []
    left_out: list[str] = []
    for key in nodes:
        migration = loader.graph.nodes[key]
        for path, op in _data_operations(migration.operations, []):
            step = Found(key[0], key[1], path, op, Path(sys.modules[type(migration).__module__].__file__ or ""))
            if isinstance(op, RunSQL):
                why = _sql_changes_schema(op, key[0], scratch, wrapper)
                if why is not None:
                    if why:
                        left_out.append(f"{key[0]}.{key[1]} operation {_where(path)} (RunSQL): {why}")
                    continue
            found.append(step)
    return found, left_out


def _where(path: list[int]) -> str:
    return ".".join(str(i + 1) for i in path)


def _sql_changes_schema(op: Any, app_label: str, scratch: sqlite3.Connection, wrapper: Any) -> str | None:
    """None: a data statement to carry; "": it changes the schema (baseline's modules make what it made,
    or list it); otherwise why it cannot be told (SQLite's error compiling it on the adopted schema)."""
    with wrapper.schema_editor(collect_sql=True, atomic=False) as editor:
        op.database_forwards(app_label, editor, None, None)
    actions: list[tuple] = []

    def authorize(action: int, arg1: str | None, arg2: str | None, db: str | None, inner: str | None) -> int:  # noqa: ARG001 (sqlite3's authorizer signature)
        actions.append((action, arg1))
        return sqlite3.SQLITE_OK

    scratch.set_authorizer(authorize)
    try:
        for sql in editor.collected_sql:
            try:
                scratch.execute(f"EXPLAIN {sql}").fetchall()  # compiled, never run
            except sqlite3.Error as exc:
                error = f"SQLite cannot compile it on the adopted schema ({exc}); not carried"
                return "" if _changes_schema(actions) else error
    finally:
        sqltext.clear_authorizer(scratch)
    return "" if _changes_schema(actions) else None


def _changes_schema(actions: list[tuple]) -> bool:
    return any(a in _SCHEMA_ACTIONS or (a in _WRITES and (arg or "").lower() in _SCHEMA_TABLES)
               for a, arg in actions)


def archive(directory: Path, apps: list[str]) -> list[Path]:
    """Copy the migrations packages of `apps` into the archive, verbatim (compiled files left out).
    Returns what was made (to remove on failure)."""
    from django.apps import apps as registry

    target = archive_dir(directory)
    if target.exists():
        raise ConfigurationError(f"{target} already exists; baseline writes it: delete it, then run baseline")
    made = [target]
    target.mkdir(parents=True)
    for label in apps:
        name, _explicit = MigrationLoader.migrations_module(label)
        module = __import__(name or f"{registry.get_app_config(label).name}.migrations", fromlist=["__path__"])
        shutil.copytree(Path(list(module.__path__)[0]), target / label,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return made


class _DataPlan(PlannedMigration):
    @property
    def verb(self) -> str:  # the modules' names say what they hold: ..._data_<app>_<migration>
        return "data"


def modules(found: list[Found], label: str, now: Any, existing: list[str],
            adoption_point: list[tuple[str, str]] | None = None) -> list[Any]:
    """The carried modules (generate.GeneratedModule), one per Django migration with data steps, in
    Django's order, named to sort after the modules `existing` (the baseline's table modules); the last
    holds `adoption_point` (the point takes in every module `baseline` writes: tablemigrate.run.adopt)."""
    groups: dict[tuple[str, str], list[Found]] = {}
    for step in found:
        groups.setdefault((step.app_label, step.migration), []).append(step)
    plans = []
    for (app_label, migration), steps in groups.items():
        checksum = file_checksum(steps[0].source)

        def step_of(s: Found, reverse: bool = False) -> DjangoDataStep:
            where = s.path[0] if len(s.path) == 1 else list(s.path)
            return DjangoDataStep(app_label, migration, where, checksum=checksum, reverse=reverse, what=s.describe())

        up: list[Step] = [step_of(s) for s in steps]
        down: list[Step] | None = ([step_of(s, True) for s in reversed(steps)]
                                   if all(s.reversible for s in steps) else None)
        summary = [f"{s.describe()} (operation {_where(s.path)})" for s in steps]
        plan = _DataPlan("create", f"{app_label}_{migration}", up, down or [], summary=summary, noun="data")
        plans.append((f"{app_label}.{migration}", plan, down))
    names = module_names([p for _o, p, _d in plans], now, existing)
    last = len(plans) - 1
    return [GeneratedModule(name, render_data_module(origin, plan.up, down, plan.summary, label, now,
                                                     adoption_point if i == last else None), plan)
            for i, (name, (origin, plan, down)) in enumerate(zip(names, plans))]


def find_in(everything: Any, apps: list[str]) -> tuple[list[Found], list[str]]:
    """`find` for the adopted database whose schema is `everything` (a `Schema`): its tables, virtual
    tables and views, made on a private database, are where each `RunSQL` is compiled."""
    if not apps:
        return [], []
    with private_database() as scratch_db:
        scratch = raw(scratch_db)
        made = [t.sql for t in everything.tables.values()] + list(everything.virtual.values())
        for sql in made + [v.raw for v in everything.views.values()]:
            try:
                scratch.execute(sql)
            except sqlite3.Error:  # a shadow table its virtual table makes, a view of something missing
                pass
        return find(apps, scratch, scratch_db)
