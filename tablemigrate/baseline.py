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
from .generate import GenerateResult, _write, baseline_modules, models_schema
from .introspect import introspect, sql_made_tables
from .loader import SNAPSHOT_NAME, load_migration, migration_files
from .lock import run_lock
from .runner import Target
from .schema import Schema

logger = logging.getLogger("tablemigrate")


def model_tables(model_list: list[type[models.Model]]) -> set[str]:
    """Lower-case names of the tables the models own (auto-created m2m tables included)."""
    return {m._meta.db_table.lower() for m in with_m2m_tables(model_list)}


def baseline(target: Target, directory: Path, model_list: list[type[models.Model]], *, label: str = "Baseline",
             now: datetime | None = None, lock_timeout: float = 30, write: bool = True) -> tuple[GenerateResult, list[str]]:
    """`model_list`: the models of the apps tablemigrate owns (build.managed_models). Returns the
    modules and the live tables left alone: tables of apps whose Django migrations own them, of
    unmanaged models, made by hand, and owned models' virtual tables and views."""
    conn = target.conn
    lock_path = target.path or Path(f"/tmp/tablemigrate-memory-{target.alias}")
    with run_lock(lock_path, lock_timeout):
        if history.applied(conn):
            raise ConfigurationError("this database already has tablemigrate history; baseline is only for a "
                                     "database without one (use `generate` and `run`)")
        if migration_files(directory):
            raise ConfigurationError(f"{directory} already holds migration modules; baseline writes the first "
                                     "ones (run it with an empty migrations directory)")
        everything = introspect(conn)
        owned = model_tables(model_list)
        left_alone = sorted(t.name for k, t in everything.tables.items() if k not in owned)
        # A model of the project standing for a virtual table (FTS5) or a view made by SQL: not a table
        # the models describe; it stays as it is, and a hand-written module makes it on new databases.
        left_alone += sorted(f"{name} (a virtual table or view made by SQL)" for name in sql_made_tables(conn) & owned)
        live = Schema({k: t for k, t in everything.tables.items() if k in owned})
        if not live.tables:
            raise ConfigurationError("the database has no tables of this project's models to adopt; use "
                                     "`generate` and `run` instead")
        # When the models already match the database, record their fingerprint (system check W002).
        fingerprint = models_fingerprint(model_list) if models_schema(model_list).tables == live.tables else None
        result = baseline_modules(directory, live, label=label, now=now, fingerprint=fingerprint)
        if not write:
            return result, left_alone
        _write(result)
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
