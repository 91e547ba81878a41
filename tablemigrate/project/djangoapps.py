"""The Django migrations of the apps tablemigrate does not own (tablemigrate.project.ownership).

`run` applies them through Django's own migration executor, in Django's dependency order and with their
data steps (`RunPython`, `RunSQL`), under tablemigrate's runner lock and after its verified backup,
before tablemigrate's own modules; a failure anywhere restores that one backup (tablemigrate.run.runner).
`show` lists them with the SQL `sqlmigrate` would print; `run --dry-run` applies them to the in-memory
copy, with the ORM's default connection pointed at the copy (a data step that does not pass `using`
still writes to the copy, never to the real database).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from django.apps import apps
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.exceptions import InconsistentMigrationHistory
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration as DjangoMigrationClass
from django.db.migrations.operations import AddField, CreateModel
from django.db.transaction import TransactionManagementError
from django.utils.module_loading import module_has_submodule

from tablemigrate import signals
from tablemigrate.errors import ConfigurationError, DatabaseLocked, MigrationFailed, is_busy

from .build import registered
from .ownership import Ownership, leave_out_hint, migration_names, ownership

logger = logging.getLogger("tablemigrate")

Step = tuple[DjangoMigrationClass, bool]


class DjangoMigration:
    """The `sender` of tablemigrate's pre_migration/post_migration signals for a Django migration (a
    receiver connected with `sender=tablemigrate.history.loader.Migration` sees only tablemigrate's modules)."""


def label(migration: DjangoMigrationClass) -> str:
    return f"{migration.app_label}.{migration.name}"


@dataclass
class DjangoPlan:
    """The pending Django migrations of the non-owned apps, in the order Django applies them."""

    wrapper: BaseDatabaseWrapper | None = None
    executor: MigrationExecutor | None = None
    steps: list[Step] = field(default_factory=list)
    targets: list[tuple[str, str]] = field(default_factory=list)
    own: Ownership | None = None

    def split(self) -> tuple[DjangoPlan, bool]:
        """The migrations to apply before tablemigrate's modules, and whether more follow them: Django's
        order ends at the first migration that comes after (in Django's graph, applied or not) one that
        declares a dependency on an app tablemigrate owns. django-allauth's account.0001 declares one
        on the project's swappable user model; its 0006, a data step that updates the user table,
        declares only 0005, so it goes after the owned modules too, also when 0001 was applied by an
        earlier run. `migrate --run-syncdb` likewise builds apps without migrations before any
        migration. What follows is planned again once the owned tables exist (`plan`)."""
        owned = self.own.owned if self.own is not None else frozenset()
        graph = self.executor.loader.graph if self.executor is not None else None
        for i, (migration, _backwards) in enumerate(self.steps):
            key = (migration.app_label, migration.name)
            lineage = [graph.nodes[k] for k in graph.forwards_plan(key)] if graph and key in graph.nodes \
                else [migration]
            if any(dep[0] in owned for m in lineage for dep in m.dependencies):
                return DjangoPlan(self.wrapper, self.executor, self.steps[:i], self.targets, self.own), True
        return self, False

    @property
    def names(self) -> list[str]:
        return [label(m) for m, _backwards in self.steps]

    def __bool__(self) -> bool:
        return bool(self.steps)


class _Seen:
    """A Django migration, every attribute its own except those given (`initial=True`)."""

    def __init__(self, migration: DjangoMigrationClass, **overrides: Any):
        self._migration = migration
        self.__dict__.update(overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._migration, name)


class _DeferredSqlFirst(_Seen):
    """A Django migration whose `apply` ends by running the schema editor's deferred SQL itself (the
    indexes of its foreign keys, its `Meta.indexes`...), inside the migration's atomic block."""

    def apply(self, project_state: Any, schema_editor: Any, collect_sql: bool = False) -> Any:
        state = self._migration.apply(project_state, schema_editor, collect_sql)
        for sql in schema_editor.deferred_sql:  # what the editor's __exit__ would run, in the same order
            schema_editor.execute(sql, None)
        schema_editor.deferred_sql = []
        return state


