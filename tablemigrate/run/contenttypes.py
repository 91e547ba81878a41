"""Content types follow model renames, as under Django's `migrate`.

Django's `migrate` adds a RenameContentType operation after every RenameModel
(django.contrib.contenttypes.management.inject_rename_contenttypes_operations): the model's ContentType
row takes the new model name and keeps its id, so the permissions, admin log entries and generic foreign
keys pointing at it follow the model. A module that renames a model records it (`model_renames`, written
by `generate`); `run` renames the content type in the module's own transaction, just before its history
row, and `revert` renames it back. As Django does it: through the ORM on the connection being migrated,
only where django.contrib.contenttypes is installed, the router lets ContentType live on that database
and its table exists there; only when the old content type exists and the new one does not yet (Django's
IntegrityError fallback leaves both as they are, for `remove_stale_contenttypes`); then
ContentType's cache is cleared. The permissions are not renamed here (RenameContentType does not
either): post_migrate, sent with the renames in its `plan` as `migrate` sends it, does what the Django
at hand does after a RenameModel (up to 6.0, create_permissions adds the new model's beside the old
ones; 6.1's auth renames the old ones).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from typing import Any

from tablemigrate.history.loader import Migration
from tablemigrate.project.djangoapps import wrapper_of

from .apply import HistoryRow

logger = logging.getLogger("tablemigrate")


class RenamesFollowed(HistoryRow):
    """What `run`/`revert` write inside each module's transaction on `alias`: the content types of the
    models it renames follow (`follow`), then its history row."""

    def __init__(self, alias: str):
        self.alias = alias

    def record(self, conn: sqlite3.Connection, migration: Migration, direction: str, seconds: float) -> None:
        if migration.model_renames:
            follow(self.alias, conn, migration.model_renames, direction)
        super().record(conn, migration, direction, seconds)


def follow(alias: str, conn: sqlite3.Connection, renames: list[tuple[str, str, str]], direction: str) -> None:
    """Rename the content type of each (app label, old model, new model) in `renames` (`direction`
    "down": back, in reverse order), on `conn` when it is Django's connection for `alias` (a stand-in
    or a copy the ORM does not reach is left alone)."""
    from django.apps import apps
    from django.db import router

    wrapper = wrapper_of(alias, conn)
    if wrapper is None:
        return
    try:
        content_type = apps.get_model("contenttypes", "ContentType")
    except LookupError:  # django.contrib.contenttypes is not installed
        return
    if not router.allow_migrate_model(alias, content_type):
        return
    if content_type._meta.db_table not in wrapper.introspection.table_names():
        return
    steps = renames if direction == "up" else [(app, new, old) for app, old, new in reversed(renames)]
    manager = content_type.objects.db_manager(alias)
    for app_label, old, new in steps:
        stale = manager.filter(app_label=app_label, model=old)
        if manager.filter(app_label=app_label, model=new).exists():
            if stale.exists():
                logger.warning("content type %s.%s left as it is: %s.%s exists already (as Django's RenameContentType "
                               "leaves them; `manage.py remove_stale_contenttypes` removes the stale one)",
                               app_label, old, app_label, new)
            continue
        if stale.update(model=new):
            content_type.objects.clear_cache()  # it may hold the row under its old name


def post_migrate_plan(done: Iterable[Any], backward: bool) -> list[tuple[Any, bool]]:
    """post_migrate's `plan` for the modules a run applied (a revert reverted: `backward`), as Django's
    `migrate` passes the plan it executed: one Django migration per module and app that renames models,
    holding a RenameModel for each. Receivers that follow model renames read it there: Django 6.1's auth
    renames the renamed model's permissions (`add_category` -> `add_topic`, the same rows), which older
    Djangos leave as they are."""
    from django.db import migrations

    plan = []
    for module in done:
        renames = getattr(module, "model_renames", None) or []  # Django's migrations a run applied have none
        for app_label in dict.fromkeys(app for app, _old, _new in renames):
            migration = migrations.Migration(module.name, app_label)
            migration.operations = [migrations.RenameModel(old, new) for app, old, new in renames if app == app_label]
            plan.append((migration, backward))
    return plan
