"""Database A (the history replayed) and database B (the current models), built in memory.

Both are private in-memory SQLite databases on Django's own SQLite wrapper (so Django's SQL functions
are registered).

Neither touches `settings.DATABASES` or sends `post_migrate`: the private wrapper is registered only in
the thread-local `connections` handler, for as long as it is open.
"""

from __future__ import annotations

import hashlib
import itertools
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.apps import apps as global_apps
from django.db import connections, models, router
from django.db.backends.sqlite3._functions import register as register_django_functions
from django.db.backends.sqlite3.base import DatabaseWrapper
from django.db.models.fields.proxy import OrderWrt
from django.db.utils import ConnectionHandler

from tablemigrate.sqlite.schema import DIGEST_FORMAT

from .ownership import ownership


@dataclass(frozen=True)
class RuntimeValue:
    """A value for existing rows that Django computes anew each time (a callable default, auto_now):
    the migration computes it when it runs (`FillColumn`). `placeholder` is the value computed at
    generate time; it only fills a NOT NULL column while the table is rebuilt, and is replaced."""

    field: Any  # an unbound Django field carrying the default
    placeholder: str


_counter = itertools.count()


@contextmanager
def registered(wrapper: DatabaseWrapper, previous: DatabaseWrapper | None = None) -> Iterator[DatabaseWrapper]:
    """`wrapper`, connected and registered under its alias in this thread's `connections` while the
    block runs; then closed, and the alias given back to `previous` (or removed)."""
    connections[wrapper.alias] = wrapper
    try:
        wrapper.ensure_connection()
        yield wrapper
    finally:
        wrapper.close()
        if previous is None:
            del connections[wrapper.alias]
        else:
            connections[wrapper.alias] = previous


