"""`run`, `revert`, `show` and dry-runs against the real database.

Order of a run: read the history (cheap: nothing pending means return at once) -> load and check the
pending modules -> refuse edited or missing applied modules -> validate them on a schema-only copy ->
check the live rows (violations refuse, losses need confirmation) -> confirm (before the lock, so a
human deciding never blocks another runner) -> take the runner lock -> back up -> apply each in its
own transaction (history re-checked inside it) -> on failure restore the backup, unless other
connections wrote since it was taken -> prune old backups.

A crash-looping deploy (a migration failing on every start while the application writes) must not
prune away the state from before it: the first failed run's backup is pinned (`backup.pin`) until a
run succeeds, and pruning keeps it. A failed run still prunes (each start takes a new full copy, which
would otherwise fill the disk): the newest `keep` backups, one of which is the pinned one.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from typing import Any
from dataclasses import dataclass, field
from pathlib import Path

from . import backup as backups
from . import datacheck, djangoapps, history, signals
from .apply import DatabaseLocked, apply_migration
from .build import private_database, raw
from .errors import (ConfigurationError, DataCheckFailed, HistoryMismatch, MigrationFailed,  # noqa: F401
                     MigrationInterrupted, NotConfirmed, ObjectExists, TablemigrateError)
from .introspect import introspect, is_internal
from .loader import Migration, checksum, load_migration, migration_files
from .lock import run_lock
from .sqltext import quote
from .rehearse import Effects, SchemaCopyFailed, StatementKey, rehearse
from .writer import read_snapshot_header

logger = logging.getLogger("tablemigrate")


@dataclass
class Target:
    """The database being migrated: Django's raw connection for the alias and where its file lives."""

    alias: str
    conn: sqlite3.Connection
    path: Path | None  # None for an in-memory database
    backup_dir: Path | None = None

    @property
    def backups_dir(self) -> Path:
        if self.backup_dir is not None:
            return self.backup_dir
        if self.path is None:
            raise ConfigurationError("an in-memory database cannot be backed up; use --no-backup")
        return self.path.parent / "backups"


@dataclass
class Status:
    applied: list[history.Applied]
    files: list[Path]
    pending: list[Path] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def status(conn: sqlite3.Connection, directory: Path) -> Status:
    """Applied vs files, from file names and checksums only (no module is imported)."""
    files = migration_files(directory)
    applied = history.applied(conn)
    by_name = {p.stem: p for p in files}
    st = Status(applied, files)
    done = {a.name for a in applied}
    st.pending = [p for p in files if p.stem not in done]
    for a in applied:
        path = by_name.get(a.name)
        if path is None:
            st.missing.append(a.name)
        elif checksum(path.read_bytes()) != a.checksum:
            st.modified.append(a.name)
    return st


def check_history(st: Status) -> None:
    if st.modified:
        raise HistoryMismatch(
            f"migration {st.modified[0]} was edited after it was applied (checksum differs); restore the "
            "applied version, or write a new migration for the change")
    if st.missing:
        raise HistoryMismatch(f"applied migration {st.missing[0]} is missing from the migrations directory")


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
class DjangoApplied:
    """A Django migration that a run applied (`run` returns these before its own modules)."""

    name: str


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


def _guarded(target: Target, direction: str, select: Callable[[], Work],
             allow: bool, confirm: Callable[[str], bool] | None, take_backup: bool, keep: int,
             lock_timeout: float) -> list[Migration | DjangoApplied]:
    """Select, check and apply under the runner lock. A human asked to confirm data loss answers with
    the lock released (so other runners are never blocked on a prompt); then the lock is taken again
    and the selection must be unchanged."""
    with _locked(target, lock_timeout):
        work = select()
        if not work:
            return []
        reasons = preflight(target, work.migrations, direction)
        if not reasons or allow or confirm is None:
            if reasons and not allow:
                raise _refuse(reasons)
            return _apply_all(target, work, direction, take_backup, keep)
    question = "These migrations can lose data:\n" + "\n".join(f"  - {r}" for r in reasons)
    if not confirm(question + "\nType 'yes' to continue"):
        raise _refuse(reasons)
    with _locked(target, lock_timeout):
        again = select()
        if again.names != work.names:
            raise ConfigurationError("the migrations to apply changed while waiting for confirmation; run again")
        preflight(target, again.migrations, direction)
        return _apply_all(target, again, direction, take_backup, keep)


def _locked(target: Target, lock_timeout: float):
    return run_lock(target.path or Path(f"/tmp/tablemigrate-memory-{target.alias}"), lock_timeout)