class Executor(MigrationExecutor):
    """Django's executor, with an atomic migration recorded in the transaction that applies it.

    Django (4.2 and 5.2, `MigrationExecutor.apply_migration`) records a migration inside its atomic block
    only when the schema editor has no deferred SQL left; with any (a foreign key's index), it records
    after the block has committed. A SIGTERM in between left the migration applied and unrecorded, and
    every later run failed with "table ... already exists". Here the deferred SQL runs at the end of
    the migration's own `apply`, still inside the block, so Django takes its in-block path: the record
    commits with the migration or not at all. (The SQLite editor's foreign key check then runs after
    those statements instead of before them; they only create indexes, which change no row.) A
    non-atomic migration is applied as Django does: recovery reads what it changed from the database."""

    def apply_migration(self, state: Any, migration: DjangoMigrationClass, fake: bool = False,
                        fake_initial: bool = False) -> Any:
        if migration.atomic and self.connection.features.can_rollback_ddl:
            migration = _DeferredSqlFirst(migration)  # type: ignore[assignment]
        return super().apply_migration(state, migration, fake=fake, fake_initial=fake_initial)


def recorded(conn: sqlite3.Connection) -> set[tuple[str, str]]:
    try:
        return {(app, name) for app, name in conn.execute("SELECT app, name FROM django_migrations")}
    except sqlite3.OperationalError:  # no django_migrations table yet: nothing applied
        return set()


def maybe_pending(conn: sqlite3.Connection, own: Ownership) -> bool:
    """Cheap: whether a non-owned app has a migration file that `django_migrations` does not record.
    No migration module is imported, so `run` with nothing to do stays near-free. A squashed migration
    whose replaced ones are recorded answers True; the executor then finds nothing to do. Owned apps
    are looked at too: a pending Django migration of one refuses the run (`plan`)."""
    done = recorded(conn)
    for app_label in sorted(own.django | own.owned):
        if any((app_label, n) not in done for n in migration_names(app_label)):
            return True
    return False


def wrapper_of(alias: str, conn: sqlite3.Connection) -> BaseDatabaseWrapper | None:
    """Django's connection for `alias` when it is the connection being migrated (not a stand-in)."""
    wrapper = connections[alias]
    return wrapper if wrapper.connection is conn else None


