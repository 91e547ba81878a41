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

from . import history
from .errors import ConfigurationError
from .generate import GenerateResult, _write, baseline_modules
from .introspect import introspect
from .loader import SNAPSHOT_NAME, load_migration, migration_files
from .lock import run_lock
from .runner import Target

logger = logging.getLogger("tablemigrate")


def baseline(target: Target, directory: Path, *, label: str = "Baseline", now: datetime | None = None,
             lock_timeout: float = 30, write: bool = True) -> GenerateResult:
    conn = target.conn
    lock_path = target.path or Path(f"/tmp/tablemigrate-memory-{target.alias}")
    with run_lock(lock_path, lock_timeout):
        if history.applied(conn):
            raise ConfigurationError("this database already has tablemigrate history; baseline is only for a "
                                     "database without one (use `generate` and `run`)")
        if migration_files(directory):
            raise ConfigurationError(f"{directory} already holds migration modules; baseline writes the first "
                                     "ones (run it with an empty migrations directory)")
        live = introspect(conn)
        if not live.tables:
            raise ConfigurationError("the database has no tables to adopt; use `generate` and `run` instead")
        result = baseline_modules(directory, live, label=label, now=now)
        if not write:
            return result
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
        return result
