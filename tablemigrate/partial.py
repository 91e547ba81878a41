"""`generate` on the changed tables only, when `schema.sql`'s markers can be trusted (schemafile.py).

A table is unchanged when every one of the models' DDL statements its marker lists is among the models'
statements now, and no other statement creates or indexes it: the same statements build the same
table, and when the marker was written they built exactly the table the history makes (the history is
still the one the header records). The statements no marker claims are read with the tokenizer to find
their table. Only the other tables, the changed ones, are built and parsed, on both sides; rename
questions, the diff and the plan see those alone, which is what they would find in the whole schemas
(an unchanged table has no changes and is no rename candidate). The modules are verified on the part
they reach (verify.py), found from the markers' references; the unchanged tables keep their blocks in
the new `schema.sql`, and the header's fingerprint is computed from the markers' digests. The result is
the full comparison's (tests/test_partial.py compares both on random changes); a statement the
tokenizer cannot place gives the full comparison instead (None).
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .build import FieldDefaults, build_from_models, private_database, raw
from .diff import Renames, rename_candidates
from .errors import GenerateError
from .introspect import introspect
from .loader import Recorded, history_checksum
from .plan import plan_changes
from .schema import Schema, Table, same_tables
from .ddl import statement_table
from .schemafile import Block, block, render_blocks, statement_key
from .verify import exercise, mismatch

#: Off: every `generate` compares the whole schemas (the tests compare both ways).
ENABLED = True


@dataclass
class Inputs:
    directory: Path
    blocks: dict[str, Block]  # schema.sql's tables, by lower-case name
    header: dict[str, str]
    statements: list[str]  # the models' DDL
    ddl: str  # its digest
    b_db: object  # the private database B is built on (Django's wrapper)
    model_list: list
    recorded: list[Recorded]  # the history schema.sql records, as on disk
    foreign: frozenset[str]  # tables of apps that keep their Django migrations
    fingerprint: Callable[[], str]  # the models'


def _changed_tables(inputs: Inputs, renames: Renames) -> tuple[set[str], dict[str, list[str]]] | None:
    """The tables that may differ, and the keys of the models' statements that build each table of B
    among them; None when a statement cannot be placed."""
    by_key = {statement_key(s): s for s in inputs.statements}
    unchanged = {k for k, b in inputs.blocks.items() if b.ddl and all(h in by_key for h in b.ddl)}
    unchanged -= inputs.foreign
    claimed = {h for k in unchanged for h in inputs.blocks[k].ddl}
    owners: dict[str, list[str]] = {}
    for k in unchanged:
        owners[k] = list(inputs.blocks[k].ddl)
    for h, statement in by_key.items():
        if h not in claimed:
            table = statement_table(statement)
            if table is None:
                return None
            owners.setdefault(table.lower(), []).append(h)
            unchanged.discard(table.lower())
    unchanged -= set(renames.tables) | set(renames.tables.values()) | set(renames.columns)
    # A child of a renamed table follows it (and its many-to-many columns with it: diff.carry_renames),
    # even where a new model's table of the freed name has the very same statements.
    unchanged -= {k for k in unchanged if renames.tables.keys() & set(inputs.blocks[k].refs)}
    changed = (inputs.blocks.keys() | owners.keys()) - unchanged - inputs.foreign
    return changed, {k: owners[k] for k in changed if k in owners}


def generate(inputs: Inputs, renames: Renames, questioner, label: str, now: datetime):
    """`generate`'s result from the changed tables (see the module docstring), or None."""
    found = _changed_tables(inputs, renames)
    if found is None:
        return None
    with private_database() as b_db:  # its own: the full comparison builds all of B in `inputs.b_db`
        return _generate(inputs, renames, questioner, label, now, *found, b_db)


