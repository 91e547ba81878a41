"""What `schema.sql`'s markers tell `generate`: which tables may have changed.

The markers (schemafile.py) give the tables that may have changed, to which database A and B are
narrowed, and the new `schema.sql` made from the blocks of the others.

A table is unchanged when every one of the models' DDL statements its marker lists is among the models'
statements now, and no other statement creates or indexes it: the same statements build the same
table, and when the marker was written they built exactly the table the history makes (the history is
still the one the header records). The statements no marker claims are read with the tokenizer to find
their table. Only the other tables, the changed ones, are built and parsed, on both sides; rename
questions, the diff and the plan (generate.py, the one pipeline) see those alone, which is what they
would find in the whole schemas (an unchanged table has no changes and is no rename candidate). The
modules are verified on the part they reach (verify.py), found from the markers' references; the
unchanged tables keep their blocks in the new `schema.sql`, and the header's fingerprint is computed
from the markers' digests. The result is the whole comparison's (tests/test_partial.py compares both on
random changes); a statement the tokenizer cannot place gives the whole comparison instead (None).
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from tablemigrate.errors import GenerateError
from tablemigrate.history.loader import Recorded, history_checksum
from tablemigrate.history.schemafile import Block, block, render_blocks, statement_key
from tablemigrate.project.build import build_from_models, connect, private_database, raw
from tablemigrate.sqlite.ddl import statement_table
from tablemigrate.sqlite.diff import Renames
from tablemigrate.sqlite.introspect import introspect
from tablemigrate.sqlite.schema import Schema, Table, same_tables

from .verify import close, exercise, groups, mismatch, named_tables


def changed_tables(blocks: dict[str, Block], statements: list[str], foreign: frozenset[str],
                   renames: Renames) -> tuple[set[str], dict[str, list[str]]] | None:
    """The tables that may differ, and the keys of the models' statements that build each table of B
    among them; None when a statement cannot be placed."""
    by_key = {statement_key(s): s for s in statements}
    unchanged = {k for k, b in blocks.items() if b.ddl and all(h in by_key for h in b.ddl)}
    unchanged -= foreign
    claimed = {h for k in unchanged for h in blocks[k].ddl}
    owners: dict[str, list[str]] = {}
    for k in unchanged:
        owners[k] = list(blocks[k].ddl)
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
    unchanged -= {k for k in unchanged if renames.tables.keys() & set(blocks[k].refs)}
    changed = (blocks.keys() | owners.keys()) - unchanged - foreign
    return changed, {k: owners[k] for k in changed if k in owners}


@dataclass
class Narrowed:
    """Database A and B narrowed to the changed tables: `a` and `b` are what the diff sees, `part` the
    part of A the changed tables reach (an in-memory database: whoever uses it closes it). The modules
    are verified on parts of it built anew, a group of modules at a time (`parts`)."""

    blocks: dict[str, Block]
    changed: set[str]
    b_owners: dict[str, list[str]]  # the keys of the models' statements that build each changed table of B
    foreign: frozenset[str]  # tables of apps that keep their Django migrations
    ddl: str  # the digest of the models' DDL
    recorded: list[Recorded]  # the history schema.sql records, as on disk
    fingerprint: Callable[[], str]  # the models'
    a: Schema
    b: Schema
    part: sqlite3.Connection

    def marker_ddl(self, k: str, table: Table) -> list[str]:
        """The models' statements that build `table` exactly, for its marker."""
        if k in self.foreign:  # no model of tablemigrate's builds it
            return []
        if k in self.b.tables:
            return self.b_owners.get(k, []) if same_tables({k: table}, {k: self.b.tables[k]}) else []
        return [] if k in self.changed else list(self.blocks[k].ddl)

    def kept(self, blk: Block) -> Block:
        """An unchanged block, as the whole comparison writes it."""
        return dataclasses.replace(blk, ddl=()) if blk.key in self.foreign and blk.ddl else blk

    def render(self, new_blocks: dict[str, Block], history: list) -> str:
        # Every table is the models' (unchanged ones, and the changed ones checked), and B has no other
        # table: the models' DDL builds exactly this schema, unless the history also keeps tables of
        # apps that keep their Django migrations.
        ddl = None if new_blocks.keys() & self.foreign else self.ddl
        return render_blocks(new_blocks, history_checksum(history), self.fingerprint(), ddl)

    def unchanged_snapshot(self) -> str:
        """The new `schema.sql` when the diff found nothing: the changed tables' blocks as A has them."""
        new_blocks = {k: self.kept(blk) for k, blk in self.blocks.items()}
        for k in self.changed & self.a.tables.keys():
            new_blocks[k] = block(self.a.tables[k], self.marker_ddl(k, self.a.tables[k]))
        return self.render(new_blocks, self.recorded)

    def parts(self, tables: list) -> list[tuple[sqlite3.Connection, list[int]]]:
        """The modules naming `tables`, a group at a time (verify.groups), each group with a new database
        holding the tables it reaches (their blocks' statements, as the part was built)."""
        named = named_tables(tables)
        parts: list[tuple[sqlite3.Connection, list[int]]] = []
        try:
            for modules in groups(named, lambda names: reach(self.blocks, names)):
                part = build_part(self.blocks, sorted(reach(self.blocks, set().union(*(named[i] for i in modules)))))
                if part is None:  # a subset of the statements that built the part
                    raise GenerateError("internal error: the part of database A a group of the new modules "
                                        "reaches cannot be built; nothing written")
                parts.append((part, modules))
        except BaseException:
            close(parts)
            raise
        return parts

    def check(self, checked: list, tables: list):
        """generate.Checker on the part: the modules take it to B's tables, and back."""
        touched = {t.lower() for pair in tables for t in pair if t}
        a, b = self.a, self.b

        def after_ups(before: Schema, got: Schema) -> str | None:
            # The tables of apps that keep their Django migrations are left out, as the whole comparison
            # leaves them out (a RENAME of the table they reference rewrites them).
            want = {k: t for k, t in before.tables.items() if k not in self.changed and k not in self.foreign}
            want.update((k, t) for k, t in b.tables.items() if k in before.tables or k in touched)
            mine = got.without(self.foreign).tables
            return None if same_tables(mine, want) else mismatch(mine, want)

        def after_downs(before: Schema, back: Schema) -> str | None:
            return None if same_tables(back.tables, before.tables) else mismatch(back.tables, before.tables)

        before, got, shapes = exercise(self.parts(tables), checked, tables, after_ups, after_downs)
        untouched = {k: a.tables[k] for k in self.changed - before.tables.keys() - touched if k in a.tables}
        if not same_tables(untouched, {k: b.tables[k] for k in untouched if k in b.tables}):
            raise GenerateError("internal error: tables without a migration differ from the models' "
                                f"({mismatch(untouched, b.tables)}); nothing written")
        new_blocks = {k: self.kept(v) for k, v in self.blocks.items() if k not in before.tables}
        for k, t in {**untouched, **got.tables}.items():
            new_blocks[k] = block(t, self.marker_ddl(k, t))
        return shapes, lambda new: self.render(new_blocks, self.recorded + new)


