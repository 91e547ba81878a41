"""Applying a run's migrations under the runner lock, and recovering from a failure.

Back up (verified) -> the other apps' Django migrations (tablemigrate.project.djangoapps) -> each module in its
own transaction (history re-checked inside it) -> on failure, restore the backup unless other
connections wrote since it was taken, and say exactly what state the database is in.

A crash-looping deploy (a migration failing on every start while the application writes) must not
prune away the state from before it: the first failed run's backup is pinned (`backup.pin`) until a
run succeeds, and pruning keeps it. A failed run still prunes (each start takes a new full copy, which
would otherwise fill the disk): the newest `keep` backups, one of which is the pinned one.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from tablemigrate import signals
from tablemigrate.backups import backup as backups
from tablemigrate.errors import DatabaseLocked, MigrationFailed, MigrationInterrupted, TablemigrateError, is_busy
from tablemigrate.history import applied as history
from tablemigrate.history.loader import Migration
from tablemigrate.history.status import Target, history_names
from tablemigrate.project import djangoapps
from tablemigrate.sqlite.sqltext import user_objects

from . import contenttypes, online, space
from .apply import Applier

logger = logging.getLogger("tablemigrate")


@dataclass
class Work:
    """What one run or revert does: the pending Django migrations of the apps tablemigrate does not own
    (applied first), then tablemigrate's own modules."""

    migrations: list[Migration]
    django: djangoapps.DjangoPlan = field(default_factory=djangoapps.DjangoPlan)

    @property
    def names(self) -> list[str]:
        return self.django.names + [m.name for m in self.migrations]

    def __bool__(self) -> bool:
        return bool(self.migrations or self.django)


@dataclass(frozen=True)
class Found:
    """What the database held when a migration started: the migrations recorded (tablemigrate's history
    and Django's recorder) and the schema. Recovery compares the database with it: a schema that changed
    while the records did not is a migration that committed without its record."""

    history: list[str]
    schema: list[tuple]

    @classmethod
    def read(cls, conn: sqlite3.Connection) -> Found:
        """An online rebuild's private tables and triggers are not the schema: one that could not drop
        them (disk full) left no migration committed, and the next run drops them."""
        private = {name for _kind, name in online.leftovers(conn)}
        return cls(history_names(conn), [row for row in conn.execute(
            f"SELECT type, name, tbl_name, sql FROM main.sqlite_master WHERE {user_objects()} "
            "ORDER BY type, name") if row[1] not in private and row[2] not in private])

    def unrecorded_change(self, now: Found) -> bool:
        return now.history == self.history and now.schema != self.schema


@dataclass(frozen=True)
class DjangoApplied:
    """A Django migration that a run applied (`run` returns these before its own modules)."""

    name: str


def apply_all(target: Target, work: Work, direction: str, take_backup: bool, keep: int,
              announce: djangoapps.MigrateSignals | None = None) -> list[Migration | DjangoApplied]:
    """Back up, apply (the Django migrations first), restore on failure; the caller holds the runner
    lock. `announce`: send Django's pre_migrate once, after the backup and before the first migration,
    with the whole run's plan (otherwise each batch of Django migrations is announced on its own).
    Returns what was applied."""
    conn = target.conn
    if target.path is not None:  # before the first byte is written: the backup and the rebuilds fit
        space.check(conn, target.path, target.backups_dir if take_backup else None, work.migrations, direction)
    history.ensure(conn)
    online.clean_leftovers(conn)  # of an online rebuild killed mid-copy: before the backup copies them
    names = work.names
    writers = OtherWriters(conn)  # from before the backup: a commit during the copy counts too
    applier = Applier(conn, _RunBookkeeping(target.alias, writers), online=True)
    before = found = Found.read(conn)
    saved = None
    pinned_here = False
    if take_backup:
        saved = target.backups_dir / backups.backup_name(target.path or Path(target.alias))
        backups.take_backup(conn, saved)
        logger.info("migration backup written to %s", saved)
        pinned_here = _pin_unless_pinned(target, saved)
    signals.pre_run.send(sender=Migration, database=target.alias, direction=direction, migrations=names)
    started = time.perf_counter()
    error: BaseException | None = None
    done: list[Migration | DjangoApplied] = []
    running = ""
    partial = False

    def starting(what: str, atomic: bool) -> None:  # `partial`: the one running is not atomic
        nonlocal running, partial, found
        running, partial, found = what, not atomic, Found.read(conn)

    def django_running(name: str, atomic: bool) -> None:
        starting(f"Django migration {name}", atomic)

    try:
        first, more = work.django.split()
        state = djangoapps.state_before(first)
        if announce is not None:
            announce.pre(first.steps + contenttypes.post_migrate_plan(work.migrations, direction == "down")
                         + work.django.steps[len(first.steps):], state.apps if state else None)
        done.extend(DjangoApplied(n) for n in djangoapps.apply(first, on_migration=django_running,
                                                                announced=announce is not None, state=state))
        for m in work.migrations:
            starting(f"migration {m.name} ({direction})", m.atomic)
            if _apply_one(target, applier, m, direction):
                done.append(m)
        if more:  # Django migrations that depend on an owned app: planned again, now its tables exist
            then = djangoapps.plan(work.django.wrapper, work.django.own, quick=False)
            if announce is not None:
                djangoapps.as_announced(then, work.django.steps)
            done.extend(DjangoApplied(n) for n in djangoapps.apply(then, on_migration=django_running,
                                                                    announced=announce is not None))
    except BaseException as exc:
        error = exc
        # A failing Django migration that is not atomic (`atomic = False`) may have changed the
        # database although Django recorded nothing (`partial`): then the backup is restored too.
        failure = recover(target, exc, before.history, saved, writers, running, partial, found)
        if isinstance(failure, DatabaseLocked) and pinned_here and target.path is not None and \
                _as_found(conn, before):  # not a failed run (nothing is wrong with it), and it left no trace
            backups.unpin(target.backups_dir, target.path)
        raise _with_kept_backup(target, failure) from exc
    finally:
        signals.post_run.send(sender=Migration, database=target.alias, direction=direction,
                              migrations=names, error=error, duration=time.perf_counter() - started)
        if error is None and target.path is not None:
            backups.unpin(target.backups_dir, target.path)  # a run succeeded: pruning by age again
        if take_backup and target.path is not None:  # after failures too: a crash-looping start
            for old in backups.prune(target.backups_dir, target.path, keep):  # must not fill the disk
                logger.info("migration backup pruned: %s", old)
    return done


