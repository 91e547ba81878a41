"""`generate --empty`: a data module to fill in, after the latest module.

As Django's `makemigrations --empty`. It changes no schema (its steps are Python, never replayed), so
`schema.sql` still describes the history with it: its header's `history` line is brought up to date,
and `generate --check` stays quiet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from django.db import models

from tablemigrate.errors import ConfigurationError
from tablemigrate.history import schemafile
from tablemigrate.history.loader import history_checksum, load_source, recorded_files

from .writer import module_names, render_empty_module


@dataclass(frozen=True)
class _Subject:
    """What the module's name is made of (writer.module_names)."""

    verb: str
    table: str


@dataclass(frozen=True)
class EmptyModule:
    name: str
    path: Path
    text: str
    snapshot_updated: bool  # schema.sql records the history with the module


def empty_module(directory: Path, model_list: list[type[models.Model]], *, label: str = "", app: str | None = None,
                 table: str | None = None, write: bool = True, now: datetime | None = None) -> EmptyModule:
    """The module for app label `app` or table `table` (one of them; of a model in `model_list`, the
    models of the apps tablemigrate owns), written unless `write` is false. Refused (ConfigurationError,
    nothing written) without a history: the tables it would work on are made by modules `generate`
    writes first."""
    if (app is None) == (table is None):
        raise ConfigurationError("--empty needs an app label or --table TABLE (one of them), the app or table the "
                                 "data module is for: `generate --empty NAME APP` (NAME, the module's label, first) "
                                 "or `generate --empty NAME --table TABLE`")
    if table is not None:
        chosen = [m for m in model_list if m._meta.db_table.lower() == table.lower()]
        if not chosen:
            raise ConfigurationError(f"--table {table}: no model of the apps tablemigrate owns has this table")
        subject = chosen[0]._meta.db_table
    else:
        chosen = sorted((m for m in model_list if m._meta.app_label == app), key=lambda m: m._meta.model_name)
        if not chosen:
            owned = sorted({m._meta.app_label for m in model_list})
            raise ConfigurationError(f"{app}: not an app whose tables tablemigrate makes (those are: "
                                     f"{', '.join(owned) or 'none'})")
        subject = str(app)
    recorded = recorded_files(directory)
    if not recorded:
        raise ConfigurationError(f"no migration module in {directory} yet: run `manage.py tablemigrate generate` "
                                 "(or `baseline`) first; a data module runs after the modules that make its tables")
    now = now or datetime.now(timezone.utc)
    name = module_names([_Subject("data", subject)], now, [r.name for r in recorded])[0]
    model = chosen[0]._meta
    text = render_empty_module(label, subject, (model.app_label, model.object_name), now)
    path = directory / f"{name}.py"
    load_source(text.encode(), name, path)  # what `run` will load: it must
    if not write:
        return EmptyModule(name, path, text, False)
    path.write_text(text, encoding="utf-8")
    after = recorded_files(directory)
    return EmptyModule(name, path, text,
                       schemafile.record_history(directory, history_checksum(recorded), history_checksum(after)))
