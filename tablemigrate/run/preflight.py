"""Everything that can refuse before the database is touched, and what needs a confirmation.

The rehearsal on a schema copy (tablemigrate.run.rehearse), the rule about tables other apps' Django
migrations own, and the data checks on the live rows (tablemigrate.run.datacheck). What needs a human's
confirmation is returned, not asked.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence

from tablemigrate.errors import ConfigurationError, DataCheckFailed, MigrationFailed, NotConfirmed, ObjectExists
from tablemigrate.history import applied as history
from tablemigrate.history.loader import Migration
from tablemigrate.history.status import Target
from tablemigrate.operations import Operation
from tablemigrate.project.build import foreign_tables
from tablemigrate.sqlite.sqltext import quote

from . import datacheck
from .rehearse import Effects, SchemaCopyFailed, StatementKey, rehearse

logger = logging.getLogger("tablemigrate")


def validate(target: Target, migrations: list[Migration], direction: str = "up") -> dict[StatementKey, Effects]:
    """Rehearse the migrations on an empty copy of the live *schema* (tablemigrate.run.rehearse): errors
    surface before anything touches the real database. Returns what each statement does."""
    try:
        return rehearse(target.conn, migrations, direction)
    except MigrationFailed as exc:
        if isinstance(exc, ObjectExists) and not history.applied(target.conn):
            from .adopt import find_point  # lazy: adopt brings the diff and drift, for this refusal only

            point = find_point(migrations) if direction == "up" else None
            how = (f", which checks that they are exactly what the modules up to the adoption point ({point.last}) "
                   "build and records those as applied; then `run` applies the later ones" if point else "")
            raise ConfigurationError(
                f"the database already has tables that tablemigrate did not create ({exc}); adopt "
                f"it with `manage.py tablemigrate baseline`{how} (nothing was changed)") from None
        if isinstance(exc, SchemaCopyFailed):
            raise
        raise type(exc)(f"validation failed, nothing was changed: {exc}") from None


def preflight(target: Target, migrations: list[Migration], direction: str,
              others_write_first: bool = False, explain: bool = True, recheck: bool = False) -> list[Reason]:
    """Everything that can refuse before the database is touched: validation on a schema copy and the
    data checks on the live rows (violations raise). Returns what would need confirming: the losses
    counted in the database, and the destructive flags of the modules that may lose something here (a
    flag says what a module *can* lose; one whose every table it could lose rows from is certainly empty
    when it runs loses nothing: datacheck). `others_write_first`: the run applies Django migrations
    first, which may write rows into tables that are empty now. `explain`: log the flags not asked about.
    `recheck` (a run that will not ask): such a module's first step checks, in its transaction, that the
    live tables counted empty still are (StillEmpty). An `atomic = False` module has no such transaction:
    its flags are always returned."""
    if not migrations:
        return []
    effects = validate(target, migrations, direction)
    _refuse_foreign_tables(target, migrations, direction, effects)
    checked = datacheck.assess(target.conn, migrations, direction, effects, others_write_first)
    violations = [f for f in checked.findings if f.kind == "violation"]
    if violations:
        raise DataCheckFailed("cannot apply, existing rows violate the new schema; nothing was changed: "
                              + "; ".join(map(str, violations)))
    reasons = []
    for m in migrations:
        flags = m.destructive if direction == "up" else m.down_destructive
        # Counted empty is waived only where it is checked again in the steps' own transaction: an
        # `atomic = False` module runs each statement on its own, so a row written after the recheck
        # would be lost unconfirmed. Its flags are asked about as they are for any destructive module.
        if flags and m.name in checked.lose_nothing and m.atomic:
            if recheck:
                _recheck_in_transaction(m, direction, checked.still_empty.get(m.name, []),
                                        checked.still_lossless.get(m.name, []))
            if explain:
                logger.info("%s: nothing to lose on this database (counted: every row and value it could lose "
                            "is not there, checked again when it runs), no confirmation needed for: %s",
                            m.name, "; ".join(flags))
        else:
            reasons += [Reason(m.name, f"{m.name}: {r}") for r in flags]
    return reasons + [Reason(f.migration, f"{f} (found in the database)") for f in checked.findings if f.kind == "loss"]


class StillEmpty(Operation):
    """First step of a migration whose flags were not asked about because its live tables held no row
    (`tables`), or no row or value it could lose (`lossless`, datacheck.Recheck): in its transaction (the
    write lock held) that must still be so, or it fails and rolls back (the application wrote one since
    the data check; run again, and `run` asks). Online (run/online.py), in the first transaction and
    again in the last, which swaps the tables: the application writes while the rows are copied."""

    check_only = True

    def __init__(self, tables: list[str], lossless: Sequence[datacheck.Recheck] = ()):
        self.tables = tables
        self.lossless = lossless

    def __repr__(self) -> str:
        counted = sorted({getattr(r, "table", str(r)) for r in self.lossless})
        return "-- still " + "; ".join(
            ([f"empty: {', '.join(self.tables)}"] if self.tables else [])
            + ([f"nothing to lose in: {', '.join(counted)}"] if counted else []))

    def sql_preview(self) -> list[str]:
        return [repr(self)]

    def apply(self, conn: sqlite3.Connection) -> None:
        for table in self.tables:
            if conn.execute(f"SELECT EXISTS (SELECT 1 FROM {quote(table)})").fetchone()[0]:
                raise NotConfirmed(f"{table} was empty when the data check ran and has rows now, which this "
                                   "migration can lose; nothing of it was applied (run again to confirm)")
        for counted in self.lossless:
            if counted.found(conn):
                raise NotConfirmed(f"{counted.table} held nothing this migration can lose when the data check "
                                   "ran and holds some now; nothing of it was applied (run again to confirm)")


def _recheck_in_transaction(m: Migration, direction: str, tables: list[str],
                            lossless: list[datacheck.Recheck]) -> None:
    steps = m.steps(direction)
    if (tables or lossless) and not (steps and isinstance(steps[0], StillEmpty)):
        steps.insert(0, StillEmpty(tables, lossless))


class Reason(str):
    """A line a human confirms, and the migration it is about."""

    migration: str

    def __new__(cls, migration: str, text: str) -> Reason:
        line = super().__new__(cls, text)
        line.migration = migration
        return line


def unconfirmed(asked: list[Reason], now: list[Reason]) -> list[Reason]:
    """What needs confirming `now` about migrations the human was asked nothing about (their tables got
    rows while the human decided); counts that merely changed were confirmed."""
    names = {r.migration for r in asked}
    return [r for r in now if r.migration not in names]


def _refuse_foreign_tables(target: Target, migrations: list[Migration], direction: str,
                           effects: dict[StatementKey, Effects]) -> None:
    """tablemigrate's modules never touch in SQL a table that its app's Django migrations own: reverting
    the 0.1 module that created `vendor_category` would drop it under Django's recorded history; an ADD
    COLUMN there would vanish in Django's next rebuild of the table; and any statement naming it breaks
    every replay of the history (database A, drift, the test database), which has no such table. What a
    statement names comes from SQLite's authorizer on the schema copy; a module's `table` and its
    operations' tables count too. Data for those tables belongs in a `RunPython` step (never replayed)."""
    foreign = foreign_tables(target.alias)
    if not foreign:
        return
    for m in migrations:
        tables = {m.table.lower()} if m.table else set()
        tables |= {t.lower() for t in (getattr(step, "table", None) for step in m.steps(direction)) if isinstance(t, str)}
        for (name, _step, _index), e in effects.items():
            if name == m.name:
                tables |= e.named
        hit = sorted(tables & foreign)
        if hit:
            verb = "reverting" if direction == "down" else "applying"
            raise ConfigurationError(
                f"{verb} migration {m.name} would use table {hit[0]}, which belongs to an app whose Django "
                "migrations own it; nothing was changed (change it with that app's migrations; write its rows "
                "in a RunPython step)")


def require_confirmation(reasons: list[Reason], allow: bool, confirm: Callable[[str], bool] | None) -> None:
    """Refuse (NotConfirmed) what needs confirming unless allowed, or confirmed (`confirm`: None under
    --noinput, where nothing is)."""
    if reasons and not allow and (confirm is None or not confirm(question(reasons))):
        raise refuse(reasons)


PROMPT = "\nType 'yes' to continue"


def question(reasons: Sequence[str]) -> str:
    """What a human is asked to confirm."""
    return "These migrations can lose data:\n" + "\n".join(f"  - {r}" for r in reasons) + PROMPT


def refuse(reasons: Sequence[str]) -> NotConfirmed:
    return NotConfirmed("refusing destructive migrations without --allow-destructive; nothing was changed ("
                        + "; ".join(reasons) + ")")