def _apply_all(target: Target, work: Work, direction: str, take_backup: bool,
               keep: int) -> list[Migration | DjangoApplied]:
    """Back up, apply (the Django migrations first), restore on failure; the caller holds the runner
    lock. Returns what was applied."""
    conn = target.conn
    history.ensure(conn)
    names = work.names
    writers = _OtherWriters(conn)  # from before the backup: a commit during the copy counts too
    history_before = _history_names(conn)
    saved = None
    if take_backup:
        saved = target.backups_dir / backups.backup_name(target.path or Path(target.alias))
        backups.take_backup(conn, saved)
        logger.info("migration backup written to %s", saved)
        _pin_unless_pinned(target, saved)
    signals.pre_run.send(sender=Migration, database=target.alias, direction=direction, migrations=names)
    started = time.perf_counter()
    error: BaseException | None = None
    done: list[Migration | DjangoApplied] = []
    running = ""
    partial = False

    def django_running(name: str, atomic: bool) -> None:  # `partial`: the one running is not atomic
        nonlocal running, partial
        running, partial = f"Django migration {name}", not atomic

    try:
        first, more = work.django.split()
        done.extend(DjangoApplied(n) for n in djangoapps.apply(first, on_migration=django_running))
        for m in work.migrations:
            running, partial = f"migration {m.name} ({direction})", False
            if _apply_one(target, m, direction, writers):
                done.append(m)
        if more:  # Django migrations that depend on an owned app: planned again, now its tables exist
            then = djangoapps.plan(work.django.wrapper, work.django.own, quick=False)
            done.extend(DjangoApplied(n) for n in djangoapps.apply(then, on_migration=django_running))
    except BaseException as exc:
        error = exc
        # A failing Django migration that is not atomic (`atomic = False`) may have changed the
        # database although Django recorded nothing (`partial`): then the backup is restored too.
        raise _with_kept_backup(target, _recover(target, exc, history_before, saved, writers, running,
                                                 partial)) from exc
    finally:
        signals.post_run.send(sender=Migration, database=target.alias, direction=direction,
                              migrations=names, error=error, duration=time.perf_counter() - started)
        if error is None and target.path is not None:
            backups.unpin(target.backups_dir, target.path)  # a run succeeded: pruning by age again
        if take_backup and target.path is not None:  # after failures too: a crash-looping start
            for old in backups.prune(target.backups_dir, target.path, keep):  # must not fill the disk
                logger.info("migration backup pruned: %s", old)
    return done


def _pin_unless_pinned(target: Target, saved: Path) -> None:
    """Before applying: pin this run's backup unless an earlier, unfinished or failed run's is pinned.
    Written before the first migration starts, so a run SIGKILLed while applying leaves it pinned."""
    if target.path is not None and backups.pinned(target.backups_dir, target.path) is None:
        backups.pin(target.backups_dir, target.path, saved)


def _with_kept_backup(target: Target, failure: TablemigrateError) -> TablemigrateError:
    """Say which backup a failed run leaves pinned, and why (it outlives keep-N pruning)."""
    if target.path is None or not isinstance(failure, MigrationFailed):
        return failure
    held = backups.pinned(target.backups_dir, target.path)
    if held is None:
        return failure
    note = (f"backup {held} is kept until a run succeeds: it holds the database as it was before the first "
            "failed run")
    # For the project's logging; the command's own stderr handler leaves it out: its error line says it.
    logger.warning(note, extra={"tablemigrate_in_error_line": True})
    return type(failure)(f"{failure}; {note}")


class _OtherWriters:
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


def _history_names(conn: sqlite3.Connection) -> list[str]:
    """tablemigrate's history and Django's (`django_migrations`): a change to either means a
    migration of this run committed."""
    return [a.name for a in history.applied(conn)] + sorted(f"{a}.{n}" for a, n in djangoapps.recorded(conn))


def _reason(exc: BaseException, running: str) -> str:
    """Never empty (`str(KeyboardInterrupt())` is ''); an interrupt says which migration it stopped."""
    why = backups.describe(exc)
    return f"{running} {why}" if running and not isinstance(exc, Exception) else why


