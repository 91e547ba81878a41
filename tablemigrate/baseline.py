"""`baseline`: adopt a database that tablemigrate did not create (Django's `migrate`, or by hand).

Writes the migration modules that create the database's current tables, proves (by replaying them
into an empty database) that they reproduce it exactly, and records them as applied in the same
database, inside one transaction. A later `generate` then diffs the models against that history.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from pathlib import Path

from django.db import models

from . import history
from .errors import ConfigurationError
from .fingerprint import models_fingerprint, with_m2m_tables
from .generate import GenerateResult, baseline_modules, models_schema, write_result
from .introspect import introspect
from .loader import SNAPSHOT_NAME, load_migration, migration_files
from .lock import run_lock
from .runner import Target
from .schema import Schema

logger = logging.getLogger("tablemigrate")


def model_tables(model_list: list[type[models.Model]]) -> set[str]:
    """Lower-case names of the tables the models own (auto-created m2m tables included)."""
    return {m._meta.db_table.lower() for m in with_m2m_tables(model_list)}


def baseline(target: Target, directory: Path, model_list: list[type[models.Model]], *, label: str = "Baseline",
             now: datetime | None = None, lock_timeout: float = 30, write: bool = True,
             foreign: frozenset[str] = frozenset()) -> tuple[GenerateResult, list[str]]:
    """`model_list`: the models of the apps tablemigrate owns (build.managed_models); `foreign`: tables of
    the apps whose Django migrations own them (build.foreign_tables). Returns the modules and what the
    modules leave out, one line per kind: other apps' tables, tables no owned model has, and the
    triggers, views and virtual tables (which the modules do not reproduce on a new database)."""
    conn = target.conn
    lock_path = target.path or Path(f"/tmp/tablemigrate-memory-{target.alias}")
    with run_lock(lock_path, lock_timeout):
        if history.applied(conn):
            raise ConfigurationError("this database already has tablemigrate history; baseline is only for a "
                                     "database without one (use `generate` and `run`)")
        if migration_files(directory):
            raise ConfigurationError(f"{directory} already holds migration modules; baseline writes the first "
                                     "ones: if `generate` wrote them for this database, delete them (and "
                                     "schema.sql), then run baseline")
        everything = introspect(conn)
        owned = model_tables(model_list)
        left_alone = _left_out(conn, everything, owned, foreign)
        live = Schema({k: t for k, t in everything.tables.items() if k in owned})
        if not live.tables:
            raise ConfigurationError("the database has no tables of this project's models to adopt; use "
                                     "`generate` and `run` instead")
        # When the models already match the database, record their fingerprint (system check W002).
        fingerprint = models_fingerprint(model_list) if models_schema(model_list).tables == live.tables else None
        result = baseline_modules(directory, live, label=label, now=now, fingerprint=fingerprint)
        if not write:
            return result, left_alone
        write_result(result)
        written = [directory / f"{m.name}.py" for m in result.modules] + [directory / SNAPSHOT_NAME]
        started = time.perf_counter()
        try:
            migrations = [load_migration(p) for p in written[:-1]]
            conn.execute("BEGIN IMMEDIATE")
            try:
                history.ensure(conn)
                for m in migrations:
                    history.record(conn, m, "up", time.perf_counter() - started)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except BaseException:  # leave no modules behind that the database does not record
            for path in written:
                path.unlink(missing_ok=True)
            raise
        logger.info("baseline: %d migration modules written to %s and recorded as applied",
                    len(migrations), directory)
        return result, left_alone


def _left_out(conn, everything: Schema, owned: set[str], foreign: frozenset[str]) -> list[str]:
    """What baseline's modules do not reproduce, each kind on one line (for the command to print)."""
    theirs = sorted(t.name for k, t in everything.tables.items() if k not in owned and k in foreign)
    nobodys = sorted(t.name for k, t in everything.tables.items() if k not in owned and k not in foreign)
    # Objects made by SQL, except those of other apps' tables: their Django migrations make them.
    made_by_sql = [f"trigger {t.name}" for _k, t in sorted(everything.triggers.items()) if t.table not in foreign]
    made_by_sql += [f"view {v.name}" for k, v in sorted(everything.views.items()) if k not in foreign]
    made_by_sql += [f"virtual table {name}" for name in sorted(everything.virtual) if name not in foreign]
    lines = []
    if theirs:
        lines.append("left alone, their apps' Django migrations own them: " + ", ".join(theirs))
    if nobodys:
        lines.append("left alone, no model of yours owns them (unmanaged models, made by hand): " + ", ".join(nobodys))
    if made_by_sql:
        lines.append("kept in this database but not in the modules (copy their SQL into a hand-written module "
                     "for new databases): " + ", ".join(made_by_sql))
    return lines
