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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.db.migrations.loader import MigrationLoader

from tablemigrate import conf
from tablemigrate.errors import MigrationFailed
from tablemigrate.sqlite.schema import affinity

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


@contextmanager
def schema_editor(conn: sqlite3.Connection) -> Iterator[Any]:
    """Django's schema editor on the Django connection whose database connection is `conn`, inside the
    module's transaction (`_in_transaction`): what a data step gets, as Django's executor gives it."""
    wrapper = _wrapper_of(conn)
    with _in_transaction(wrapper), wrapper.schema_editor(atomic=False) as editor:
        yield editor


def _wrapper_of(conn: sqlite3.Connection) -> Any:
    wrapper = owning_wrapper(conn)
    if wrapper is not None:
        return wrapper
    raise MigrationFailed("a Django data step runs on Django's connection to the database; this connection is "
                          "not one (run it with `manage.py tablemigrate run`)")


def run(conn: sqlite3.Connection, app_label: str, migration: str, path: list[int], checksum: str,
        backwards: bool) -> None:
    """Run the carried operation (`DjangoDataStep.apply`): see the module's docstring."""
    wrapper = owning_wrapper(conn)  # the alias whose history carried the step
    directory = conf.migrations_dir(wrapper.alias if wrapper is not None else "default")
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
    with schema_editor(conn) as editor:
        if backwards:
            op.database_backwards(app_label, editor, after, state)
        else:
            op.database_forwards(app_label, editor, state, after)


def run_function(conn: sqlite3.Connection, function: Callable[[Any, Any], Any]) -> None:
    """Call `function(apps, schema_editor)` as Django's `RunPython` calls its code (a module's
    `RunPythonWithModels`): `apps` holds the models as the tables are at this point of the history
    (`models_as_tables`), the schema editor is on the module's transaction."""
    with schema_editor(conn) as editor:
        function(models_as_tables(editor.connection), editor)


def models_as_tables(wrapper: Any) -> Any:
    """Django's historical models (a `StateApps`, what `RunPython` gets as `apps`) of the project's
    models as the database's tables are now, read inside the module's transaction: while a module runs,
    its tables are what the history makes them at that module. Each model starts from its current
    definition (`ProjectState.from_apps`, the state Django's autodetector compares) and is reconciled
    with its live table as Django's `inspectdb` reads it (`get_table_description`):

    - a model whose table does not exist (a later module creates it, or renames another table to it: the
      step cannot tell which table that is) is left out, with the proxies of it and the relations to it,
      and `apps.get_model` of it raises a LookupError that says so; so is a many-to-many field whose join
      table does not exist;
    - a field whose column the table does not have (a later module adds it) is left out;
    - a column with no field (a later module drops or renames it) gets the field `inspectdb` would
      write for it (its name, type, size, NULL), so the step can read and write it;
    - a field other than a relation whose column has another type affinity than the field's own
      (a later module changes the type) is replaced by `inspectdb`'s field for the column.

    Like Django's historical models they have the fields and the managers marked
    `use_in_migrations`, not the models' methods or `save()` overrides."""
    from django.apps import apps as global_apps
    from django.core.management.commands.inspectdb import Command as InspectDB
    from django.db.migrations.state import ProjectState

    current = ProjectState.from_apps(global_apps)
    model_tables = _model_tables(current, global_apps)
    with wrapper.cursor() as cursor:
        tables = {t.name.lower() for t in wrapper.introspection.get_table_list(cursor) if t.type == "t"}
        described = {key: wrapper.introspection.get_table_description(cursor, table)
                     for key, table in model_tables.items() if table.lower() in tables}
    models = {key: model.clone() for key, model in current.models.items()}
    gone = {key for key, model in models.items() if _has_table(model) and key not in described}
    for _ in models:  # proxies of a model left out go with it, and a base a kept model needs stays
        more = {key for key, model in models.items() if key not in gone and model.options.get("proxy")
                and _bases(model) & gone}
        needed = {base for key, model in models.items() if key not in gone and not model.options.get("proxy")
                  for base in _bases(model) & gone}
        if (gone | more) - needed == gone:
            break
        gone = (gone | more) - needed
    inspect = InspectDB()
    for key, model in list(models.items()):
        if key in gone:
            del models[key]
            continue
        for name, fld in list(model.fields.items()):
            if _related_keys(fld, key[0]) & gone:
                del model.fields[name]
        if key in described:
            _as_table(model, described[key], wrapper, inspect)
    missing = {key: model_tables[key] for key in gone if key in model_tables}
    apps = _apps_without(missing, models)
    joins = [(model._meta.app_label, model._meta.model_name, f.name) for model in apps.get_models()
             for f in model._meta.local_many_to_many
             if f.remote_field.through._meta.auto_created and f.m2m_db_table().lower() not in tables]
    if not joins:
        return apps
    for app_label, model_name, name in joins:
        del models[app_label, model_name].fields[name]
    return _apps_without(missing, models)


