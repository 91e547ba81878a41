"""A cheap fingerprint of what the models would put in the database, without building anything.

`generate` records it in `schema.sql`; the system check compares it with the current models to warn,
at `runserver`/`check` time, about model changes that have no generated migration. It is a hint: it
hashes the fields' database facts (column, SQL type, NULL, unique, index, relation, db_default) and the
models' table-level options, so a change that does not touch the schema (verbose_name, choices, a
Python default) does not trip it, while `generate --check` stays the authoritative test.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import lru_cache

from django.db import models


@lru_cache(maxsize=1)
def _sqlite():
    """An SQLite wrapper that is never connected: `db_type()` needs only its type tables."""
    from django.db.backends.sqlite3.base import DatabaseWrapper
    from django.db.utils import ConnectionHandler

    settings = ConnectionHandler().configure_settings(
        {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}})["default"]
    return DatabaseWrapper(settings, "__tablemigrate_fingerprint")


def _field(f: models.Field, conn) -> tuple:
    rel = f.remote_field
    target = None
    if rel is not None and not isinstance(rel.model, str):
        target = (rel.model._meta.db_table, getattr(rel, "field_name", None), getattr(f, "db_constraint", None))
    db_default = getattr(f, "db_default", None)
    if db_default is models.NOT_PROVIDED:  # Django 5.0+ spelling of "none" (4.2 has no db_default)
        db_default = None
    return (f.column, f.db_type(conn), f.null, f.unique, f.primary_key, f.db_index,
            repr(db_default), getattr(f, "db_collation", None), target)


def _option(option) -> tuple:
    """An index or constraint by what reaches the database, the same under every supported Django
    (their `deconstruct()` output gains keywords from version to version)."""
    state = option.__dict__  # not getattr: CheckConstraint.check warns on Django 5.1+
    condition = state.get("condition") or state.get("check")
    return (type(option).__name__, option.name, tuple(getattr(option, "fields", ()) or ()),
            str(condition) if condition is not None else None,
            tuple(str(e) for e in getattr(option, "expressions", ()) or ()),
            tuple(getattr(option, "include", ()) or ()), str(getattr(option, "deferrable", None)))


def _model(model: type[models.Model], conn) -> tuple:
    meta = model._meta
    return (meta.db_table,
            tuple(sorted(_field(f, conn) for f in meta.local_concrete_fields)),
            tuple(sorted(tuple(u) for u in meta.unique_together)),
            tuple(sorted(_option(i) for i in meta.indexes)),
            tuple(sorted(_option(c) for c in meta.constraints)))


def with_m2m_tables(model_list: Iterable[type[models.Model]]) -> list[type[models.Model]]:
    """The models plus the auto-created through models of their many-to-many fields."""
    out = []
    for model in model_list:
        out.append(model)
        for f in model._meta.local_many_to_many:
            through = f.remote_field.through
            if not isinstance(through, str) and through._meta.auto_created:
                out.append(through)
    return out


def model_tables(model_list: list[type[models.Model]]) -> set[str]:
    """Lower-case names of the tables the models own (auto-created m2m tables included)."""
    return {m._meta.db_table.lower() for m in with_m2m_tables(model_list)}


def models_fingerprint(model_list: Iterable[type[models.Model]]) -> str:
    conn = _sqlite()
    seen = sorted(_model(m, conn) for m in with_m2m_tables(model_list))
    return hashlib.sha256(repr(seen).encode()).hexdigest()
