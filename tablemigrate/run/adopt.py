"""Adopting every further database: `baseline` when the migration modules already exist.

`baseline` on the developer's database writes the first modules and records them as applied there.
Every other database the team has (production, staging, a teammate's copy), built by the same Django
migrations, is adopted from those modules: its tables must be exactly what the modules up to the
adoption point build (introspected and diffed, as `generate` compares schemas), and its Django
migrations of the owned apps must include those the developer's database had (recorded by `baseline`
in the last of its modules, `adoption_point`); then those modules are recorded as applied, in one
transaction, and `run` applies only the later ones. Anything else is refused, nothing changed, with
the difference named, or with the steps that bring a database that is behind to the adoption point.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from django.db import models

from tablemigrate.errors import ConfigurationError
from tablemigrate.history import applied as history
from tablemigrate.history.loader import Migration, load_migration, migration_files
from tablemigrate.history.status import Target
from tablemigrate.project.fingerprint import model_tables
from tablemigrate.sqlite.changes import summary
from tablemigrate.sqlite.diff import diff_schemas
from tablemigrate.sqlite.introspect import introspect
from tablemigrate.sqlite.schema import Schema
from tablemigrate.sqlite.sqltext import normalize
from tablemigrate.sqlite.transaction import write_transaction

from .drift import history_schema

#: The label `baseline` gives its modules (before the adoption point was recorded, the only mark they have).
BASELINE_LABEL = "Baseline"

DJANGO_MIGRATIONS = "django_migrations"


@dataclass
class AdoptionPoint:
    """The modules `baseline` wrote (the first ones, up to the one holding `adoption_point`), and the
    Django migrations of the owned apps that the database it adopted had applied (None for a history
    baselined before they were recorded: then the tables alone are compared)."""

    modules: list[Migration]
    django: tuple[tuple[str, str], ...] | None

    @property
    def last(self) -> str:
        return self.modules[-1].name


@dataclass
class Adoption:
    """What adopting did: `recorded` the modules recorded as applied (would be, under --dry-run);
    `nothing` why there was nothing to do (already adopted, or no table to adopt)."""

    recorded: list[Migration]
    nothing: str = ""


def django_point(conn: sqlite3.Connection, apps: frozenset[str]) -> list[tuple[str, str]]:
    """The Django migrations of `apps` that `django_migrations` records, in the order they were applied."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                    (DJANGO_MIGRATIONS,)).fetchone() is None:
        return []
    rows = conn.execute(f'SELECT app, name FROM "{DJANGO_MIGRATIONS}" ORDER BY id').fetchall()
    return [(app, name) for app, name in rows if app in apps]


def find_point(migrations: list[Migration]) -> AdoptionPoint | None:
    """The adoption point of a loaded history: up to the first module holding `adoption_point`; for a
    history baselined before that was recorded, the first modules `baseline` wrote in one go (its label,
    one timestamp). None when the history does not start with `baseline`'s modules."""
    for i, m in enumerate(migrations):
        if m.adoption_point is not None:  # the last module `baseline` wrote (its carried data steps included)
            return AdoptionPoint(migrations[:i + 1], m.adoption_point)
    batch = []
    for m in migrations:
        stamp = re.match(r"\d{8}_\d{6}_", m.name)
        if m.label != BASELINE_LABEL or stamp is None or stamp.group() != migrations[0].name[:16]:
            break
        batch.append(m)
    return AdoptionPoint(batch, None) if batch else None


def adoption_point(directory: Path) -> AdoptionPoint:
    """The adoption point of the modules in `directory` (loaded only as far as it), or a refusal."""
    loaded: list[Migration] = []
    for path in migration_files(directory):
        loaded.append(load_migration(path))
        if loaded[-1].adoption_point is not None:
            break
    point = find_point(loaded)
    if point is None:
        raise ConfigurationError(
            f"the migration modules in {directory} do not start with modules `baseline` wrote (no adoption point), "
            "so a database made without tablemigrate cannot be adopted from them; nothing was changed (if "
            "`generate` wrote them for this database, delete them and schema.sql, then run baseline)")
    return point


