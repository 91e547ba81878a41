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
    """Django's own DDL for the models (what `migrate --run-syncdb` would run), collected and then run
    as one script on the private database: the same statements, without a cursor round trip each."""
    with wrapper.schema_editor(collect_sql=True, atomic=False) as editor:
        for model in model_list:
            editor.create_model(model)
    # One C-level script; the private database holds no transaction that its implicit COMMIT could end.
    raw(wrapper).executescript("BEGIN;\n" + "\n".join(editor.collected_sql) + "\nCOMMIT;")


class FieldDefaults:
    """Backfill values for NOT NULL columns, from the models' Python-side defaults (Django's own
    `effective_default`: `default=`, '' for blank text fields, now() for auto_now)."""

    def __init__(self, wrapper: DatabaseWrapper, model_list: Iterable[type[models.Model]]):
        from .fingerprint import with_m2m_tables

        self.wrapper = wrapper
        self.models = {m._meta.db_table.lower(): m for m in with_m2m_tables(model_list)}

    def literal(self, table: str, column: str) -> str | None:
        model = self.models.get(table.lower())
        fld = next((f for f in model._meta.local_concrete_fields if f.column.lower() == column.lower()),
                   None) if model is not None else None
        if fld is None:
            return None
        with self.wrapper.schema_editor(collect_sql=True, atomic=False) as editor:
            value = editor.effective_default(fld)
            return None if value is None else editor.quote_value(value)