def narrow(blocks: dict[str, Block], statements: list[str], ddl: str, recorded: list[Recorded],
           foreign: frozenset[str], fingerprint: Callable[[], str], renames: Renames) -> Narrowed | None:
    """A and B on the tables the markers do not show unchanged (see the module docstring), or None: the
    whole comparison is needed."""
    found = changed_tables(blocks, statements, foreign, renames)
    if found is None:
        return None
    changed, b_owners = found
    b_keys = {h for keys in b_owners.values() for h in keys}
    with private_database() as b_db:  # its own: the whole comparison builds all of B in the caller's
        build_from_models(b_db, [], [s for s in statements if statement_key(s) in b_keys])  # Django's order
        b_conn = raw(b_db)
        outside = {n for k, blk in blocks.items() if k not in changed for n in (k, *blk.indexes)}
        if any(name.lower() in outside for (name,) in b_conn.execute("SELECT name FROM sqlite_master")):
            return None  # a new table or index takes the name of an unchanged table's: the full build says so
        b = introspect(b_conn)
    # The part of database A the changed tables reach (verify.py), which holds them: built before any
    # question is asked, for the diff (a block SQLite does not run gives the whole comparison, here).
    part = build_part(blocks, sorted(reach(blocks, changed)))
    if part is None:
        return None
    try:
        whole_part = introspect(part)
    except BaseException:
        part.close()
        raise
    a = Schema({k: t for k, t in whole_part.tables.items() if k in changed})
    return Narrowed(blocks, changed, b_owners, foreign, ddl, recorded, fingerprint, a, b, part)


def reach(blocks: dict[str, Block], touched: set[str]) -> set[str]:
    """`verify.reach` on the markers' references: the tables touched, the tables whose foreign keys
    point at them (SQLite's RENAME rewrites those), and the parents of all of these."""
    names = touched & blocks.keys()
    names |= {k for k, b in blocks.items() if names.intersection(b.refs)}
    for k in list(names):
        names |= set(blocks[k].refs) & blocks.keys()
    return names


def build_part(blocks: dict[str, Block], keys: list[str]) -> sqlite3.Connection | None:
    """A new in-memory database holding the tables `keys`, by their blocks' statements; None when
    SQLite does not run them (a text written by an older version: the whole comparison replays the
    history instead, as it does for such a `schema.sql`)."""
    conn = connect(isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.executescript("BEGIN;\n" + "".join(blocks[k].text for k in keys) + "COMMIT;")
    except sqlite3.Error:
        conn.close()
        return None
    return conn
