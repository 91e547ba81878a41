"""`run` and `revert` against the real database.

What to apply, the confirmation protocol, and the order of the units that do the work.

Order of a run: read the history (tablemigrate.history.status; cheap: nothing pending means return at once) ->
load and check the pending modules -> refuse edited or missing applied modules -> validate them on a
schema-only copy and check the live rows (tablemigrate.run.preflight: violations refuse, losses need
confirmation) -> confirm (before the lock, so a human deciding never blocks another runner) -> take the
runner lock -> back up, apply, recover (tablemigrate.run.recovery). `run --dry-run` is tablemigrate.run.dryrun,
the drift report tablemigrate.run.drift.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tablemigrate.backups import backup as backups
from tablemigrate.errors import ConfigurationError
from tablemigrate.history import applied as history
from tablemigrate.history.loader import Migration, load_migration
from tablemigrate.history.status import ModuleFiles, Target, check_history, pending_migrations, status
from tablemigrate.project import djangoapps
from tablemigrate.sqlite.transaction import write_transaction

from . import online
from .preflight import preflight, question, refuse, unconfirmed
from .recovery import DjangoApplied, Work, apply_all


def _guarded(target: Target, direction: str, select: Callable[[], Work],
             allow: bool, confirm: Callable[[str], bool] | None, take_backup: bool, keep: int,
             lock_timeout: float, announce: djangoapps.MigrateSignals | None = None) -> list[Migration | DjangoApplied]:
    """Select, check and apply under the runner lock. A human asked to confirm data loss answers with
    the lock released (so other runners are never blocked on a prompt); then the lock is taken again
    and the selection must be unchanged."""
    with target.lock(lock_timeout):
        work = select()
        if not work:
            return []
        reasons = preflight(target, work.migrations, direction, bool(work.django.split()[0]), recheck=not allow)
        if not reasons or allow or confirm is None:
            if reasons and not allow:
                raise refuse(reasons)
            return apply_all(target, work, direction, take_backup, keep, announce)
    if not confirm(question(reasons)):
        raise refuse(reasons)
    with target.lock(lock_timeout):
        again = select()
        if again.names != work.names:
            raise ConfigurationError("the migrations to apply changed while waiting for confirmation; run again")
        late = unconfirmed(reasons, preflight(target, again.migrations, direction, bool(again.django.split()[0]),
                                             explain=False, recheck=True))
        if late:
            raise refuse(late)
        return apply_all(target, again, direction, take_backup, keep, announce)


def run(target: Target, directory: Path, *, allow_destructive: bool = False,
        confirm: Callable[[str], bool] | None = None, take_backup: bool = True, keep: int = 5,
        lock_timeout: float = 30, django: bool = True,
        announce: djangoapps.MigrateSignals | None = None) -> list[Migration | DjangoApplied]:
    """Apply the pending Django migrations of the apps tablemigrate does not own (`django`: when the
    target is Django's own connection for its alias), then every pending tablemigrate module. Returns
    what this call applied ([] when nothing was pending, or a concurrent runner applied it first).
    `announce`: Django's pre_migrate is sent through it before the first migration (with nothing to
    apply, not at all: the caller sends it, then post_migrate)."""
    modules = ModuleFiles(directory)  # the files are read once for the whole run
    st = status(target.conn, directory, modules)
    check_history(st)
    if st.checkpoint is not None:
        _record_checkpoint(target, directory, lock_timeout, modules)
    wrapper = djangoapps.wrapper_of(target.alias, target.conn) if django else None
    own = djangoapps.ownership() if wrapper is not None else None
    if not st.pending and (own is None or not djangoapps.maybe_pending(target.conn, own)):
        if target.path is not None and take_backup:  # a failing deploy was resolved another way
            backups.unpin(target.backups_dir, target.path)
        if online.leftovers(target.conn):  # of an online rebuild killed midway: its triggers still log
            with target.lock(lock_timeout):
                online.clean_leftovers(target.conn)
        if st.accepted:
            _record_accepted(target, directory, lock_timeout, modules)
        # The common case at container start: no module imported, no backup, no lock taken here (the
        # command then takes the runner lock only to send pre/post_migrate, unless TABLEMIGRATE_POST_MIGRATE
        # is False).
        return []

    def select() -> Work:  # under the lock: another runner may have applied some already
        dplan = djangoapps.plan(wrapper, own, record_squashed=True) if wrapper is not None else djangoapps.DjangoPlan()
        return Work(pending_migrations(target, directory, modules)[1], dplan)

    done = _guarded(target, "up", select, allow_destructive, confirm, take_backup, keep, lock_timeout, announce)
    if st.accepted:
        _record_accepted(target, directory, lock_timeout, modules)
    return done


def _record_checkpoint(target: Target, directory: Path, lock_timeout: float, modules: ModuleFiles) -> None:
    """Record the checkpoint this database reached (every module it replaces applied here) in their place,
    under the runner lock, in one transaction: nothing is applied, no backup is needed."""
    with target.lock(lock_timeout):
        st = status(target.conn, directory, modules)
        check_history(st)
        if st.checkpoint is not None:  # else another runner recorded it meanwhile
            with write_transaction(target.conn):
                history.record_checkpoint(target.conn, st.checkpoint, st.replaced)


def _record_accepted(target: Target, directory: Path, lock_timeout: float, modules: ModuleFiles) -> None:
    """After a run or revert that succeeded: record the edits the modules accept themselves
    (`previous_checksums` and `accepted_checksum`) under the runner lock, so the edited file is the
    applied version from now on. Not before: a run refused later must have changed nothing. `modules`:
    the files as the command read them."""
    st = status(target.conn, directory, modules)
    if not st.accepted:
        return
    by_stem = {p.stem: p for p in st.files}
    recorded = {a.name: a.checksum for a in st.applied}
    with target.lock(lock_timeout):
        history.accept_edits(target.conn, {n: (recorded[n], modules.checksum(by_stem[n])) for n in st.accepted})


def _to_revert(target: Target, directory: Path, to: str | None, modules: ModuleFiles) -> list[Migration]:
    st = status(target.conn, directory, modules)
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
        if m.replaces:
            raise ConfigurationError(
                f"{m.name} is a checkpoint (it stands for {len(m.replaces)} migrations and creates every table at "
                f"once): it cannot be reverted; `revert --to {m.name}` reverts the migrations after it")
        if m.down is None:
            raise ConfigurationError(f"migration {m.name} has no `down`: it cannot be reverted")
    return migrations


def revert(target: Target, directory: Path, *, to: str | None = None, allow_destructive: bool = False,
           confirm: Callable[[str], bool] | None = None, take_backup: bool = True, keep: int = 5,
           lock_timeout: float = 30) -> list[Migration | DjangoApplied]:
    """Revert the last applied tablemigrate migration, or every one applied after `to`. Django
    migrations of the apps tablemigrate does not own are Django's to revert (`migrate APP 000N`)."""
    modules = ModuleFiles(directory)  # read once for the whole revert
    done = _guarded(target, "down", lambda: Work(_to_revert(target, directory, to, modules)), allow_destructive,
                    confirm, take_backup, keep, lock_timeout)
    _record_accepted(target, directory, lock_timeout, modules)
    return done