def _apps_without(missing: dict[tuple[str, str], str], models: dict) -> Any:
    """Django's `StateApps` of `models`, where asking for a model left out because its table `missing[key]`
    does not exist says so (Django's LookupError says only that there is no such model)."""
    from django.db.migrations.state import StateApps

    class AppsAsTables(StateApps):
        def get_model(self, app_label: str, model_name: str | None = None, require_ready: bool = True) -> Any:
            try:
                return super().get_model(app_label, model_name, require_ready)
            except LookupError:
                app, _, name = (app_label if model_name is None else f"{app_label}.{model_name}").partition(".")
                table = missing.get((app.lower(), name.lower()))
                if table is None:
                    raise
            raise LookupError(f"model {app}.{name} is not in this step's apps: its table {table} does not exist at "
                              "this point of the history (a later module creates it, or renames another table to "
                              "it, and the step cannot be given the table's old name)") from None

    return AppsAsTables(set(), models)


def _model_tables(state: Any, apps: Any) -> dict[tuple[str, str], str]:
    """The table of each concrete model of `state` that gets one (managed, not a proxy)."""
    return {key: apps.get_model(*key)._meta.db_table for key, model in state.models.items() if _has_table(model)}


def _has_table(model: Any) -> bool:
    return model.options.get("managed", True) is not False and not model.options.get("proxy")


def _bases(model: Any) -> set[tuple[str, str]]:
    """The (app label, model name) of the model bases of a model state."""
    out = set()
    for base in model.bases:
        label = base if isinstance(base, str) else getattr(getattr(base, "_meta", None), "label_lower", None)
        if label and "." in label:
            app, _, name = label.lower().partition(".")
            out.add((app, name))
    return out


def _related_keys(fld: Any, app_label: str) -> set[tuple[str, str]]:
    """The (app label, model name) of the models a field state's relation needs: the related model and
    an explicit `through` model (none for a field that is not a relation)."""
    remote = getattr(fld, "remote_field", None)
    out = set()
    for model in (getattr(remote, "model", None), getattr(remote, "through", None)):
        label = model if isinstance(model, str) or model is None else model._meta.label_lower
        if label:
            app, _, name = (label if "." in label else f"{app_label}.{label}").lower().partition(".")
            out.add((app, name))
    return out


def _as_table(model: Any, description: list[Any], wrapper: Any, inspect: Any) -> None:
    """Reconcile one model state with its table's columns (`description`): see `models_as_tables`."""
    live = {row.name.lower(): row for row in description}
    have: set[str] = set()
    for name, fld in list(model.fields.items()):
        column = _column(name, fld)
        if column is None:
            continue
        row = live.get(column.lower())
        if row is None:
            del model.fields[name]
            continue
        have.add(column.lower())
        if not fld.is_relation and _other_affinity(fld, name, row, wrapper):
            model.fields[name] = _inspected(inspect, wrapper, model, row, set(), name, pk=fld.primary_key)[1]
    has_pk = any(getattr(f, "primary_key", False) for f in model.fields.values())
    for row in description:
        if row.name.lower() not in have:
            name, fld = _inspected(inspect, wrapper, model, row, set(model.fields), None, pk=row.pk and not has_pk)
            model.fields[name] = fld
            has_pk = has_pk or row.pk


def _other_affinity(fld: Any, name: str, row: Any, wrapper: Any) -> bool:
    bound = fld.clone()
    bound.set_attributes_from_name(name)
    declared = bound.db_type(wrapper)
    return declared is not None and affinity(declared) != affinity(row.type_code or "")


def _inspected(inspect: Any, wrapper: Any, model: Any, row: Any, used: set[str], name: str | None, *,
               pk: bool = False) -> tuple[str, Any]:
    """The field Django's `inspectdb` writes for column `row`, unbound, and its name (`name`, or as
    inspectdb names it, not one of `used`)."""
    from django.db import models

    new_name, params, _notes = inspect.normalize_col_name(row.name, used, False)
    field_type, type_params, _notes = inspect.get_field_type(wrapper, model.options.get("db_table") or "", row)
    params.update(type_params)
    if name is not None and name != new_name:
        new_name, params["db_column"] = name, row.name
    if pk:
        params["primary_key"] = True
    elif row.null_ok:
        params["null"] = True
    return new_name, getattr(models, field_type)(**params)
