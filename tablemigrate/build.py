"""Database A (the history replayed) and database B (the current models), as private in-memory
SQLite databases on Django's own SQLite wrapper (so Django's SQL functions are registered).

Neither touches `settings.DATABASES` or sends `post_migrate`: the private wrapper is registered only in
the thread-local `connections` handler, for as long as it is open.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.apps import apps as global_apps
from django.db import connections, models, router
from django.db.backends.sqlite3.base import DatabaseWrapper
from django.db.utils import ConnectionHandler

from .apply import apply_migration
from .loader import Migration

_counter = itertools.count()


@contextmanager
def private_database(name: str = ":memory:") -> Iterator[DatabaseWrapper]:
    """A Django SQLite wrapper on `name`, registered under a private alias while the block runs."""
    alias = f"__tablemigrate_{next(_counter)}"
    settings = ConnectionHandler().configure_settings(
        {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": name}})["default"]
    wrapper = DatabaseWrapper(settings, alias)
    connections[alias] = wrapper
    try:
        wrapper.ensure_connection()
        yield wrapper
    finally:
        wrapper.close()
        del connections[alias]


def raw(wrapper: DatabaseWrapper) -> sqlite3.Connection:
    wrapper.ensure_connection()
    return wrapper.connection


def managed_models(target_alias: str = "default") -> list[type[models.Model]]:
    """Every model that gets a table on `target_alias`: proxy, unmanaged and swapped models, and
    models the project's routers keep elsewhere, are left out. Auto-created m2m through tables come
    with their owner model."""
    target = connections[target_alias]
    return [m for m in global_apps.get_models()
            if m._meta.can_migrate(target) and router.allow_migrate_model(target_alias, m)]


def build_from_models(wrapper: DatabaseWrapper, model_list: Iterable[type[models.Model]]) -> None:
    with wrapper.schema_editor() as editor:
        for model in model_list:
            editor.create_model(model)


def replay_history(wrapper: DatabaseWrapper, migrations: Iterable[Migration]) -> None:
    conn = raw(wrapper)
    for migration in migrations:
        apply_migration(conn, migration, "up", run_python=False)  # schema only: no rows to work on


class FieldDefaults:
    """Backfill values for NOT NULL columns, from the models' Python-side defaults (Django's own
    `effective_default`: `default=`, '' for blank text fields, now() for auto_now)."""

    def __init__(self, wrapper: DatabaseWrapper, model_list: Iterable[type[models.Model]]):
        self.wrapper = wrapper
        self.fields: dict[tuple[str, str], models.Field] = {}
        for model in model_list:
            for m in [model] + [f.remote_field.through for f in model._meta.local_many_to_many
                                if f.remote_field.through._meta.auto_created]:
                for f in m._meta.local_concrete_fields:
                    self.fields[(m._meta.db_table.lower(), f.column.lower())] = f

    def literal(self, table: str, column: str) -> str | None:
        fld = self.fields.get((table.lower(), column.lower()))
        if fld is None:
            return None
        with self.wrapper.schema_editor(collect_sql=True, atomic=False) as editor:
            value = editor.effective_default(fld)
            return None if value is None else editor.quote_value(value)
