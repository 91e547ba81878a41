"""The app's configuration: what Django runs when it loads tablemigrate (checks, signals, settings)."""

from collections.abc import Mapping

from django.apps import AppConfig
from django.db.models.signals import pre_migrate


class TablemigrateConfig(AppConfig):
    name = "tablemigrate"
    verbose_name = "tablemigrate"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tablemigrate.project.migrationstate import install

        from . import checks  # noqa: F401  (registers the system checks)
        from .testing import apply_history_to_test_database

        pre_migrate.connect(apply_history_to_test_database, dispatch_uid="tablemigrate_test_database")
        _owned_apps_without_migrations_for_django()
        install()  # owned models may inherit from other apps' models (migrationstate.py)


def _owned_apps_without_migrations_for_django() -> None:
    """`manage.py startapp` creates an empty `migrations/` package. Django counts such an app as migrated
    (with no migrations), so its test database and `migrate --run-syncdb` never build the app's tables,
    and a swappable user model there breaks other apps' migrations. For the apps tablemigrate owns, an
    empty package means no Django migrations: say so to Django too (explicit entries of the project's
    MIGRATION_MODULES that name a package with migrations in it stay)."""
    from django.conf import settings

    from tablemigrate.project.ownership import empty_migration_packages, ownership

    from .coexist import DjangoMigrationsDisabled
    from .errors import TablemigrateError

    current = getattr(settings, "MIGRATION_MODULES", {})
    if isinstance(current, DjangoMigrationsDisabled) or not isinstance(current, Mapping):
        return  # a project's own kind of mapping object: left as it is
    try:
        empty = empty_migration_packages(ownership())
    except TablemigrateError:  # a bad TABLEMIGRATE_APPS: the system check reports it (E001)
        return
    if empty:  # an explicit entry naming an empty package is no migrations either
        settings.MIGRATION_MODULES = {**current, **empty}
