"""Before `generate` writes anything, the new modules must take database A to B, and back.

The modules run on a copy of the part of A they can reach: the tables they name, the tables whose
foreign keys point at those (SQLite's RENAME rewrites them), and the parents of all of these. SQLite's
ALTER TABLE re-reads the whole schema for each RENAME and DROP COLUMN: on a 200-model project that is
13-19 ms a statement on all of A, and a fraction of that on the part. A module that reaches outside
the part fails here ("no such table"), so the rest of A is unchanged by construction, and the schema
after the modules is A with the part replaced: checked against B as a whole.

When A has any view or trigger, the part is all of A. SQLite re-checks *every* view and trigger at
each RENAME and DROP COLUMN, those that do not name the changed table included (one left broken by a
dropped table makes the statement fail), and a view or trigger can name a table in ways only SQLite
resolves (`FROM 'blog_post'` reads the table). Views and triggers come only from hand-written modules,
so most projects keep the speed; the others get the check that the real run will pass.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import Any, Optional

from tablemigrate.errors import GenerateError, MigrationFailed
from tablemigrate.history.loader import Migration
from tablemigrate.run.apply import Applier
from tablemigrate.sqlite.introspect import introspect
from tablemigrate.sqlite.schema import Schema, Table, same_tables
from tablemigrate.sqlite.shapes import live_table, shape
from tablemigrate.sqlite.sqltext import user_objects


def reach(schema: Schema, touched: set[str]) -> set[str] | None:
    """The tables modules naming the tables `touched` (lower-case) can reach in `schema`, by the
    foreign keys SQLite reports; None (all of it) when the schema has any view or trigger."""
    if schema.views or schema.triggers:
        return None
    parents = {k: {fk.ref_table for fk in t.foreign_keys} & schema.tables.keys() for k, t in schema.tables.items()}
    names = touched & schema.tables.keys()
    names |= {t for t, refs in parents.items() if refs & names}  # children: RENAME rewrites their keys
    for t in list(names):
        names |= parents[t]
    return names


def part_of(conn: sqlite3.Connection, schema: Schema, touched: Iterable[str]) -> sqlite3.Connection:
    """A new in-memory database holding the part of `conn`'s database (whose schema is `schema`) that
    modules naming the tables `touched` reach (`reach`): each table and index by its stored SQL, in the
    order SQLite keeps them; or a copy of all of it."""
    tables = reach(schema, {t.lower() for t in touched})
    part = sqlite3.connect(":memory:", isolation_level=None)
    if tables is None:
        conn.backup(part)
        return part
    part.execute("PRAGMA foreign_keys = OFF")
    for kind, tbl, sql in conn.execute(f"SELECT type, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL "
                                       f"AND type IN ('table', 'index') AND {user_objects()} ORDER BY rowid"):
        if tbl.lower() in tables:
            part.execute(sql)
    return part


def _merged(whole: Schema, before: Schema, after: Schema) -> Schema:
    """`whole` with the objects of `before` (a part of it) replaced by those of `after`."""
    def swap(objects: dict, old: dict, new: dict) -> dict:
        return {**{k: v for k, v in objects.items() if k not in old}, **new}

    return Schema(swap(whole.tables, before.tables, after.tables), swap(whole.triggers, before.triggers, after.triggers),
                  swap(whole.views, before.views, after.views), swap(whole.virtual, before.virtual, after.virtual))


def mismatch(got: dict[str, Table], want: dict[str, Table]) -> str:
    keys = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
    return ", ".join(keys[:10]) or "(indexes or constraints)"


Shape = Optional[dict[str, Any]]


Check = Callable[[Schema, Schema], Optional[str]]


def verify(conn: sqlite3.Connection, a: Schema, whole_a: Schema, b: Schema, new: list[Migration],
           tables: list[tuple[str | None, str | None]], hidden: frozenset[str] = frozenset()
           ) -> tuple[Schema, list[tuple[Shape, Shape]]]:
    """Apply `new` to the part of database A (`conn`, whose whole schema is `whole_a`; `a` is what the
    diff saw) that they reach: the result must be B; then their downs, in reverse, must give the part
    back. `tables`: each module's table before and after it (None: none, as before a create). Returns
    A's whole schema after `new`, and the shape of each module's table just before and just after it
    ran (shapes.py: what the module expects). Raises GenerateError otherwise."""
    def merged(before: Schema, got: Schema) -> dict[str, Table]:
        return _merged(whole_a, before, got).without(hidden).tables

    def after_ups(before: Schema, got: Schema) -> str | None:
        mine = merged(before, got)
        return None if same_tables(mine, b.tables) else mismatch(mine, b.tables)

    def after_downs(before: Schema, back: Schema) -> str | None:
        mine = merged(before, back)
        return None if same_tables(mine, a.tables) else mismatch(mine, a.tables)

    part = part_of(conn, whole_a, {t for pair in tables for t in pair if t})
    before, got, shapes = exercise(part, new, tables, after_ups, after_downs)
    return _merged(whole_a, before, got), shapes


def exercise(part: sqlite3.Connection, new: list[Migration], tables: list[tuple[str | None, str | None]],
             after_ups: Check, after_downs: Check) -> tuple[Schema, Schema, list[tuple[Shape, Shape]]]:
    """Run `new`'s ups on `part` (which it closes), then their downs in reverse. `after_ups(before, got)`
    and `after_downs(before, back)` name the tables that are not as they must be (None: all are).
    Returns the part's schema before and after the ups, and each module's shapes."""
    shapes: list[tuple[Shape, Shape]] = []
    applier = Applier(part)
    try:
        before = introspect(part)
        for m, (old, new_name) in zip(new, tables):
            expected = shape(live_table(part, old)) if old else None
            applier.apply(m, "up")
            shapes.append((expected, shape(live_table(part, new_name)) if new_name else None))
        got = introspect(part)
        wrong = after_ups(before, got)
        if wrong is not None:
            raise GenerateError("internal error: the generated migrations do not reproduce the models' "
                                f"schema (tables: {wrong}); nothing written")
        for m in reversed(new):
            applier.apply(m, "down")
        wrong = after_downs(before, introspect(part))
        if wrong is not None:
            raise GenerateError("internal error: the generated `down` steps do not restore the previous "
                                f"schema (tables: {wrong}); nothing written")
    except MigrationFailed as exc:
        raise GenerateError(f"internal error: a generated migration failed on the empty schema: {exc}") from exc
    finally:
        part.close()
    return before, got, shapes