def _pin_unless_pinned(target: Target, saved: Path) -> bool:
    """Before applying: pin this run's backup unless an earlier, unfinished or failed run's is pinned.
    Written before the first migration starts, so a run SIGKILLed while applying leaves it pinned.
    Returns whether it pinned."""
    if target.path is not None and backups.pinned(target.backups_dir, target.path) is None:
        backups.pin(target.backups_dir, target.path, saved)
        return True
    return False


def _as_found(conn: sqlite3.Connection, before: Found) -> bool:
    """Whether the database holds the records and schema it held before the run (False if unreadable)."""
    try:
        return Found.read(conn) == before
    except sqlite3.Error:
        return False


def _with_kept_backup(target: Target, failure: TablemigrateError) -> TablemigrateError:
    """Say which backup a failed run leaves pinned, and why (it outlives keep-N pruning)."""
    if target.path is None or not isinstance(failure, (MigrationFailed, DatabaseLocked)):
        return failure
    held = backups.pinned(target.backups_dir, target.path)
    if held is None:
        return failure
    note = (f"backup {held} is kept until a run succeeds: it holds the database as it was before the first "
            "failed run")
    # For the project's logging; the command's own stderr handler leaves it out: its error line says it.
    logger.warning(note, extra={"tablemigrate_in_error_line": True})
    return type(failure)(f"{failure}; {note}")


class OtherWriters:
    """Whether another connection committed since the run began, from `PRAGMA data_version` (which our
    own commits leave alone). It is compared at the start of each migration, under SQLite's write lock,
    because SQLite also bumps it when a failed transaction of ours (disk full, I/O error) resets the
    page cache: read after a failure, it would accuse the application of our own rollback."""

    def __init__(self, conn: sqlite3.Connection):
        self.version = self._read(conn)
        self.seen = False

    @staticmethod
    def _read(conn: sqlite3.Connection) -> int:
        return conn.execute("PRAGMA data_version").fetchone()[0]

    def check(self, conn: sqlite3.Connection) -> None:
        version = self._read(conn)
        self.seen = self.seen or version != self.version
        self.version = version

    def rolled_back(self, conn: sqlite3.Connection) -> None:
        """Right after our failed migration's ROLLBACK: its own bump is not another writer's commit."""
        self.version = self._read(conn)


def _reason(exc: BaseException, running: str) -> str:
    """Never empty (`str(KeyboardInterrupt())` is ''); an interrupt says which migration it stopped."""
    why = backups.describe(exc)
    return f"{running} {why}" if running and not isinstance(exc, Exception) else why