def _recover(target: Target, exc: BaseException, history_before: list[str], saved: Path | None,
             writers: _OtherWriters, running: str = "", partial: bool = False) -> TablemigrateError:
    """After a failed or interrupted migration (already rolled back): put the database back as it was
    before the run if that loses nothing, and say exactly what state it is in. Whether earlier
    migrations of the run committed is read from the history tables, which each migration writes in its
    own transaction. `running`: the migration that was running, named when an interrupt stopped it.
    `partial`: a non-atomic Django migration started, which may have changed the database although
    Django recorded nothing."""
    where = f" (backup: {saved})" if saved else ""
    now = _history_names(target.conn)
    if isinstance(exc, DatabaseLocked) and now == history_before and not partial:
        return exc
    why = _reason(exc, running)
    failed = MigrationInterrupted if isinstance(exc, KeyboardInterrupt) else MigrationFailed
    changed = sorted(set(now) ^ set(history_before))
    if not changed and not partial:
        logger.error("migration failed and was rolled back; the database is unchanged")
        return failed(f"{why}; rolled back, the database is unchanged{where}")
    # What stays if the backup is not restored, and whether the history tables then tell the truth.
    stays = [f"{', '.join(changed)} (applied earlier in this run) stay applied"] if changed else []
    if partial:
        stays.append(f"the steps that the non-atomic {running} completed before it failed stay, unrecorded")
    else:
        stays.append("the history table matches the schema")
    earlier = "; ".join(stays)
    stopped = "stopped" if partial else "rolled back"  # a non-atomic migration is not rolled back
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


def _apply_one(target: Target, m: Migration, direction: str, writers: _OtherWriters) -> bool:
    signals.pre_migration.send(sender=Migration, database=target.alias, name=m.name, direction=direction)
    started = time.perf_counter()
    error: BaseException | None = None

    def still_needed(conn: sqlite3.Connection) -> bool:  # under the write lock
        writers.check(conn)
        return history.is_applied(conn, m.name) == (direction == "down")

    try:
        done = apply_migration(target.conn, m, direction, in_transaction=history.record,
                               should_apply=still_needed, after_rollback=writers.rolled_back)
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


def pending_migrations(target: Target, directory: Path) -> tuple[Status, list[Migration]]:
    st = status(target.conn, directory)
    check_history(st)
    return st, [load_migration(p) for p in st.pending]


def run(target: Target, directory: Path, *, allow_destructive: bool = False,
        confirm: Callable[[str], bool] | None = None, take_backup: bool = True, keep: int = 5,
        lock_timeout: float = 30, django: bool = True) -> list[Migration | DjangoApplied]:
    """Apply the pending Django migrations of the apps tablemigrate does not own (`django`: when the
    target is Django's own connection for its alias), then every pending tablemigrate module. Returns
    what this call applied ([] when nothing was pending, or a concurrent runner applied it first)."""
    st = status(target.conn, directory)
    check_history(st)
    wrapper = djangoapps.wrapper_of(target.alias, target.conn) if django else None
    own = djangoapps.ownership() if wrapper is not None else None
    if not st.pending and (own is None or not djangoapps.maybe_pending(target.conn, own)):
        if target.path is not None and take_backup:  # a failing deploy was resolved another way
            backups.unpin(target.backups_dir, target.path)
        return []  # the common case at container start: no module imported, no lock, no backup

    def select() -> Work:  # under the lock: another runner may have applied some already
        dplan = djangoapps.plan(wrapper, own, record_squashed=True) if wrapper is not None else djangoapps.DjangoPlan()
        return Work(pending_migrations(target, directory)[1], dplan)

    return _guarded(target, "up", select, allow_destructive, confirm, take_backup, keep, lock_timeout)


def _to_revert(target: Target, directory: Path, to: str | None) -> list[Migration]:
    st = status(target.conn, directory)
    check_history(st)
    applied = [a.name for a in st.applied]
    if not applied:
        raise ConfigurationError("no applied migration to revert")
    if to is None:
        names = applied[-1:]
    elif to not in applied:
        raise ConfigurationError(f"--to {to}: not an applied migration")
    else:
        names = applied[applied.index(to) + 1:]
    by_stem = {p.stem: p for p in st.files}
    migrations = [load_migration(by_stem[n]) for n in reversed(names)]
    for m in migrations:
        if m.down is None:
            raise ConfigurationError(f"migration {m.name} has no `down`: it cannot be reverted")
    return migrations


def revert(target: Target, directory: Path, *, to: str | None = None, allow_destructive: bool = False,
           confirm: Callable[[str], bool] | None = None, take_backup: bool = True, keep: int = 5,
           lock_timeout: float = 30) -> list[Migration | DjangoApplied]:
    """Revert the last applied tablemigrate migration, or every one applied after `to`. Django
    migrations of the apps tablemigrate does not own are Django's to revert (`migrate APP 000N`)."""
    return _guarded(target, "down", lambda: Work(_to_revert(target, directory, to)), allow_destructive,
                    confirm, take_backup, keep, lock_timeout)