@contextmanager
def private_database(name: str = ":memory:") -> Iterator[DatabaseWrapper]:
    """A Django SQLite wrapper on `name`, registered under a private alias while the block runs."""
    settings = ConnectionHandler().configure_settings(
        {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": name}})["default"]
    with registered(DatabaseWrapper(settings, f"__tablemigrate_{next(_counter)}")) as wrapper:
        yield wrapper


def connect(database: str = ":memory:", **options: Any) -> sqlite3.Connection:
    """`sqlite3.connect(database, **options)` with the SQL functions Django registers on each of its own
    SQLite connections (`django_datetime_extract`, `REGEXP`, ...): the project's DDL calls them in an
    expression index (`Index(ExtractYear("day"))`), a CHECK (`Q(code__regex=...)`) or a partial index,
    and SQLite refuses to create, fill or check such an object without them ("no such function"). For
    the scratch, part and copy databases that are not Django's: nothing else of Django's wrapper (no
    converters, no PRAGMAs, Python's own transaction handling unless `options` say otherwise)."""
    conn = sqlite3.connect(database, **options)
    register_django_functions(conn)
    return conn


def unconnected_wrapper() -> DatabaseWrapper:
    """A Django SQLite wrapper that is never connected, with the default settings of an SQLite
    database: its operations convert values exactly as any SQLite connection of the project would
    (time zone: UTC under USE_TZ, as a database without TIME_ZONE)."""
    settings = ConnectionHandler().configure_settings(
        {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}})["default"]
    return DatabaseWrapper(settings, "__tablemigrate_unconnected")


def owning_wrapper(conn: sqlite3.Connection) -> DatabaseWrapper | None:
    """The Django SQLite connection whose database connection is `conn`, if one is open in this thread."""
    return next((w for w in connections.all(initialized_only=True)
                 if getattr(w, "connection", None) is conn and w.vendor == "sqlite"), None)


def raw(wrapper: DatabaseWrapper) -> sqlite3.Connection:
    wrapper.ensure_connection()
    return wrapper.connection


def table_models(target_alias: str = "default") -> list[type[models.Model]]:
    """Every model that gets a table on `target_alias`, whoever owns it: proxy, unmanaged and swapped
    models, and models the project's routers keep elsewhere, are left out. Auto-created m2m through
    tables come with their owner model."""
    target = connections[target_alias]
    return [m for m in global_apps.get_models()
            if m._meta.can_migrate(target) and router.allow_migrate_model(target_alias, m)]


def managed_models(target_alias: str = "default") -> list[type[models.Model]]:
    """The models of the apps tablemigrate owns (tablemigrate.project.ownership) that get a table on
    `target_alias`: what `generate`, `baseline`, drift and the system checks work on."""
    own = ownership()
    return [m for m in table_models(target_alias) if own.owns_model(m)]


def foreign_tables(target_alias: str = "default") -> frozenset[str]:
    """Lower-case tables of the models whose apps keep their Django migrations: never diffed, never
    dropped by `generate`, even when an older history (tablemigrate owning every app) created them."""
    from .fingerprint import with_m2m_tables  # lazy: `run` with nothing pending loads build, not fingerprint

    own = ownership()
    theirs = [m for m in table_models(target_alias) if not own.owns_model(m)]
    return frozenset(m._meta.db_table.lower() for m in with_m2m_tables(theirs))


def model_sql(wrapper: DatabaseWrapper, model_list: Iterable[type[models.Model]]) -> list[str]:
    """Django's own DDL for the models (what `migrate --run-syncdb` would run) on the private database
    `wrapper`, collected, not run. The deferred statements (indexes, unique constraints) are collected
    as Django 5.0+ collects them at the editor's exit, with no parameters: each is complete SQL whose
    literals Django already quoted (`quote_value`), so a `%` in it (`Q(name__startswith="a%")` in a
    partial index's condition) is text, never a format directive. Django 4.2's exit %-formats them with
    an empty tuple: `TypeError: not enough arguments for format string`."""
    with wrapper.schema_editor(collect_sql=True, atomic=False) as editor:
        for model in model_list:
            editor.create_model(model)
        deferred, editor.deferred_sql = editor.deferred_sql, []
        for statement in deferred:
            editor.execute(statement, None)
    return list(editor.collected_sql)


def model_sql_digest(statements: list[str]) -> str:
    """A digest of the models' DDL: equal digests mean the same statements, so the same schema (for one
    `DIGEST_FORMAT`, the meaning of the schema model's digests, which is part of it: a tablemigrate that
    digests tables differently takes the full comparison once; one that digests them alike, whatever
    its version, trusts it). Order does not count."""
    return hashlib.sha256(repr((DIGEST_FORMAT, sorted(statements))).encode()).hexdigest()


def build_from_models(wrapper: DatabaseWrapper, model_list: Iterable[type[models.Model]],
                      statements: list[str] | None = None) -> None:
    """Run the models' DDL (`statements`, or `model_sql(model_list)`) on the private database as one
    script: the same statements, without a cursor round trip each."""
    if statements is None:
        statements = model_sql(wrapper, model_list)
    # One C-level script; the private database holds no transaction that its implicit COMMIT could end.
    raw(wrapper).executescript("BEGIN;\n" + "\n".join(statements) + "\nCOMMIT;")


#: Field options that do not change the value Django computes and stores for a default; left out of the
#: field a `FillColumn` carries so the module shows what matters.
_IRRELEVANT_OPTIONS = ("verbose_name", "help_text", "db_index", "unique", "db_column", "db_comment",
                       "db_tablespace", "choices", "validators", "editable", "error_messages", "primary_key",
                       "unique_for_date", "unique_for_month", "unique_for_year", "db_collation",
                       "db_default", "serialize")


def computed_at_run_time(fld: models.Field) -> bool:
    """Whether Django's `effective_default` for `fld` is computed anew each time (a callable default,
    `auto_now`/`auto_now_add`): the value then belongs to the moment the migration runs, not to
    `generate`. Follows the order of `BaseDatabaseSchemaEditor._effective_default`."""
    if fld.has_default():
        return callable(fld.default)
    if getattr(fld, "generated", False):
        return False
    if not fld.null and fld.blank and fld.empty_strings_allowed:
        return False
    return bool(getattr(fld, "auto_now", False) or getattr(fld, "auto_now_add", False))


def runtime_field(fld: models.Field, default: Any = models.NOT_PROVIDED) -> models.Field | None:
    """An unbound copy of `fld` holding only what decides its effective default and its conversion,
    when Django's migration serializer can write it into a module (None otherwise: a lambda default,
    say, which Django's own migrations refuse too). `default`: the copy's default instead of `fld`'s."""
    from django.db.migrations.writer import MigrationWriter

    _name, _path, args, kwargs = fld.deconstruct()  # a relation names its model: resolved at run time
    for option in _IRRELEVANT_OPTIONS:
        kwargs.pop(option, None)
    if default is not models.NOT_PROVIDED:
        kwargs["default"] = default
    try:
        copy = type(fld)(*args, **kwargs)
        MigrationWriter.serialize(copy)
    except (ValueError, TypeError):
        return None
    return copy


class FieldDefaults:
    """Values for existing rows when a column is added or becomes NOT NULL, from the models'
    Python-side defaults by Django's own `effective_default` (`default=`, '' for blank text fields, now
    for auto_now/auto_now_add), as Django's AddField/AlterField compute them."""

    def __init__(self, wrapper: DatabaseWrapper, model_list: Iterable[type[models.Model]]):
        from .fingerprint import with_m2m_tables  # lazy: as in foreign_tables

        self.wrapper = wrapper
        self.models = {m._meta.db_table.lower(): m for m in with_m2m_tables(model_list)}

    def field(self, table: str, column: str) -> models.Field | None:
        """The model field stored in `table`.`column` (None: no model of these has it)."""
        model = self.models.get(table.lower())
        if model is None:
            return None
        return next((f for f in model._meta.local_concrete_fields if f.column.lower() == column.lower()), None)

    def literal(self, table: str, column: str) -> str | None:
        """The value as an SQL literal computed now (None: Django gives existing rows no value)."""
        fld = self.field(table, column)
        if fld is None:
            return None
        editor = self.wrapper.SchemaEditorClass(self.wrapper, collect_sql=True)
        value = editor.effective_default(fld)
        if value is None and isinstance(fld, OrderWrt):
            value = 0  # `_order` of Meta.order_with_respect_to: Django's AlterOrderWithRespectTo gives 0
        return None if value is None else editor.quote_value(value)

    def value(self, table: str, column: str) -> str | RuntimeValue | None:
        """`literal`, or for a value computed anew each time (callable default, auto_now) a
        `RuntimeValue`: the migration computes it when it runs, as Django's migrate would. A field the
        module cannot carry (a lambda default, a relation) keeps the value computed now."""

        fld = self.field(table, column)
        if fld is not None and fld.is_relation and computed_at_run_time(fld):
            # Never called here: it would read (or write: get_or_create) the developer's database, and
            # a primary key from there means nothing in production. The placeholder only fills a NOT
            # NULL column until the FillColumn that follows sets the value computed when it runs.
            carried = runtime_field(fld)
            if carried is not None:
                return RuntimeValue(carried, placeholder="0")
        literal = self.literal(table, column)
        if literal is None or fld is None or not computed_at_run_time(fld):
            return literal
        carried = runtime_field(fld)
        return literal if carried is None else RuntimeValue(carried, placeholder=literal)
