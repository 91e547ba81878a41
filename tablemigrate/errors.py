"""One exception family; the management command turns each into one clear line and an exit code."""

from __future__ import annotations


class TablemigrateError(Exception):
    """Base class. `exit_code` is what the command exits with."""

    exit_code = 1


class ConfigurationError(TablemigrateError):
    """Usage or configuration problem: nothing was touched."""

    exit_code = 2


class MigrationFileError(TablemigrateError):
    """A migration module could not be loaded or is malformed."""

    exit_code = 2


class MigrationFailed(TablemigrateError):
    """A migration failed while being applied; its transaction was rolled back."""

    exit_code = 1


class GenerateError(TablemigrateError):
    """generate could not produce correct migrations (nothing was written)."""

    exit_code = 1
