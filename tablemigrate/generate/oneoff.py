"""One-off values for existing rows, as `makemigrations` takes them.

A Python expression, evaluated with the `datetime` and `django.utils.timezone` modules available (Django's
`InteractiveMigrationQuestioner._ask_default`), given on the command line (`generate --default
TARGET=EXPR`) or at the prompt. A callable (`timezone.now`) is computed when the migration runs, as a
callable default is (`RuntimeValue`); any other value is converted for the column by its model field,
as Django converts a default, and refused with one line when the field does not take it.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from tablemigrate.errors import ConfigurationError
from tablemigrate.project.build import RuntimeValue, runtime_field, unconnected_wrapper
from tablemigrate.project.fingerprint import with_m2m_tables

from .plan import Value

#: What a one-off value is, in the words of the prompt and the refusals.
PYTHON = ("a Python expression, as makemigrations takes it (datetime and django.utils.timezone are available: "
          "0, 'unknown', datetime.date(2024, 1, 1), or timezone.now for the time the migration runs)")


def python_value(code: str) -> Any:
    """`code` evaluated as Django's questioner evaluates a default typed at its prompt."""
    try:
        return eval(code, {}, {"datetime": datetime, "timezone": timezone})  # noqa: S307 - the developer's input
    except Exception as exc:  # anything the expression raises is the answer's fault
        raise ValueError(f"{code!r} is not a Python value ({type(exc).__name__}: {exc})") from None


def value_for(fld: models.Field | None, code: str, where: str) -> Value:
    """The one-off value `code` for column `where` (TABLE.COLUMN) stored by model field `fld`: an SQL
    literal, or a `RuntimeValue` for a callable. ValueError (one line) when `fld` does not take it."""
    obj = python_value(code)
    wrapper = unconnected_wrapper()
    editor = wrapper.SchemaEditorClass(wrapper, collect_sql=True)

    def literal(value: Any) -> str:
        if fld is None:
            return editor.quote_value(value)
        try:
            prepared = fld.get_db_prep_save(fld.to_python(value), connection=wrapper)
        except ValidationError as exc:
            raise ValueError(f"{code} is not a value for {where} ({type(fld).__name__}): "
                             f"{' '.join(exc.messages).rstrip('.')}") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{code} is not a value for {where} ({type(fld).__name__}): {exc}") from None
        if prepared is None:
            raise ValueError(f"{code} gives no value (NULL) for {where}, which is NOT NULL")
        return editor.quote_value(prepared)

    if not callable(obj):
        return literal(obj)
    carried = None if fld is None else runtime_field(fld, default=obj)
    if carried is None:
        raise ValueError(f"{code} cannot be written into a module (Django's migration writer cannot serialize it): "
                         "give a function importable by its path, such as timezone.now")
    if fld is not None and fld.is_relation:
        return RuntimeValue(carried, placeholder="0")  # never called here (see FieldDefaults.value)
    try:
        now = obj()
    except Exception as exc:  # calling it is the answer's own code
        raise ValueError(f"{code}() fails ({type(exc).__name__}: {exc})") from None
    return RuntimeValue(carried, placeholder=literal(now))


def given_values(specs: Iterable[str], model_list: Iterable[type[models.Model]]) -> dict[tuple[str, str], Value]:
    """`--default` options, TARGET=EXPR each: TARGET is TABLE.COLUMN (as generate names a column) or
    APP_LABEL.MODEL.FIELD (as Django names a field) of the models given. -> (table lower, column lower) ->
    value. ConfigurationError (one line) for a target no model stores, a target given twice, or a value
    the field does not take."""
    columns: dict[tuple[str, str], tuple[str, models.Field]] = {}
    fields: dict[tuple[str, str, str], tuple[str, str]] = {}
    for model in with_m2m_tables(list(model_list)):
        meta = model._meta
        for fld in meta.local_concrete_fields:
            columns[(meta.db_table.lower(), fld.column.lower())] = (f"{meta.db_table}.{fld.column}", fld)
            fields[(meta.app_label.lower(), meta.model_name, fld.name.lower())] = (meta.db_table.lower(),
                                                                                   fld.column.lower())
            fields.setdefault((meta.app_label.lower(), meta.model_name, fld.attname.lower()),
                              (meta.db_table.lower(), fld.column.lower()))
    out: dict[tuple[str, str], Value] = {}
    for spec in specs:
        target, sep, code = spec.partition("=")
        parts = target.strip().lower().split(".")
        key = (fields.get((parts[0], parts[1], parts[2])) if len(parts) == 3
               else tuple(parts) if len(parts) == 2 else None)
        if not sep or not code.strip():
            raise ConfigurationError(f"--default {spec}: write TABLE.COLUMN=VALUE or APP.MODEL.FIELD=VALUE, VALUE "
                                     f"being {PYTHON}")
        if key not in columns:
            raise ConfigurationError(f"--default {target}: no model of the apps tablemigrate owns stores such a "
                                     "column (write TABLE.COLUMN or APP.MODEL.FIELD)")
        where, fld = columns[key]
        if key in out:
            raise ConfigurationError(f"--default {where}: given twice")
        try:
            out[key] = value_for(fld, code.strip(), where)
        except ValueError as exc:
            raise ConfigurationError(f"--default {where}: {exc}") from None
    return out


def unused(given: Iterable[tuple[str, str]], used: set[tuple[str, str]]) -> str | None:
    """The refusal for `--default` values no column took (None: all were used)."""
    left = sorted(set(given) - used)
    if not left:
        return None
    names = ", ".join(f"{t}.{c}" for t, c in left)
    return (f"--default {names}: the changes need no one-off value there (only a column added NOT NULL, or made "
            "NOT NULL, without a default takes one); nothing was written")

