"""`baseline`: adopt a database that tablemigrate did not create (Django's `migrate`, or by hand).

Writes the migration modules that create the database's current tables, and the virtual tables, views
and triggers that SQL made on the project's side (`made_by_sql`), proves (by replaying them into an
empty database) that they reproduce it exactly, and records them as applied in the same database,
inside one transaction. A later `generate` then diffs the models against that history, and leaves
alone a model standing for a virtual table or view the history makes.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from django.db import models

from tablemigrate.errors import ConfigurationError, GenerateError
from tablemigrate.history import applied as history
from tablemigrate.history.loader import (
    SNAPSHOT_NAME,
    Recorded,
    checksum,
    history_checksum,
    load_migration,
    migration_files,
)
from tablemigrate.history.schemafile import render as render_snapshot
from tablemigrate.history.status import Target
from tablemigrate.project.build import private_database, raw
from tablemigrate.project.fingerprint import model_tables, models_fingerprint
from tablemigrate.project.ownership import owned_with_django_migrations, ownership
from tablemigrate.run.adopt import django_point, record_applied
from tablemigrate.sqlite.diff import Renames, diff_schemas
from tablemigrate.sqlite.introspect import introspect
from tablemigrate.sqlite.schema import Schema, Trigger, View
from tablemigrate.sqlite.sqltext import quote
from tablemigrate.sqlite.transaction import write_transaction

from . import datasteps
from .pipeline import GenerateResult, generated_modules, models_schema, write_result
from .plan import PlannedMigration, plan_changes
from .verify import Shape, verify

logger = logging.getLogger("tablemigrate")


def baseline(target: Target, directory: Path, model_list: list[type[models.Model]], *, label: str = "Baseline",
             now: datetime | None = None, lock_timeout: float = 30, write: bool = True,
             foreign: frozenset[str] = frozenset()) -> tuple[GenerateResult, list[str]]:
    """`model_list`: the models of the apps tablemigrate owns (build.managed_models); `foreign`: tables of
    the apps whose Django migrations own them (build.foreign_tables). Returns the modules and what the
    modules leave out, one line per kind: other apps' tables, tables no owned model has, and the views
    and triggers that need tables the modules do not make (`made_by_sql`: the modules carry the others)."""
    conn = target.conn
    with target.lock(lock_timeout):
        if history.applied(conn):
            raise ConfigurationError("this database already has tablemigrate history; baseline is only for a "
                                     "database without one (use `generate` and `run`)")
        if migration_files(directory):
            raise ConfigurationError(f"{directory} already holds migration modules; baseline writes the first "
                                     "ones: if `generate` wrote them for this database, delete them (and "
                                     "schema.sql), then run baseline")
        everything = introspect(conn)
        owned = model_tables(model_list)
        tables = {k: t for k, t in everything.tables.items() if k in owned}
        if not tables:
            raise ConfigurationError("the database has no tables of this project's models to adopt; use "
                                     "`generate` and `run` instead")
        made = made_by_sql(conn, everything, set(tables), foreign)
        live = Schema(tables, made.triggers, made.views, made.virtual)
        left_alone = _left_out(everything, owned, foreign, made.left_out)
        archived = owned_with_django_migrations()  # their data steps go into modules of their own
        data, not_carried = datasteps.find_in(everything, archived)
        if not_carried:
            left_alone.append("data steps not carried (new databases will not have what they did): "
                              + "; ".join(not_carried))
        # When the models already match the database, record their fingerprint (system check W002). A
        # model standing for a virtual table or view is left alone by `generate` (decision 82): so here.
        stand_ins = made.views.keys() | made.virtual.keys()
        fingerprint = (models_fingerprint(model_list)
                       if models_schema(model_list).without(stand_ins).tables == live.tables else None)
        result = baseline_modules(directory, live, label=label, now=now, fingerprint=fingerprint, data=data,
                                  adoption_point=django_point(conn, ownership().owned))
        if not write:
            return result, left_alone
        modules = [directory / f"{m.name}.py" for m in result.modules]
        written = modules + [directory / SNAPSHOT_NAME]
        started = time.perf_counter()
        try:
            if data:  # the archive the carried modules run their steps from
                written += datasteps.archive(directory, archived)
            write_result(result)
            migrations = [load_migration(p) for p in modules]
            with write_transaction(conn):
                record_applied(conn, migrations, started)
        except BaseException:  # leave no modules behind that the database does not record
            for path in written:
                if path.is_dir():
                    shutil.rmtree(path)
                path.unlink(missing_ok=True)
            raise
        logger.info("baseline: %d migration modules written to %s and recorded as applied",
                    len(migrations), directory)
        return result, left_alone


@dataclass
class MadeBySql:
    """The objects of the adopted database that SQL made on the project's side (decision 93), in the
    order the database keeps them (`sqlite_master`): those the modules carry (lower-case name -> the
    object, as `Schema` keeps them) and those they leave out ("view x", "trigger y")."""

    virtual: dict[str, str]
    views: dict[str, View]
    triggers: dict[str, Trigger]
    left_out: list[str]


def made_by_sql(conn: sqlite3.Connection, everything: Schema, adopted: set[str], foreign: frozenset[str]) -> MadeBySql:
    """What baseline carries into its modules besides the adopted tables (`adopted`), so that a new
    database built from the history has it and `generate` finds in the history what an owned model
    stands for (decision 82): every virtual table (FTS5, R*Tree: its shadow tables come with it), view
    and trigger that is not of an app with Django migrations (`foreign`, whose migrations make theirs),
    as long as it works where only the modules' objects exist. That is what SQLite says when the objects
    are made, in the live database's order, on an empty database: a view must compile, and a trigger
    must not stop a statement that fires it from compiling. A view or trigger that needs a table the
    modules do not make (another app's, one made by hand) is left out: in database A, which holds only
    what the history makes, it would make SQLite refuse every later `ALTER TABLE ... RENAME`."""
    order = [name.lower() for (name,) in conn.execute("SELECT name FROM sqlite_master ORDER BY rowid")]
    virtual = {k: everything.virtual[k] for k in order if k in everything.virtual and k not in foreign}
    views: dict[str, View] = {}
    triggers: dict[str, Trigger] = {}
    left_out: list[str] = []
    with private_database() as scratch_db:  # Django's wrapper: the SQL functions Django registers exist
        scratch = raw(scratch_db)
        for sql in [everything.tables[k].sql for k in order if k in adopted] + list(virtual.values()):
            scratch.execute(sql)
        candidates = [everything.views[k] for k in order if k in everything.views and k not in foreign]
        for view in candidates:
            scratch.execute(view.raw)
        for view in candidates:
            if _compiles(scratch, f"SELECT * FROM {quote(view.name)}"):
                views[view.name.lower()] = view
            else:
                scratch.execute(f"DROP VIEW {quote(view.name)}")
                left_out.append(f"view {view.name}")
        for trigger in (everything.triggers[k] for k in order if k in everything.triggers):
            if trigger.table in foreign:
                continue
            if trigger.table in adopted or trigger.table in views:
                fired = _firing(scratch, trigger.table)
                scratch.execute(trigger.raw)
                now = _firing(scratch, trigger.table)
                if fired <= now and (trigger.table in adopted or now > fired):
                    triggers[trigger.name.lower()] = trigger
                    continue
                scratch.execute(f"DROP TRIGGER {quote(trigger.name)}")
            left_out.append(f"trigger {trigger.name}")
    return MadeBySql(virtual, views, triggers, left_out)


_compiled = itertools.count()


def _compiles(conn: sqlite3.Connection, statement: str) -> bool:
    """Whether SQLite compiles `statement` (EXPLAIN: it is never run). Each text is a new one: an EXPLAIN
    runs without checking that the schema is the one it was compiled for, so the statement cache of
    Python's sqlite3 would answer for the schema before a trigger was added."""
    try:
        conn.execute(f"EXPLAIN {statement} -- {next(_compiled)}").fetchall()
    except sqlite3.Error:
        return False
    return True


def _firing(conn: sqlite3.Connection, table: str) -> set[str]:
    """Of the statements that fire a trigger on `table` (a table, or a view's INSTEAD OF triggers), those
    SQLite compiles, with the triggers `table` has: a trigger that needs something missing stops the
    statement it fires on from compiling; one on a view lets the statement it is for compile."""
    name = quote(table)
    columns = [quote(c) for (c,) in conn.execute("SELECT name FROM pragma_table_xinfo(?) WHERE hidden = 0", (table,))]
    statements = [f"INSERT INTO {name} DEFAULT VALUES", f"DELETE FROM {name}",
                  f"UPDATE {name} SET " + ", ".join(f"{c} = {c}" for c in columns)]
    return {s for s in statements if _compiles(conn, s)}


def baseline_modules(directory: Path, live: Schema, *, label: str = "Baseline", now: datetime | None = None,
                     fingerprint: str | None = None, data: list[datasteps.Found] | None = None,
                     adoption_point: list[tuple[str, str]] | None = None) -> GenerateResult:
    """Modules that create `live` from nothing, verified to reproduce it exactly (for adopting a database
    that has no tablemigrate history): one per table, then one per virtual table and per view, in the
    order of `live`'s dicts; each trigger in the module that makes its table or view. `fingerprint`: the
    models', when they match `live`. `data`: the owned apps' Django data steps, carried in modules after
    those (datasteps.modules; never replayed, so not verified here). `adoption_point`: the Django
    migrations of the owned apps `live`'s database had applied, written into the last table module
    (tablemigrate.run.adopt adopts further databases: the point and the carried modules written with it)."""
    now = now or datetime.now(timezone.utc)
    carried: list = []
    with private_database() as a_db:
        a_conn = raw(a_db)
        a = introspect(a_conn)
        plans = plan_changes(diff_schemas(a, live, Renames()), {})
        plans += [_plan_sql_object(name, "virtual table", sql, "TABLE") for name, sql in live.virtual.items()]
        plans += [_plan_sql_object(view.name, "view", view.raw, "VIEW") for view in live.views.values()]
        by_table = {p.table.lower(): p for p in plans}
        for trigger in live.triggers.values():
            by_table[trigger.table].up.append(trigger.raw)
            by_table[trigger.table].summary.append(f"create trigger {trigger.name} (made by SQL)")

        def check(checked: list, tables: list) -> tuple[list[tuple[Shape, Shape]], Callable[[list], str]]:
            # A virtual table or view has no shape to check (shapes.py reads tables).
            tables = [(None, None) if p.noun != "table" else pair for p, pair in zip(plans, tables)]
            after, shapes = verify(a_conn, a, a, live, checked, tables)
            if after.fingerprint() != live.fingerprint():
                raise GenerateError("internal error: the baseline modules do not reproduce the database's "
                                    "virtual tables, views and triggers; nothing written")
            carried[:] = datasteps.modules(data or [], label, now, [m.name for m in checked], adoption_point)
            records = [Recorded(m.name, checksum(m.text.encode())) for m in carried]
            return shapes, lambda new: render_snapshot(after, history_checksum(new + records), fingerprint)

        if plans and adoption_point is not None and not data:  # else in the last carried data module
            plans[-1].adoption_point = adoption_point
        result = generated_modules(directory, plans, label, now, [], check)
        result.modules += carried
        return result


def _plan_sql_object(name: str, noun: str, sql: str, kind: str) -> PlannedMigration:
    """Creating a virtual table or view made by SQL: its own statement, and DROP `kind` for `down`."""
    return PlannedMigration("create", name, [sql], [f"DROP {kind} {quote(name)}"],
                            summary=[f"create {noun} {name} (made by SQL)"], noun=noun)


def _left_out(everything: Schema, owned: set[str], foreign: frozenset[str], made_by_sql: list[str]) -> list[str]:
    """What baseline's modules do not reproduce, each kind on one line (for the command to print)."""
    theirs = sorted(t.name for k, t in everything.tables.items() if k not in owned and k in foreign)
    nobodys = sorted(t.name for k, t in everything.tables.items() if k not in owned and k not in foreign)
    lines = []
    if theirs:
        lines.append("left alone, their apps' Django migrations own them: " + ", ".join(theirs))
    if nobodys:
        lines.append("left alone, no model of yours owns them (unmanaged models, made by hand): " + ", ".join(nobodys))
    if made_by_sql:
        lines.append("kept in this database but not in the modules, as they need tables the modules do not make "
                     "(new databases will not have them): " + ", ".join(made_by_sql))
    return lines
