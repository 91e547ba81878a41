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

`generate`'s modules are verified apart, a group at a time (`groups`): modules that name or reach no
table in common cannot see each other's tables, so each group runs on a part of its own, holding the
tables it reaches and no other. The parts together are the one part all the modules reach, so the
proof is the same; each RENAME and DROP COLUMN re-reads a smaller schema (15 modules on a 200-model
project: 15 parts of at most 5 tables instead of one of 54).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from typing import Any, Optional

from tablemigrate.errors import GenerateError, MigrationFailed
from tablemigrate.history.loader import Migration
from tablemigrate.project.build import connect
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


def groups(named: list[set[str]], reach_of: Callable[[set[str]], set[str] | None]) -> list[list[int]]:
    """The modules (by index; `named[i]`: the lower-case tables module i names) in groups that share no
    table they name or reach (`reach_of`), each in module order, the groups in the order of their first
    module. One group of all when `reach_of` says all of A (None) or a module names no table (one that
    makes something other than a table: it may reach anything)."""
    found: list[tuple[list[int], set[str]]] = []  # (modules, the tables they name or reach)
    for i, names in enumerate(named):
        reached = reach_of(names) if names else None
        if reached is None:
            return [list(range(len(named)))]
        modules, tables = [i], names | reached
        apart = []
        for other in found:
            if other[1] & tables:
                modules, tables = other[0] + modules, other[1] | tables
            else:
                apart.append(other)
        found = apart + [(sorted(modules), tables)]
    return sorted((modules for modules, _ in found), key=lambda modules: modules[0])


def named_tables(tables: list[tuple[str | None, str | None]]) -> list[set[str]]:
    """The lower-case tables each module names (its table before and after it)."""
    return [{t.lower() for t in pair if t} for pair in tables]


def part_of(conn: sqlite3.Connection, schema: Schema, touched: Iterable[str]) -> sqlite3.Connection:
    """A new in-memory database holding the part of `conn`'s database (whose schema is `schema`) that
    modules naming the tables `touched` reach (`reach`): each table and index by its stored SQL, in the
    order SQLite keeps them; or a copy of all of it."""
    tables = reach(schema, {t.lower() for t in touched})
    part = connect(isolation_level=None)
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
           tables: list[tuple[str | None, str | None]], hidden: frozenset[str] = frozenset(), *,
           apart: bool = False) -> tuple[Schema, list[tuple[Shape, Shape]]]:
    """Apply `new` to the part of database A (`conn`, whose whole schema is `whole_a`; `a` is what the
    diff saw) that they reach: the result must be B; then their downs, in reverse, must give the part
    back. `tables`: each module's table before and after it (None: none, as before a create). Returns
    A's whole schema after `new`, and the shape of each module's table just before and just after it
    ran (shapes.py: what the module expects). Raises GenerateError otherwise. `apart`: a group at a time
    (`groups`), for modules that make tables and indexes only (`generate`'s; not `baseline`'s, whose
    modules make views and triggers too)."""
    def merged(before: Schema, got: Schema) -> dict[str, Table]:
        return _merged(whole_a, before, got).without(hidden).tables

    def after_ups(before: Schema, got: Schema) -> str | None:
        mine = merged(before, got)
        return None if same_tables(mine, b.tables) else mismatch(mine, b.tables)

    def after_downs(before: Schema, back: Schema) -> str | None:
        mine = merged(before, back)
        return None if same_tables(mine, a.tables) else mismatch(mine, a.tables)

    named = named_tables(tables)
    together = groups(named, lambda names: reach(whole_a, names)) if apart else [list(range(len(new)))]
    parts: list[tuple[sqlite3.Connection, list[int]]] = []
    try:
        for modules in together:
            parts.append((part_of(conn, whole_a, set().union(*(named[i] for i in modules))), modules))
    except BaseException:
        close(parts)
        raise
    before, got, shapes = exercise(parts, new, tables, after_ups, after_downs)
    return _merged(whole_a, before, got), shapes


def close(parts: list[tuple[sqlite3.Connection, list[int]]]) -> None:
    """Close the parts' databases."""
    for part, _modules in parts:
        part.close()


def _union(schemas: list[Schema]) -> Schema:
    """The schemas of parts that hold no object in common, as one."""
    return Schema({k: v for s in schemas for k, v in s.tables.items()},
                  {k: v for s in schemas for k, v in s.triggers.items()},
                  {k: v for s in schemas for k, v in s.views.items()},
                  {k: v for s in schemas for k, v in s.virtual.items()})


def exercise(parts: list[tuple[sqlite3.Connection, list[int]]], new: list[Migration],
             tables: list[tuple[str | None, str | None]], after_ups: Check, after_downs: Check
             ) -> tuple[Schema, Schema, list[tuple[Shape, Shape]]]:
    """Run `new`'s ups, each group of them (by index, in order) on its own part (`parts`, which it
    closes), then their downs in reverse. `after_ups(before, got)` and `after_downs(before, back)` name
    the tables that are not as they must be (None: all are), on the parts taken together. Returns the
    parts' schema before and after the ups, and each module's shapes."""
    shapes: list[tuple[Shape, Shape]] = [(None, None)] * len(new)
    try:
        befores, gots = [], []
        for part, modules in parts:
            applier = Applier(part)
            befores.append(introspect(part))
            for i in modules:
                old, new_name = tables[i]
                expected = shape(live_table(part, old)) if old else None
                applier.apply(new[i], "up")
                shapes[i] = (expected, shape(live_table(part, new_name)) if new_name else None)
            gots.append(introspect(part))
        before, got = _union(befores), _union(gots)
        wrong = after_ups(before, got)
        if wrong is not None:
            raise GenerateError("internal error: the generated migrations do not reproduce the models' "
                                f"schema (tables: {wrong}); nothing written")
        backs = []
        for part, modules in parts:
            applier = Applier(part)
            for i in reversed(modules):
                applier.apply(new[i], "down")
            backs.append(introspect(part))
        wrong = after_downs(before, _union(backs))
        if wrong is not None:
            raise GenerateError("internal error: the generated `down` steps do not restore the previous "
                                f"schema (tables: {wrong}); nothing written")
    except MigrationFailed as exc:
        raise GenerateError(f"internal error: a generated migration failed on the empty schema: {exc}") from exc
    finally:
        close(parts)
    return before, got, shapes
