"""What a module expects to find: the shape of its table before `up` (and after, for `down`).

A generated module records, beside its steps, the table it changes as it was when the module was
generated (`before`) and as the module leaves it (`after`): the table's name, its columns in order, and
a fingerprint of its structure (columns, keys, constraints; not its indexes, which a rebuild carries
over from the live database whatever they are). Before a module runs, on the schema copy of the
rehearsal and when `generate` replays the history, the table must be in that shape. Otherwise another
module changed the table after this one was generated (two branches, merged), and the module's steps,
a rebuild above all, would silently undo that change: a column another branch added would be dropped
with its values. The module is refused instead (exit 2, nothing changed), naming the difference.

Modules without `before`/`after` (hand-written, or generated before module format 1) are not checked.
"""

from __future__ import annotations

import hashlib
import sqlite3
from typing import Any

from tablemigrate.errors import ShapeMismatch

from .introspect import introspect_table
from .schema import Table


def fingerprint(table: Table) -> str:
    """The structure of `table` without its indexes, in module format 1's words: each column (name, as
    the table spells it, lower-cased; declared type; NOT NULL; default; place in the primary key;
    collation; generated expression and kind), the primary key, AUTOINCREMENT, STRICT, WITHOUT ROWID,
    the foreign keys, UNIQUE and CHECK constraints. Independent of layout and of name case.

    Written out field by field, not from the schema classes, so that it stays what committed modules
    recorded when those classes grow: a change here is a new module format (docs/modules.md)."""
    columns = [(k, c.type, c.notnull, c.default, c.pk, c.collation, c.generated, c.generated_kind)
               for k, c in sorted(table.columns.items())]
    foreign_keys = sorted((fk.columns, fk.ref_table, fk.ref_columns, fk.on_update, fk.on_delete, fk.match,
                           fk.deferred) for fk in table.foreign_keys)
    uniques = sorted((u.columns, u.name or "") for u in table.uniques)
    checks = sorted((c.expr, c.name or "") for c in table.checks)
    canonical = ("shape/1", columns, table.primary_key, table.autoincrement, table.strict, table.without_rowid,
                 foreign_keys, uniques, checks)
    return hashlib.sha256(repr(canonical).encode()).hexdigest()


def shape(table: Table | None) -> dict[str, Any] | None:
    """What a module records about its table (None: no table, as before a create or after a drop)."""
    if table is None:
        return None
    return {"table": table.name, "columns": table.column_names(), "types": _types(table),
            "references": _references(table), "fingerprint": fingerprint(table)}


def _types(table: Table) -> list[str]:
    """Each column's declared type and NOT NULL, in column order: named in a refusal."""
    from .changes import display_type  # lazy: `run` loads shapes; the changes only word a refusal

    return [display_type(c.type) + (" NOT NULL" if c.notnull else "") for c in table.columns.values()]


def _references(table: Table) -> list[str]:
    """The tables its foreign keys reference (lower-case, sorted): named in a refusal, since a table
    renamed on another branch changes this table's keys without a module of its own."""
    return sorted({fk.ref_table for fk in table.foreign_keys})


def live_table(conn: sqlite3.Connection, name: str) -> Table | None:
    """The table `name` of `conn`'s main database as tablemigrate reads it, or None."""
    row = conn.execute("SELECT name, sql FROM main.sqlite_master WHERE type = 'table' AND lower(name) = lower(?)",
                       (name,)).fetchone()
    if row is None:
        return None
    indexes = conn.execute("SELECT name, sql FROM main.sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                           "AND lower(tbl_name) = lower(?) ORDER BY name", (name,)).fetchall()
    return introspect_table(conn, row[0], row[1], [(n, s) for n, s in indexes])


def check(conn: sqlite3.Connection, migration: Any, direction: str) -> None:
    """Raise ShapeMismatch unless the table `migration` changes is in the shape it expects before
    `direction` runs: `before` for up, `after` for down."""
    refused = refusal(conn, migration, direction)
    if refused:
        raise ShapeMismatch(refused, migration.name)


def refusal(conn: sqlite3.Connection, migration: Any, direction: str) -> str | None:
    """Why `check` would refuse `migration` on `conn` now (None: it would not)."""
    expected = migration.before if direction == "up" else migration.after
    if not expected:
        return None
    live = live_table(conn, expected["table"])
    if live is not None and fingerprint(live) == expected["fingerprint"]:
        return None
    return f"{_difference(live, expected, migration.name)}; nothing was changed. " + _advice(migration.name, direction)


def _difference(live: Table | None, expected: dict[str, Any], module: str) -> str:
    name = expected["table"]
    if live is None:
        return f"{module} expects table {name}, which the database does not have"
    have = {c.lower(): c for c in live.column_names()}
    want = {c.lower(): c for c in expected["columns"]}
    extra = [have[k] for k in have if k not in want]
    missing = [want[k] for k in want if k not in have]
    parts = []
    if extra:
        parts.append(f"{name} has column{'s' if len(extra) > 1 else ''} {', '.join(extra)} that {module} did not "
                     "expect")
    if missing:
        parts.append(f"{name} lacks column{'s' if len(missing) > 1 else ''} {', '.join(missing)} that {module} "
                     "expects")
    expected_types = expected.get("types")
    if not parts and expected_types is not None and len(expected_types) == len(expected["columns"]):
        now = dict(zip((c.lower() for c in live.column_names()), _types(live)))
        parts += [f"{name}.{column} is {now[column.lower()]} where {module} expects {was}"
                  for column, was in zip(expected["columns"], expected_types) if now.get(column.lower()) != was]
    expected_refs = expected.get("references")
    if not parts and expected_refs is not None and _references(live) != expected_refs:
        parts.append(f"{name}'s foreign keys reference {', '.join(_references(live)) or 'no table'} where {module} "
                     f"expects {', '.join(expected_refs) or 'none'} (a table they reference was renamed or replaced "
                     "since)")
    if not parts:
        parts.append(f"{name} is not in the shape {module} expects (a column's type, NULL, default or collation, "
                     "a key or a constraint differs)")
    return "; ".join(parts)


def _advice(module: str, direction: str) -> str:
    if direction == "up":
        return (f"Another migration changed the table after {module} was generated (branches merged?): if "
                f"{module} is not applied anywhere, delete it and run `manage.py tablemigrate generate` again")
    return f"The table is no longer as {module} left it: revert the migrations that changed it since, first"
