"""Which apps' tables tablemigrate owns, and which apps keep their own Django migrations.

The rule (docs/decisions.md, "ownership"):
- With `TABLEMIGRATE_APPS = [labels]`, tablemigrate owns exactly those apps.
- Without it, tablemigrate owns the project's own apps: those whose code lives inside the project
  (under BASE_DIR when it is set) and not in an installed package (site-packages, dist-packages, the
  standard library).
- Either way it also owns every app that has no Django migrations (`MIGRATION_MODULES` maps it to
  None, or it has no `migrations` package): nothing else would create its tables. So a project that
  sets `MIGRATION_MODULES = DjangoMigrationsDisabled()` keeps the 0.1 behaviour: tablemigrate owns all.

Every other app (Django's contrib apps, Wagtail, allauth, ...) keeps its Django migrations, which
`tablemigrate run` applies through Django's migration executor (tablemigrate.project.djangoapps).
"""

from __future__ import annotations

import importlib.util
import pkgutil
import site
import sys
import sysconfig
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from importlib.machinery import ModuleSpec
from pathlib import Path

from django.apps import AppConfig, apps
from django.conf import settings
from django.db import models

from tablemigrate.errors import ConfigurationError

SELF = "tablemigrate"


@dataclass(frozen=True)
class Ownership:
    owned: frozenset[str]     # app labels whose tables tablemigrate creates and changes
    django: frozenset[str]    # app labels whose Django migrations create and change their tables
    explicit: bool            # from TABLEMIGRATE_APPS

    def owns(self, label: str) -> bool:
        return label in self.owned

    def owns_model(self, model: type[models.Model]) -> bool:
        return model._meta.app_label in self.owned

    def describe(self) -> list[str]:
        """Two lines for `show` and `stats`: which apps are whose (an app without tables and without
        Django migrations is neither's)."""
        how = "TABLEMIGRATE_APPS" if self.explicit else "the project's own apps"
        return [f"tablemigrate owns ({how}): {', '.join(sorted(self.owned)) or '-'}",
                f"Django migrations own: {', '.join(sorted(self.django)) or '-'}"]


def _migrations_package(app_label: str) -> ModuleSpec | None:
    """The spec of the migrations package Django's loader would load for the app (MIGRATION_MODULES or
    `<app>.migrations`), located without importing it; None when there is no such package."""
    from django.db.migrations.loader import MigrationLoader

    module_name, _explicit = MigrationLoader.migrations_module(app_label)
    if module_name is None:
        return None
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.submodule_search_locations is None:
        return None  # no package (a `migrations.py` module is no migrations either)
    return spec


def migration_names(app_label: str) -> set[str]:
    """Names of the Django migrations in the app's migrations package, found as Django's loader finds
    them (`MigrationLoader.load_disk`), without importing a migration module."""
    spec = _migrations_package(app_label)
    if spec is None or spec.origin in (None, "namespace"):
        return set()  # none, or an empty directory (a namespace package)
    assert spec.submodule_search_locations is not None
    return {name for _finder, name, is_pkg in pkgutil.iter_modules(list(spec.submodule_search_locations))
            if not is_pkg and name[0] not in "_~"}


def has_django_migrations(app: AppConfig) -> bool:
    """Whether the app has Django migrations: migration files, not merely the empty `migrations/`
    package that `manage.py startapp` creates."""
    return bool(migration_names(app.label))


def empty_migration_packages(own: Ownership) -> dict[str, None]:
    """Owned apps with an empty migrations package (`startapp` makes one), as MIGRATION_MODULES entries
    that make them apps without migrations for Django too: else Django counts them as migrated apps with
    no migrations, and the test runner never builds their tables."""
    return {label: None for label in sorted(own.owned)
            if _migrations_package(label) is not None and not migration_names(label)}


@lru_cache(maxsize=1)
def _package_dirs() -> tuple[Path, ...]:
    """Where installed packages and the standard library live (a virtualenv inside the project too)."""
    found = {sysconfig.get_paths().get(k) for k in ("purelib", "platlib", "stdlib", "platstdlib")}
    try:
        found.update(site.getsitepackages())
    except AttributeError:  # some virtualenv builds of `site`
        pass
    found.add(site.getusersitepackages())
    found.update(p for p in sys.path if Path(p).name in ("site-packages", "dist-packages"))
    # pip's checkouts of editable VCS installs (`pip install -e git+...`), in a virtualenv that may
    # well live inside the project.
    found.update(str(Path(prefix) / "src") for prefix in {sys.prefix, sys.exec_prefix})
    return tuple(Path(p).resolve() for p in found if p)


def _inside(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def in_project(app: AppConfig) -> bool:
    """The app's code lives in the project, not in an installed package."""
    path = Path(app.path).resolve()
    if any(_inside(path, d) for d in _package_dirs()):
        return False
    base = getattr(settings, "BASE_DIR", None)
    return base is None or _inside(path, Path(base).resolve())


def _has_tables(app: AppConfig) -> bool:
    return any(not m._meta.proxy and m._meta.managed for m in app.get_models(include_auto_created=True))


def ownership() -> Ownership:
    configured = getattr(settings, "TABLEMIGRATE_APPS", None)
    every = [a for a in apps.get_app_configs() if a.label != SELF]
    configs = [a for a in every if _has_tables(a)]  # only an app with tables can be owned
    if configured is not None:
        if isinstance(configured, str) or not isinstance(configured, Iterable) \
                or not all(isinstance(label, str) for label in configured):
            raise ConfigurationError("TABLEMIGRATE_APPS must be a list of app labels (strings)")
        known = {a.label for a in apps.get_app_configs()}
        unknown = sorted(set(configured) - known)
        if unknown:
            raise ConfigurationError(f"TABLEMIGRATE_APPS names {', '.join(unknown)}, not an installed app label "
                                     "(labels are the last part of the app's name, e.g. 'blog' for 'mysite.blog')")
        listed = set(configured)
        owned = {a.label for a in configs if a.label in listed or not has_django_migrations(a)}
    else:
        owned = {a.label for a in configs if in_project(a) or not has_django_migrations(a)}
    # Every other app with migration files keeps them, tables or not (proxies, views, data steps only).
    django = frozenset(a.label for a in every if a.label not in owned and has_django_migrations(a))
    return Ownership(frozenset(owned), django, configured is not None)


def owned_with_django_migrations(own: Ownership | None = None) -> list[str]:
    """Owned apps that still ship Django migrations (an adopted project before it removed them)."""
    own = own or ownership()
    return sorted(label for label in own.owned if has_django_migrations(apps.get_app_config(label)))


def leave_out_hint(own: Ownership, app: str) -> str:
    """How to hand `app` to its Django migrations instead, for the setting as it is."""
    if own.explicit:
        return f"leave {app} out of TABLEMIGRATE_APPS"
    return f"set TABLEMIGRATE_APPS to the apps tablemigrate should own, without {app}"
