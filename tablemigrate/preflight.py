"""Everything that can refuse before the database is touched: the rehearsal on a schema copy
(tablemigrate.rehearse), the rule about tables other apps' Django migrations own, and the data checks
on the live rows (tablemigrate.datacheck). What needs a human's confirmation is returned, not asked."""

from __future__ import annotations

from . import datacheck, history
from .errors import ConfigurationError, DataCheckFailed, MigrationFailed, NotConfirmed, ObjectExists
from .loader import Migration
from .rehearse import Effects, SchemaCopyFailed, StatementKey, rehearse
from .status import Target


def validate(target: Target, migrations: list[Migration], direction: str = "up") -> dict[StatementKey, Effects]:
    """Rehearse the migrations on an empty copy of the live *schema* (tablemigrate.rehearse): errors
    surface before anything touches the real database. Returns what each statement does."""
    try:
        return rehearse(target.conn, migrations, direction)
    except MigrationFailed as exc:
        if isinstance(exc, ObjectExists) and not history.applied(target.conn):
            raise ConfigurationError(
                f"the database already has tables that tablemigrate did not create ({exc}); adopt "
                "it with `manage.py tablemigrate baseline` (nothing was changed)") from None
        if isinstance(exc, SchemaCopyFailed):
            raise
        raise type(exc)(f"validation failed, nothing was changed: {exc}") from None


def preflight(target: Target, migrations: list[Migration], direction: str) -> list[str]:
    """Everything that can refuse before the database is touched: validation on a schema copy and the
    data checks on the live rows (violations raise). Returns what would need confirming: the modules'
    destructive flags and the losses counted in the database."""
    if not migrations:
        return []
    effects = validate(target, migrations, direction)
    _refuse_foreign_tables(target, migrations, direction, effects)
    findings = datacheck.check(target.conn, migrations, direction, effects)
    violations = [f for f in findings if f.kind == "violation"]
    if violations:
        raise DataCheckFailed("cannot apply, existing rows violate the new schema; nothing was changed: "
                              + "; ".join(map(str, violations)))
    reasons = [f"{m.name}: {r}" for m in migrations
               for r in (m.destructive if direction == "up" else m.down_destructive)]
    return reasons + [f"{f} (found in the database)" for f in findings if f.kind == "loss"]


def _refuse_foreign_tables(target: Target, migrations: list[Migration], direction: str,
                           effects: dict[StatementKey, Effects]) -> None:
    """tablemigrate's modules never touch in SQL a table that its app's Django migrations own: reverting
    the 0.1 module that created `vendor_category` would drop it under Django's recorded history; an ADD
    COLUMN there would vanish in Django's next rebuild of the table; and any statement naming it breaks
    every replay of the history (database A, drift, the test database), which has no such table. What a
    statement names comes from SQLite's authorizer on the schema copy; a module's `table` and its
    operations' tables count too. Data for those tables belongs in a `RunPython` step (never replayed)."""
    from .build import foreign_tables

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


def _refuse(reasons: list[str]) -> NotConfirmed:
    return NotConfirmed("refusing destructive migrations without --allow-destructive; nothing was changed ("
                        + "; ".join(reasons) + ")")