def recover(target: Target, exc: BaseException, history_before: list[str], saved: Path | None,
             writers: OtherWriters, running: str = "", partial: bool = False,
             found: Found | None = None) -> TablemigrateError:
    """After a failed or interrupted migration: put the database back as it was before the run if that
    loses nothing, and say exactly what state it is in. What committed is read from the database itself:
    the history tables (tablemigrate's and Django's recorder), which each migration writes in its own
    transaction, and the schema, compared with `found` (the database when `running` started): a schema
    that changed without a record is a migration that committed unrecorded (interrupted between its
    COMMIT and its record). `running`: the migration that was running, named when an interrupt stopped
    it. `partial`: it is not atomic, so it may have changed rows although nothing recorded it. A busy or
    locked database (SQLite's result code) anywhere ends as DatabaseLocked (exit 3)."""
    conn = target.conn
    if conn.in_transaction:  # left open by whatever failed: it would block the restore; it is ours to drop
        conn.execute("ROLLBACK")
    where = f" (backup: {saved})" if saved else ""
    now = Found.read(conn)
    unrecorded = found is not None and found.unrecorded_change(now)
    why = _reason(exc, running)
    busy = isinstance(exc, DatabaseLocked) or is_busy(exc)
    failed = MigrationInterrupted if isinstance(exc, KeyboardInterrupt) else DatabaseLocked if busy else MigrationFailed
    changed = sorted(set(now.history) ^ set(history_before))
    if not changed and not partial and not unrecorded:
        logger.error("migration failed and was rolled back; the database is unchanged")
        left = online.leftovers(conn)  # an online rebuild that could not drop them (disk full)
        but = " but for the online rebuild's private tables, which the next run or revert drops" if left else ""
        done = "nothing was changed" if busy else "rolled back, the database is unchanged"
        return failed(f"{why}; {done}{but}{where}")
    # What stays if the backup is not restored, and whether the history tables then tell the truth.
    stays = [f"{', '.join(changed)} (applied earlier in this run) stay applied"] if changed else []
    if partial:
        stays.append(f"the steps that the non-atomic {running} completed before it failed stay, unrecorded")
    elif unrecorded:
        stays.append(f"{running} committed its schema changes but is not recorded as applied (the schema does "
                     "not match the history tables)")
    else:
        stays.append("the history table matches the schema")
    earlier = "; ".join(stays)
    # A non-atomic migration is not rolled back; one that committed without its record was not either.
    stopped = "stopped" if partial or unrecorded else "rolled back"
    if saved is None:
        return failed(f"{why}; {stopped}, but no backup was taken: {earlier}")
    try:  # check the backup first: the check takes time, and a write landing meanwhile must count
        backups.verify(saved)
    except backups.BackupError as bad:
        return failed(f"{why}; {stopped}, but the backup cannot be restored ({bad}): {earlier}")

    def nobody_else_wrote(conn: sqlite3.Connection) -> bool:  # asked under the write lock
        writers.check(conn)  # commits since our rollback, including while the backup was checked
        return not writers.seen

    try:
        try:  # one write transaction from the last check to the end of the restore: no window
            restored = backups.restore_in_transaction(target.conn, saved, nobody_else_wrote)
        except backups.NeedsPageRestore:  # virtual tables: the page copy, right after the check
            restored = nobody_else_wrote(target.conn)
            if restored:
                backups.restore(target.conn, saved, verified=True)
    except (sqlite3.Error, backups.BackupError) as bad:
        return failed(f"{why}; {stopped}, but restoring the backup {saved} failed ({backups.describe(bad)}): "
                      f"{earlier}")
    if not restored:
        logger.error("migration failed; backup %s NOT restored: other connections wrote since it was taken",
                     saved)
        return failed(
            f"{why}; {stopped}. The backup {saved} was NOT restored, because other connections wrote to the "
            f"database after it was taken and restoring would lose their data: {earlier}")
    logger.error("migration failed; database restored from backup %s", saved)
    return failed(f"{why}; the database was restored from backup {saved}")


class _RunBookkeeping(contenttypes.RenamesFollowed):
    """`run`/`revert`: under the write lock, before any step, another connection's commits are noted and
    the history is read again (another runner may have done the module meanwhile); after our own
    rollback, the `data_version` bump it causes is not taken for another writer's commit."""

    def __init__(self, alias: str, writers: OtherWriters):
        super().__init__(alias)
        self.writers = writers

    def still_needed(self, conn: sqlite3.Connection, migration: Migration, direction: str) -> bool:
        self.writers.check(conn)
        return history.is_applied(conn, migration.name) == (direction == "down")

    def rolled_back(self, conn: sqlite3.Connection) -> None:
        self.writers.rolled_back(conn)


def _apply_one(target: Target, applier: Applier, m: Migration, direction: str) -> bool:
    signals.pre_migration.send(sender=Migration, database=target.alias, name=m.name, direction=direction)
    started = time.perf_counter()
    error: BaseException | None = None
    try:
        done = applier.apply(m, direction)
        verb = "applied" if direction == "up" else "reverted"
        if done:
            logger.info("migration %s %s (%.0f ms)", m.name, verb, (time.perf_counter() - started) * 1000,
                        extra={"tablemigrate_migration": m.name})  # the command prints it on stdout
        else:
            logger.info("migration %s already %s by another runner", m.name, verb)
        return done
    except BaseException as exc:
        error = exc
        logger.error("migration %s failed: %s", m.name, backups.describe(exc))
        raise
    finally:
        signals.post_migration.send(sender=Migration, database=target.alias, name=m.name, direction=direction,
                                    duration=time.perf_counter() - started, error=error)
