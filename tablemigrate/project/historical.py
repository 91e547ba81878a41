"""Run a data step that `baseline` carried from the project's own Django migrations.

As Django's executor runs it: with the historical models of its migration and a schema editor on the
database's Django connection.

tablemigrate.generate.datasteps carries the steps (`baseline`); this module is what a `DjangoDataStep` calls when a
module runs. How the historical models meet tables already in their final shape: see tablemigrate.generate.datasteps.
"""

from __future__ import annotations

import hashlib
import sqlite3
import sys
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.db.migrations.loader import MigrationLoader

from tablemigrate import conf
from tablemigrate.errors import MigrationFailed

from .build import owning_wrapper

#: The archive of the owned apps' Django migrations, inside the migrations directory (a folder: module
#: discovery reads only the directory's own `*.py` files).
ARCHIVE = "django"

def archive_dir(directory: Path) -> Path:
    return directory / ARCHIVE


def file_checksum(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class HistoryLoader(MigrationLoader):
    """Django's loader, reading the archived packages (`archive`: app label -> module name) for the apps
    they hold. Every other app's migrations come from where Django finds them; an app whose migrations
    the settings disable (`DjangoMigrationsDisabled`, an owned app's empty package) is read from its
    `migrations` package when it has one: the history of its models is there all the same."""

    def __init__(self, archive: dict[str, str]):
        self.archive = archive
        super().__init__(None, ignore_no_migrations=True)

    def migrations_module(self, app_label: str) -> tuple[str | None, bool]:  # type: ignore[override]
        if app_label in self.archive:
            return self.archive[app_label], False
        name, explicit = MigrationLoader.migrations_module(app_label)
        if name is None:
            from django.apps import apps

            return f"{apps.get_app_config(app_label).name}.migrations", False
        return name, explicit


def importable(archive: Path) -> dict[str, str]:
    """The archive's app packages as importable modules, under a package name of this archive's own
    (the migrations directory need not be on sys.path): app label -> module name."""
    top = "_tablemigrate_archive_" + hashlib.sha256(str(archive.resolve()).encode()).hexdigest()[:12]
    if top not in sys.modules:
        package = types.ModuleType(top)
        package.__path__ = [str(archive)]
        sys.modules[top] = package
    return {p.name: f"{top}.{p.name}" for p in sorted(archive.iterdir()) if (p / "__init__.py").is_file()}


_loaders: dict[tuple, HistoryLoader] = {}


def _loader(directory: Path) -> HistoryLoader:
    """Django's loader over the archive, kept while the archive's files are unchanged."""
    archive = archive_dir(directory)
    if not archive.is_dir():
        raise MigrationFailed(f"{archive} does not exist: the archived Django migrations that baseline carried "
                              "the data steps from are needed to run them (restore the folder from version "
                              "control)")
    stamp = tuple(sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in archive.rglob("*.py")))
    key = (str(archive.resolve()), stamp)
    if key not in _loaders:
        _loaders.clear()
        _loaders[key] = HistoryLoader(importable(archive))
    return _loaders[key]


def _reconciled(state: Any, final: Any, conn: sqlite3.Connection) -> None:
    """Give each model of `state` whose table exists the table's columns (see the module's docstring)."""
    for key, model in state.models.items():
        table = model.options.get("db_table") or f"{key[0]}_{key[1]}"
        columns = {c.lower() for (c,) in conn.execute("SELECT name FROM pragma_table_xinfo(?)", (table,))}
        if not columns or model.options.get("managed", True) is False or model.options.get("proxy"):
            continue
        have = {}
        for name, fld in list(model.fields.items()):
            column = _column(name, fld)
            if column is None:
                continue
            if column.lower() not in columns:
                del model.fields[name]
            have[column.lower()] = name
        later = final.models.get(key)
        if later is None:
            continue
        for name, fld in later.fields.items():
            column = _column(name, fld)
            if column is not None and column.lower() in columns and column.lower() not in have \
                    and name not in model.fields:
                model.fields[name] = fld.clone()
    if getattr(state, "_relations", None) is not None:  # Django's relation cache, from the fields as they were
        state._relations = None


def _column(name: str, fld: Any) -> str | None:
    """The column a field state stores in (None: none, as a many-to-many field)."""
    if fld.many_to_many:
        return None
    bound = fld.clone()
    bound.set_attributes_from_name(name)
    return bound.get_attname_column()[1]


@contextmanager
def _in_transaction(wrapper: Any) -> Iterator[None]:
    """Django's connection, told that a transaction it did not open is running (autocommit off, as
    `transaction.set_autocommit(False)` leaves it): the step's `atomic()` blocks become savepoints and
    nothing commits or rolls back the module's transaction."""
    saved = (wrapper.autocommit, wrapper.in_atomic_block, wrapper.needs_rollback, list(wrapper.savepoint_ids),
             wrapper.commit_on_exit)
    wrapper.autocommit = False
    try:
        yield
    finally:
        (wrapper.autocommit, wrapper.in_atomic_block, wrapper.needs_rollback, wrapper.savepoint_ids,
         wrapper.commit_on_exit) = saved
        wrapper.run_on_commit = []


def _wrapper_of(conn: sqlite3.Connection) -> Any:
    wrapper = owning_wrapper(conn)
    if wrapper is not None:
        return wrapper
    raise MigrationFailed("a Django data step runs on Django's connection to the database; this connection is "
                          "not one (run it with `manage.py tablemigrate run`)")


def run(conn: sqlite3.Connection, app_label: str, migration: str, path: list[int], checksum: str,
        backwards: bool) -> None:
    """Run the carried operation (`DjangoDataStep.apply`): see the module's docstring."""
    directory = conf.migrations_dir()
    source = archive_dir(directory) / app_label / f"{migration}.py"
    if not source.is_file() or file_checksum(source) != checksum:
        raise MigrationFailed(f"{source} is {'changed' if source.is_file() else 'missing'}: the step was carried "
                              "from the archived file as baseline copied it (restore it from version control)")
    loader = _loader(directory)
    key = (app_label, migration)
    if key not in loader.graph.nodes:
        raise MigrationFailed(f"Django's loader finds no migration {app_label}.{migration} in {archive_dir(directory)}")
    state = loader.project_state(key, at_end=False)
    operations = loader.graph.nodes[key].operations
    for depth, index in enumerate(path):
        for op in operations[:index]:  # as SeparateDatabaseAndState and Migration.apply advance the state
            op.state_forwards(app_label, state)
        if depth < len(path) - 1:
            operations = operations[index].database_operations
    op = operations[path[-1]]
    if not hasattr(loader, "_tablemigrate_final"):
        loader._tablemigrate_final = loader.project_state()  # type: ignore[attr-defined]
    _reconciled(state, loader._tablemigrate_final, conn)  # type: ignore[attr-defined]
    after = state.clone()
    op.state_forwards(app_label, after)
    wrapper = _wrapper_of(conn)
    with _in_transaction(wrapper), wrapper.schema_editor(atomic=False) as editor:
        if backwards:
            op.database_backwards(app_label, editor, after, state)
        else:
            op.database_forwards(app_label, editor, state, after)