@dataclass
class Rehearsal:
    migration: str
    seconds: float
    rows_before: dict[str, int]
    rows_after: dict[str, int]
    statements: list[tuple[str, float]] = field(default_factory=list)  # (statement or operation, seconds)


def _row_counts(conn: sqlite3.Connection) -> dict[str, int]:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return {n: conn.execute(f"SELECT count(*) FROM {quote(n)}").fetchone()[0] for n in names if not is_internal(n)}


def dry_run(target: Target, directory: Path) -> list[Rehearsal]:
    """Apply the pending migrations (Django's of the apps tablemigrate does not own, then its own) to an
    in-memory copy of the real database and report what happened; the real database is only read.
    While the Django migrations run, the alias's connection *is* the copy (djangoapps.stand_in), so a
    data step that queries through the default manager writes to the copy too."""
    _st, pending = pending_migrations(target, directory)
    if pending:  # what `run` would refuse before touching anything, `--dry-run` refuses too
        _refuse_foreign_tables(target, pending, "up", validate(target, pending))
    out: list[Rehearsal] = []
    django = djangoapps.wrapper_of(target.alias, target.conn) is not None or target.path is None
    with djangoapps.stand_in(target.alias) as copy:
        conn = raw(copy)
        target.conn.backup(conn)
        first, more = djangoapps.plan(copy).split() if django else (djangoapps.DjangoPlan(), False)
        out.extend(_rehearse_django(copy, first))
        history.ensure(conn)
        for m in pending:
            before = _row_counts(conn)
            statements: list[tuple[str, float]] = []
            started = time.perf_counter()
            apply_migration(conn, m, "up", in_transaction=history.record,
                            on_statement=lambda sql, seconds: statements.append((sql, seconds)))
            out.append(Rehearsal(m.name, time.perf_counter() - started, before, _row_counts(conn), statements))
        if more:  # as `run` does: what depends on an owned app, once its tables exist
            out.extend(_rehearse_django(copy, djangoapps.plan(copy, quick=False)))
    return out


#: Statements Django's executor runs to look things up and manage transactions: left out of the list a
#: dry run prints for a Django migration (its time still counts in the migration's).
_DJANGOS_OWN = frozenset({"SELECT", "PRAGMA", "SAVEPOINT", "RELEASE", "ROLLBACK", "BEGIN", "COMMIT"})


def _rehearse_django(copy, dplan: djangoapps.DjangoPlan) -> list[Rehearsal]:
    conn = raw(copy)
    out: list[Rehearsal] = []
    statements: list[tuple[str, float]] = []
    marks: dict[str, Any] = {}

    def started(name: str, atomic: bool) -> None:
        finish()
        statements.clear()
        marks.update(name=name, at=time.perf_counter(), before=_row_counts(conn))

    def finish() -> None:
        if marks:
            out.append(Rehearsal(marks["name"], time.perf_counter() - marks["at"], marks["before"],
                                 _row_counts(conn), list(statements)))
            marks.clear()

    def statement(sql: str, seconds: float) -> None:  # what changes the database, not Django's own lookups
        first = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
        if first not in _DJANGOS_OWN and "django_migrations" not in sql:
            statements.append((sql, seconds))

    djangoapps.apply(dplan, on_statement=statement, on_migration=started, hooks=False)
    finish()
    return out


def drift(target: Target, directory: Path, owned: set[str] | None = None,
          foreign: frozenset[str] = frozenset()) -> list[str]:
    """Tables whose live structure differs from what replaying the applied migrations produces.
    `owned`: lower-case tables of managed models; a live table outside the history and outside it
    (an unmanaged model's, one made by hand) is not drift. `foreign`: tables of apps whose Django
    migrations own them (build.foreign_tables), which an older history may still describe."""
    st = status(target.conn, directory)
    check_history(st)
    live_schema = introspect(target.conn)
    header = read_snapshot_header(directory)
    applied_hash = checksum("\n".join(f"{a.name} {a.checksum}" for a in st.applied).encode())
    if not st.pending and header.get("history") == applied_hash and header.get("schema") == live_schema.fingerprint():
        return []  # the snapshot describes exactly this history, and the live schema matches it
    by_stem = {p.stem: p for p in st.files}
    with private_database() as replay:
        conn = raw(replay)
        for a in st.applied:  # schema only: data steps have no rows to work on here
            apply_migration(conn, load_migration(by_stem[a.name]), "up", run_python=False)
        expected = introspect(conn).tables
    live = live_schema.tables
    extra = {k for k in live if k not in expected and owned is not None and k not in owned}
    return sorted(k for k in set(expected) | set(live)
                  if expected.get(k) != live.get(k) and k not in extra and k not in foreign)
