"""Django's migration state with apps that tablemigrate owns (they have no Django migrations).

Django puts every app without migrations into its migration state as a "real" app, each model as a
stub without relations (`ModelState.from_model(model, exclude_rels=True)`), but keeps the stub's
bases. A model of an owned app that inherits from a model of an app with Django migrations
(`HomePage(wagtail.models.Page)`, `Featured(vendor.Category)`, a proxy of `auth.User`) then cannot be
rendered before that app's first migration: every state of a fresh database's migrate raises
InvalidBasesError, in `tablemigrate run`, in `manage.py migrate` and in the test runner's migrate alike
(Django documents it as unsupported: "unmigrated apps cannot depend on migrated apps").

The stub only has to exist for Django's migrations of the other apps, which cannot depend on an owned
app's models anyway; so a stub's model bases are dropped (it becomes a plain model with its own fields),
and a proxy stub stops being a proxy. The real models, and every state built with relations
(makemigrations, the autodetector), are untouched.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.db.migrations.state import ModelState

_PATCHED = "_tablemigrate_stub_bases"


def install() -> None:
    """Wrap ModelState.from_model once per process (AppConfig.ready)."""
    if getattr(ModelState.from_model, _PATCHED, False):
        return
    original = ModelState.from_model.__func__

    def from_model(cls: type[ModelState], model: type[models.Model], exclude_rels: bool = False) -> Any:
        state = original(cls, model, exclude_rels)
        if exclude_rels and any(isinstance(base, str) for base in state.bases):
            kept = tuple(base for base in state.bases if not isinstance(base, str))
            if not any(isinstance(b, type) and issubclass(b, models.Model) for b in kept):
                kept += (models.Model,)
            state.bases = kept
            state.options.pop("proxy", None)
        return state

    setattr(from_model, _PATCHED, True)
    ModelState.from_model = classmethod(from_model)  # type: ignore[method-assign,assignment]