def plan(wrapper: BaseDatabaseWrapper, own: Ownership | None = None, *, quick: bool = True,
         record_squashed: bool = False) -> DjangoPlan:
    """The pending Django migrations of the non-owned apps on `wrapper`'s database. Refuses (nothing
    changed) when the plan needs a migration of an app tablemigrate owns, when Django's recorded history
    is inconsistent, or when an initial migration's tables already exist without Django's record of it.
    `record_squashed` (under the runner lock): record a squashed migration whose replaced migrations are
    all applied, as `migrate` does, so that the cheap check finds nothing pending next time."""
    own = own or ownership()
    if not own.django and not any(migration_names(a) for a in own.owned):
        return DjangoPlan(wrapper)
    wrapper.ensure_connection()
    if quick and not maybe_pending(wrapper.connection, own):
        return DjangoPlan(wrapper)
    executor = Executor(wrapper)
    loader = executor.loader
    try:
        loader.check_consistent_history(wrapper)
    except InconsistentMigrationHistory as exc:
        raise ConfigurationError(f"Django's migration history is inconsistent: {exc}") from None
    conflicts = {app: names for app, names in loader.detect_conflicts().items() if app in own.django}
    if conflicts:
        app, names = sorted(conflicts.items())[0]
        raise ConfigurationError(f"app {app} has conflicting Django migrations ({', '.join(sorted(names))}); "
                                 "its package is broken or mixed versions are installed")
    targets = [key for key in loader.graph.leaf_nodes() if key[0] in own.django]
    steps = executor.migration_plan(targets)
    if record_squashed and not steps:
        executor.check_replacements()
    # Every pending Django migration of an owned app, needed by another app or not: someone made
    # Django migrations for an app whose tables tablemigrate owns (`makemigrations`), a fight to settle.
    theirs = sorted({label(m) for m, _b in steps if m.app_label not in own.django}
                    | {f"{app}.{name}" for app, name in loader.graph.nodes
                       if app in own.owned and (app, name) not in loader.applied_migrations})
    if theirs:
        app = theirs[0].split(".")[0]
        raise ConfigurationError(
            f"app {app} is owned by tablemigrate, but Django migrations of it are pending ({', '.join(theirs)}): "
            f"delete {app}'s migrations folder (tablemigrate owns its tables), or {leave_out_hint(own, app)} so "
            "that its Django migrations own them; nothing was changed")
    begun = {app for app, _name in loader.applied_migrations}
    for migration, _backwards in steps:
        if migration.initial and executor.detect_soft_applied(None, migration)[0]:
            raise ConfigurationError(
                f"the tables of {label(migration)} already exist, but Django has not recorded that migration "
                "(tablemigrate's history or a hand-made schema created them): if they match the app's "
                f"current models, record its migrations with `manage.py migrate {migration.app_label} --fake`; "
                "nothing was changed")
        # A later migration whose tables and columns are all there (Django's own test, which it makes only
        # for initial ones): applied but unrecorded, as a run stopped between Django's COMMIT and its record
        # left it before that was closed. Said as it is, instead of "table ... already exists".
        if not migration.initial and migration.app_label in begun and _creates(migration) and \
                executor.detect_soft_applied(None, _Seen(migration, initial=True))[0]:
            raise ConfigurationError(
                f"what {label(migration)} creates (its tables and columns) is already in the database, but Django "
                "has not recorded that migration (a run stopped between its COMMIT and its record by an older "
                "tablemigrate, or a hand-made change): if the schema is what it makes, record it with "
                f"`manage.py migrate {migration.app_label} {migration.name} --fake`; nothing was changed")
    return DjangoPlan(wrapper, executor, steps, targets, own)


def _creates(migration: DjangoMigrationClass) -> bool:
    """Whether the migration creates a table or a column (what `detect_soft_applied` looks for; it
    builds the migration's project state first, so it is asked only then)."""
    return any(isinstance(op, (CreateModel, AddField)) for op in migration.operations)


def _register_management_modules() -> None:
    """What `migrate` does first: apps connect signal receivers in their `management` modules."""
    for app_config in apps.get_app_configs():
        if module_has_submodule(app_config.module, "management"):
            import_module(".management", app_config.name)


class MigrateSignals:
    """Django's pre_migrate and post_migrate for one `run`, sent as `migrate` sends them (Django 4.2 to
    6.1, django.core.management.sql): to every app config that has models, with `verbosity`,
    `interactive`, `using`, `stdout`, `apps` and `plan`, after importing each app's `management`
    module as `migrate` does (receivers connected there); pre_migrate once, before the run applies
    anything (with the project state Django's executor starts from when Django migrations run first),
    post_migrate once, after it. Receivers see Django's model registry as `apps` otherwise: after a run
    the project's state is its models (the apps tablemigrate owns are what Django calls real apps, whose
    state Django builds from the models too), and building a StateApps would import every Django
    migration on every start. tablemigrate's own pre_migrate receiver (tablemigrate.testing) knows
    this send by `tablemigrate_run`."""

    def __init__(self, using: str, verbosity: int, interactive: bool, stdout: Any):
        self.using, self.verbosity, self.interactive, self.stdout = using, verbosity, interactive, stdout
        self.pre_sent = False

    def pre(self, plan: list[Step], state_apps: Any = None) -> None:
        """pre_migrate, unless this run sent it already; a receiver's failure raises MigrationFailed
        (DatabaseLocked for a lock held past the busy timeout)."""
        from django.core.management.sql import emit_pre_migrate_signal

        if self.pre_sent:
            return
        self.pre_sent = True
        _register_management_modules()
        try:
            emit_pre_migrate_signal(self.verbosity, self.interactive, self.using, stdout=self.stdout,
                                    apps=state_apps or apps, plan=plan, tablemigrate_run=True)
        except Exception as exc:
            raise _failure("Django's pre_migrate receivers", exc) from exc

    def post(self, plan: list[Step]) -> None:
        from django.core.management.sql import emit_post_migrate_signal

        emit_post_migrate_signal(self.verbosity, self.interactive, self.using, stdout=self.stdout, apps=apps,
                                 plan=plan)