def _generate(inputs: Inputs, renames: Renames, questioner, label: str, now: datetime, changed: set[str],
              b_owners: dict[str, list[str]], b_db):
    from .generate import GenerateResult, _changes, _hint_renames, _modules, _stale_snapshot, _values, follow_models

    blocks = inputs.blocks
    b_keys = {h for keys in b_owners.values() for h in keys}
    b_statements = [s for s in inputs.statements if statement_key(s) in b_keys]  # Django's order
    build_from_models(b_db, [], b_statements)
    b_conn = raw(b_db)
    outside = {n for k, blk in blocks.items() if k not in changed for n in (k, *blk.indexes)}
    if any(name.lower() in outside for (name,) in b_conn.execute("SELECT name FROM sqlite_master")):
        return None  # a new table or index takes the name of an unchanged table's: the full build says so
    b = introspect(b_conn)
    # The part of database A the modules can reach (verify.py), which holds the changed tables: built
    # once, before any question is asked, for the diff and then for the verification.
    part = _built(blocks, sorted(reach(blocks, changed)))
    if part is None:
        return None
    try:
        whole_part = introspect(part)
    except BaseException:
        part.close()
        raise
    a = Schema({k: t for k, t in whole_part.tables.items() if k in changed})
    try:
        changes = _changes(a, b, renames, questioner, inputs.model_list)
    except BaseException:
        part.close()
        raise

    def marker_ddl(k: str, table: Table) -> list[str]:
        """The models' statements that build `table` exactly, for its marker."""
        if k in inputs.foreign:  # no model of tablemigrate's builds it
            return []
        if k in b.tables:
            return b_owners.get(k, []) if same_tables({k: table}, {k: b.tables[k]}) else []
        return [] if k in changed else list(blocks[k].ddl)

    def kept(blk: Block) -> Block:
        """An unchanged block, as the full comparison writes it."""
        return dataclasses.replace(blk, ddl=()) if blk.key in inputs.foreign and blk.ddl else blk

    def with_ddl_line(new_blocks: dict[str, Block]) -> str | None:
        # Every table is the models' (unchanged ones, and the changed ones checked), and B has no other
        # table: the models' DDL builds exactly this schema, unless the history also keeps tables of
        # apps that keep their Django migrations.
        return None if new_blocks.keys() & inputs.foreign else inputs.ddl

    history = history_checksum(inputs.recorded)
    if not changes:
        part.close()
        new_blocks = {k: kept(blk) for k, blk in blocks.items()}
        for k in changed & a.tables.keys():
            new_blocks[k] = block(a.tables[k], marker_ddl(k, a.tables[k]))
        stale = _stale_snapshot(inputs.directory, inputs.header, inputs.recorded, inputs.header["schema"],
                                inputs.fingerprint, True)
        return GenerateResult([], inputs.directory, lambda: render_blocks(
            new_blocks, history, inputs.fingerprint(), with_ddl_line(new_blocks)), stale)

    try:
        unasked = [] if questioner.interactive else rename_candidates(a, b, renames)
        values = _values(changes, FieldDefaults(inputs.b_db, inputs.model_list), questioner, unasked)
        plans = plan_changes(changes, values)
        _hint_renames(plans, unasked)
        follow_models(plans, renames)
    except BaseException:
        part.close()
        raise

    def check(checked: list, tables: list):
        touched = {t.lower() for pair in tables for t in pair if t}

        def after_ups(before: Schema, got: Schema) -> str | None:
            # The tables of apps that keep their Django migrations are left out, as the full comparison
            # leaves them out (a RENAME of the table they reference rewrites them).
            want = {k: t for k, t in before.tables.items() if k not in changed and k not in inputs.foreign}
            want.update((k, t) for k, t in b.tables.items() if k in before.tables or k in touched)
            mine = got.without(inputs.foreign).tables
            return None if same_tables(mine, want) else mismatch(mine, want)

        def after_downs(before: Schema, back: Schema) -> str | None:
            return None if same_tables(back.tables, before.tables) else mismatch(back.tables, before.tables)

        before, got, shapes = exercise(part, checked, tables, after_ups, after_downs)
        untouched = {k: a.tables[k] for k in changed - before.tables.keys() - touched if k in a.tables}
        if not same_tables(untouched, {k: b.tables[k] for k in untouched if k in b.tables}):
            raise GenerateError("internal error: tables without a migration differ from the models' "
                                f"({mismatch(untouched, b.tables)}); nothing written")
        new_blocks = {k: kept(v) for k, v in blocks.items() if k not in before.tables}
        for k, t in {**untouched, **got.tables}.items():
            new_blocks[k] = block(t, marker_ddl(k, t))

        def snapshot(new: list) -> str:
            return render_blocks(new_blocks, history_checksum(inputs.recorded + new), inputs.fingerprint(),
                                 with_ddl_line(new_blocks))
        return shapes, snapshot

    return _modules(inputs.directory, plans, label, now, inputs.recorded, check)


def reach(blocks: dict[str, Block], touched: set[str]) -> set[str]:
    """`verify.reach` on the markers' references: the tables touched, the tables whose foreign keys
    point at them (SQLite's RENAME rewrites those), and the parents of all of these."""
    names = touched & blocks.keys()
    names |= {k for k, b in blocks.items() if names.intersection(b.refs)}
    for k in list(names):
        names |= set(blocks[k].refs) & blocks.keys()
    return names


def _built(blocks: dict[str, Block], keys: list[str]) -> sqlite3.Connection | None:
    """A new in-memory database holding the tables `keys`, by their blocks' statements; None when
    SQLite does not run them (a text written by an older version: the full comparison replays the
    history instead, as it does for such a `schema.sql`)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.executescript("BEGIN;\n" + "".join(blocks[k].text for k in keys) + "COMMIT;")
    except sqlite3.Error:
        conn.close()
        return None
    return conn