def differences(expected: Schema, live: Schema, owned: set[str]) -> list[str]:
    """How `live` differs from `expected` (what the history builds), one item per object, in the diff's
    words (from the history to the database). Compared: every table of `expected` and every live table
    of an owned model (`owned`), and the virtual tables, views and triggers `expected` has (others in the
    live database are left alone, as `baseline` left them)."""
    keys = set(expected.tables) | (owned & set(live.tables))
    history_tables = Schema({k: t for k, t in expected.tables.items() if k in keys})
    live_tables = Schema({k: t for k, t in live.tables.items() if k in keys})
    out = []
    for change in diff_schemas(history_tables, live_tables):
        name = change.table.name
        if change.kind == "create":
            out.append(f"table {name} is here, but the modules do not make it")
        elif change.kind == "drop":
            out.append(f"table {name} is missing (the modules make it)")
        else:
            out.append(f"table {name}: " + "; ".join(summary(change.ops)))
    made: list[tuple[str, dict, dict]] = [
        ("virtual table", {k: normalize(v) for k, v in expected.virtual.items()},
         {k: normalize(v) for k, v in live.virtual.items()}),
        ("view", expected.views, live.views), ("trigger", expected.triggers, live.triggers)]
    for noun, theirs, here in made:
        for k, obj in theirs.items():
            name = getattr(obj, "name", k)
            if k not in here:
                out.append(f"{noun} {name} is missing (the modules make it)")
            elif here[k] != obj:
                out.append(f"{noun} {name} differs from the one the modules make")
    return out


def _behind(point: AdoptionPoint, conn: sqlite3.Connection, apps: frozenset[str]) -> str:
    """The refusal for a database whose Django migrations of the owned apps lack some the adoption
    point has ('' when it lacks none): which, and the steps that bring it there."""
    if point.django is None:
        return ""
    applied = set(django_point(conn, apps | {app for app, _name in point.django}))
    lacking = [pair for pair in point.django if pair not in applied]
    if not lacking:
        return ""
    last: dict[str, str] = {}
    for app, name in point.django:  # each app to the last of its migrations at the adoption point
        last[app] = name
    targets = sorted({app for app, _name in lacking})
    commands = "; ".join(f"`manage.py migrate {app} {last[app]}`" for app in targets)
    return (f"this database is behind the adoption point ({point.last}): it lacks the Django migrations "
            f"{', '.join(f'{a}.{n}' for a, n in lacking)}, which the database the modules were written from had "
            "applied; nothing was changed. Bring it there first: check out a commit that still has those "
            f"migrations (before the migrations folders were deleted), run {commands} on this database there "
            f"(if tablemigrate owns {', '.join(targets)} at that commit, `migrate` refuses: for that command set "
            "TABLEMIGRATE_APPS to the apps it should own without them), then come back and run `manage.py "
            "tablemigrate baseline` again")


def record_applied(conn: sqlite3.Connection, migrations: list[Migration], started: float) -> None:
    """Record `migrations` as applied; the caller holds the write transaction."""
    history.ensure(conn)
    for m in migrations:
        history.record(conn, m, "up", time.perf_counter() - started)


def adopt(target: Target, directory: Path, model_list: list[type[models.Model]], apps: frozenset[str], *,
          lock_timeout: float = 30, write: bool = True) -> Adoption:
    """Adopt `target` from the modules in `directory`: `model_list` are the owned models
    (build.managed_models), `apps` the owned apps (ownership). Refuses (ConfigurationError, nothing
    changed) a database that is behind the adoption point or differs from it; does nothing for one
    that already has tablemigrate history or has none of the tables to adopt."""
    conn = target.conn
    applied = history.applied(conn)
    if applied:
        return Adoption([], f"this database already has tablemigrate history ({len(applied)} migrations applied): "
                            "nothing to adopt (`manage.py tablemigrate run` applies what is pending)")
    point = adoption_point(directory)
    expected = history_schema(point.modules)
    owned = model_tables(model_list)
    with target.lock(lock_timeout), (write_transaction(conn) if write else contextlib.nullcontext()):
        started = time.perf_counter()
        if history.applied(conn):  # adopted by another process meanwhile
            return Adoption([], "this database was adopted meanwhile: nothing to adopt")
        live = introspect(conn)
        if not (set(live.tables) & (owned | set(expected.tables))
                or set(live.virtual) & set(expected.virtual) or set(live.views) & set(expected.views)):
            return Adoption([], "this database has none of the tables the migration modules make: nothing to "
                                "adopt (`manage.py tablemigrate run` builds them)")
        behind = _behind(point, conn, apps)
        if behind:
            raise ConfigurationError(behind)
        found = differences(expected, live, owned)
        if found and point.django is not None:
            ahead = [f"{a}.{n}" for a, n in django_point(conn, apps) if (a, n) not in point.django]
            found += [f"Django migrations applied here and not at the adoption point: {', '.join(ahead)}"] * bool(ahead)
        if found:
            raise ConfigurationError(
                f"this database is not what the migration modules up to the adoption point ({point.last}) build, "
                f"so it cannot be adopted; nothing was changed. Differences (from the modules to this database): "
                + "; ".join(found))
        if write:
            record_applied(conn, point.modules, started)
    return Adoption(point.modules)