def state_before(dplan: DjangoPlan) -> Any:
    """The project state Django's executor starts `dplan` from (as `migrate` computes it for
    pre_migrate's `apps`), or None: no plan, or Django's private helper is gone (the executor then
    computes it itself)."""
    if not dplan or dplan.executor is None:
        return None
    try:
        return dplan.executor._create_project_state(with_applied_migrations=True)
    except AttributeError:
        return None


def as_announced(dplan: DjangoPlan, announced: list[Step]) -> None:
    """`dplan`, planned again by a new loader after pre_migrate was sent with `announced`: its
    migrations take the operations the receivers left in the announced ones (contenttypes adds a
    RenameContentType after each RenameModel), as if the signal had been sent with them."""
    seen = {(m.app_label, m.name): m for m, _backwards in announced}
    for migration, _backwards in dplan.steps:
        if (migration.app_label, migration.name) in seen:
            migration.operations = list(seen[migration.app_label, migration.name].operations)


def _failure(where: str, exc: Exception) -> DatabaseLocked | MigrationFailed:
    if is_busy(exc):
        return DatabaseLocked(f"{where}: the database stayed locked by another connection past the busy timeout")
    why = " ".join(str(exc).split())  # one line, whatever Django's message looks like
    return MigrationFailed(f"{where} failed: {type(exc).__name__}: {why}")


def apply(dplan: DjangoPlan, on_statement: Callable[[str, float], None] | None = None,
          on_migration: Callable[[str, bool], None] | None = None, hooks: bool = True,
          announced: bool = False, state: Any = None) -> list[str]:
    """Apply the plan (each migration in its own transaction when it is atomic, as `migrate` does),
    sending Django's pre_migrate with the plan first (contenttypes renames content types from it)
    unless the run `announced` it already (MigrateSignals). `state`: the project state to start from
    (`state_before`). Returns the names applied; a failure raises MigrationFailed naming the migration.
    `hooks`: send tablemigrate's pre_migration/post_migration (not for a rehearsal, like tablemigrate's
    own modules)."""
    from django.core.management.sql import emit_pre_migrate_signal

    if not dplan:
        return []
    assert dplan.executor is not None and dplan.wrapper is not None
    executor, wrapper = dplan.executor, dplan.wrapper
    done: list[str] = []
    running: dict[str, Any] = {}

    def progress(action: str, migration: DjangoMigrationClass | None = None, fake: bool = False) -> None:  # noqa: ARG001 (Django's executor progress callback)
        if action == "apply_start" and migration is not None:
            name = label(migration)
            running.update(name=name, started=time.perf_counter())
            if hooks:
                signals.pre_migration.send(sender=DjangoMigration, database=wrapper.alias, name=name, direction="up")
            if on_migration is not None:
                on_migration(name, bool(migration.atomic))
        elif action == "apply_success" and migration is not None:
            name, seconds = label(migration), time.perf_counter() - running["started"]
            done.append(name)
            running.clear()
            if hooks:
                logger.info("migration %s applied (%.0f ms)", name, seconds * 1000,
                            extra={"tablemigrate_migration": name})
                signals.post_migration.send(sender=DjangoMigration, database=wrapper.alias, name=name,
                                            direction="up", duration=seconds, error=None)

    _register_management_modules()
    executor.progress_callback = progress
    state = state or state_before(dplan)
    with _recording(wrapper, on_statement):
        try:
            if not announced:
                emit_pre_migrate_signal(0, False, wrapper.alias, apps=state.apps if state else apps,
                                        plan=dplan.steps, tablemigrate_run=True)
            executor.migrate(dplan.targets, plan=dplan.steps, state=state.clone() if state else None)
        except BaseException as exc:
            _leave_djangos_transaction(wrapper)
            name = running.get("name")
            if name is not None:
                seconds = time.perf_counter() - running["started"]
                logger.error("migration %s failed: %s", name, exc)
                if hooks:
                    signals.post_migration.send(sender=DjangoMigration, database=wrapper.alias, name=name,
                                                direction="up", duration=seconds, error=exc)
            if not isinstance(exc, Exception):
                raise
            if isinstance(exc, TransactionManagementError) and isinstance(exc.__context__, Exception):
                exc = exc.__context__  # Django's check after the failed statement hid the real error
            raise _failure(f"Django migration {name}" if name else "Django's pre_migrate receivers", exc) from exc
    return done


