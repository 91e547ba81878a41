"""Settings helpers for a project whose tables tablemigrate owns.

    from tablemigrate.coexist import DjangoMigrationsDisabled
    MIGRATION_MODULES = DjangoMigrationsDisabled()

tells Django that no app has migrations of its own: tablemigrate owns every app, `manage.py migrate` on
the real database is `manage.py tablemigrate run` (tablemigrate's `migrate` command), and the test runner
(Django's or pytest-django's) builds the test database straight from the models (`migrate --run-syncdb`),
unless TABLEMIGRATE_TEST_MIGRATIONS switches it to the tablemigrate history.
This module imports nothing from Django, so settings can import it.
"""

from __future__ import annotations


class DjangoMigrationsDisabled(dict):
    """A MIGRATION_MODULES mapping that answers `None` (no migrations) for every app label.

    Entries set explicitly (e.g. `DjangoMigrationsDisabled({"legacy": "legacy.migrations"})`) still win."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: str) -> str | None:
        return dict.get(self, key)