def _leave_djangos_transaction(wrapper: BaseDatabaseWrapper) -> None:
    """After a failed Django migration, leave no transaction open on the connection. Django's SQLite
    schema editor checks constraints on exit *before* it closes its atomic block; after a database error
    in a data step that check raises TransactionManagementError, and the block stays open with the
    transaction (found upgrading django-allauth: the restore of the run's backup then failed). Roll it
    back and put Django's bookkeeping back to autocommit, foreign keys on, as the editor would have."""
    if not (wrapper.in_atomic_block or (wrapper.connection is not None and wrapper.connection.in_transaction)):
        return
    if wrapper.connection is not None and wrapper.connection.in_transaction:
        wrapper.connection.rollback()
    wrapper.in_atomic_block = False
    wrapper.needs_rollback = False
    wrapper.savepoint_ids = []
    wrapper.commit_on_exit = True
    if hasattr(wrapper, "atomic_blocks"):
        wrapper.atomic_blocks = []
    wrapper.run_on_commit = []
    wrapper.run_commit_hooks_on_set_autocommit_on = False
    wrapper.set_autocommit(True)
    wrapper.enable_constraint_checking()


@contextmanager
def _recording(wrapper: BaseDatabaseWrapper, on_statement: Callable[[str, float], None] | None) -> Iterator[None]:
    """Every statement Django runs on `wrapper`, with its time (for `run --dry-run`)."""
    if on_statement is None:
        yield
        return

    def record(execute, sql, params, many, context):  # Django's execute_wrapper protocol
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            on_statement(" ".join(str(sql).split()), time.perf_counter() - started)

    with wrapper.execute_wrapper(record):
        yield


def collect_sql(dplan: DjangoPlan) -> list[tuple[str, list[str]]]:
    """Each pending migration with the SQL `sqlmigrate` prints for it (a data step shows as a comment)."""
    out = []
    for step in dplan.steps:
        assert dplan.executor is not None
        try:
            statements = [s for s in dplan.executor.loader.collect_sql([step]) if s.strip()]
        except Exception as exc:  # e.g. RenameIndex looks the index up in the database, which has no table yet
            why = " ".join(f"{type(exc).__name__}: {exc}".split())
            statements = [f"-- SQL not available until the earlier migrations are applied ({why})"]
        out.append((label(step[0]), statements))
    return out


@contextmanager
def stand_in(alias: str, name: str = ":memory:") -> Iterator[BaseDatabaseWrapper]:
    """A Django connection on a private database (`name`: in memory, or a file), registered under `alias`
    itself while the block runs (this thread only): the ORM's queries for `alias`, a data step's
    included, go to it."""
    original = connections[alias]
    with registered(type(original)({**original.settings_dict, "NAME": name}, alias), original) as wrapper:
        yield wrapper
