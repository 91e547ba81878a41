"""One exception family, and what tablemigrate knows about SQLite's errors.

The management command turns each `TablemigrateError` into one clear line and its `exit_code`. Every
exception tablemigrate raises is defined here (the modules that raise them import them from here, and
re-export them under their old names). SQLite errors are told apart by their result codes, never by
their message text (`sqlite_code`, `is_busy`, `is_readonly`).
"""

from __future__ import annotations

import sqlite3

# SQLite's primary result codes (https://sqlite.org/rescode.html), which never change. The sqlite3
# module exports them as sqlite3.SQLITE_BUSY etc. only from Python 3.11; 3.10 is supported.
SQLITE_ERROR = 1
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_READONLY = 8

# Python 3.10's sqlite3 exceptions carry no result code; SQLite's own text for each of these codes
# (sqlite3ErrStr) is fixed, so on 3.10 alone the code is recovered from it.
_TEXT_OF_CODE = {
    "database is locked": SQLITE_BUSY,
    "database table is locked": SQLITE_LOCKED,
    "attempt to write a readonly database": SQLITE_READONLY,
}


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


class HistoryConflict(GenerateError):
    """Replaying the history, `module` found its table changed by an earlier module (merged branches)."""

    def __init__(self, message: str, module: str):
        super().__init__(message)
        self.module = module


# Applying ----------------------------------------------------------------------------------------

class DatabaseLocked(TablemigrateError):
    """Another connection held SQLite's write lock past the busy timeout."""

    exit_code = 3


class LockTimeout(TablemigrateError):
    """Another tablemigrate run held the runner lock past the timeout."""

    exit_code = 3


class MigrationInterrupted(MigrationFailed):
    """A KeyboardInterrupt (Ctrl-C, or SIGTERM/SIGHUP turned into one: `Stopped`) stopped a migration.

    It was rolled back, and the database restored like after any failure. Chained (`__cause__`) to the
    interrupt."""


class Stopped(KeyboardInterrupt):
    """A signal the command turned into an interrupt (SIGTERM, SIGHUP or SIGINT).

    SIGTERM comes from `docker stop`, SIGHUP when the terminal closes. A KeyboardInterrupt, so that every
    path that rolls back and restores on Ctrl-C does so for it too; `signal_name` says which signal it was."""

    def __init__(self, signal_name: str):
        super().__init__(signal_name)
        self.signal_name = signal_name


def signal_name(interrupt: KeyboardInterrupt) -> str:
    """The signal behind an interrupt: a plain KeyboardInterrupt is Python's own SIGINT handler's."""
    return interrupt.signal_name if isinstance(interrupt, Stopped) else "SIGINT"


class MissingSource(sqlite3.OperationalError):
    """A rebuild's copy expressions name a column the live table does not have.

    An OperationalError, so that the applier reports it like any statement that fails."""


# Before applying: validation, the history, the data checks, confirmation ---------------------------

class SchemaCopyFailed(MigrationFailed):
    """The live schema could not be copied for the rehearsal (nothing of the migrations ran)."""


class DoubleQuotedString(MigrationFailed):
    """A statement works only because SQLite reads a double-quoted name as a string."""


class ObjectExists(MigrationFailed):
    """A statement creates a table, view or trigger whose name the database already has (`name`).

    As SQLite's authorizer reported it on the rehearsal copy."""

    def __init__(self, message: str, name: str = ""):
        super().__init__(message)
        self.name = name


class VirtualTableBroken(MigrationFailed):
    """A migration leaves a virtual table that worked before it failing.

    For example an FTS index whose content table or column it renamed or dropped, as a full scan of it on
    the rehearsal copy showed."""


class HistoryMismatch(TablemigrateError):
    """An applied module was edited or deleted: the history no longer describes the database."""

    exit_code = 2


class ShapeMismatch(TablemigrateError):
    """A module's table is not in the shape the module expects (shapes.py).

    Another module changed it after this one was generated. Nothing was changed. `module`: the refused
    module's name."""

    exit_code = 2

    def __init__(self, message: str, module: str = ""):
        super().__init__(message)
        self.module = module


class DataCheckFailed(TablemigrateError):
    """Rows in the database violate what a pending migration creates: applying would fail."""

    exit_code = 1


class NotConfirmed(TablemigrateError):
    exit_code = 1


class MigrationsPending(TablemigrateError):
    """`show --check` / `run --check`: migrations are pending (nothing was written).

    Its own exit code, so that CI tells "deploy needs a migration" from a failure."""

    exit_code = 4


class LiteFSReplica(TablemigrateError):
    """A command that writes the database, on a LiteFS replica: only the primary writes.

    Raised before anything is opened or created (tablemigrate.sqlite.litefs)."""

    exit_code = 6


# Backups, snapshots, restores ----------------------------------------------------------------------

class BackupError(TablemigrateError):
    exit_code = 1


class NoSpace(TablemigrateError):
    """The backup or a rebuild would not fit on its file system (space.py); nothing was changed."""

    exit_code = 1


class CopyTimeout(TablemigrateError):
    """The backup API waited for a lock past its deadline; the copy was abandoned, nothing changed."""

    exit_code = 3


class NeedsPageRestore(TablemigrateError):
    """The logical restore does not handle virtual tables (their shadow tables): copy pages instead.

    Control flow inside the restore, never shown to a user."""


class RestoreRefused(TablemigrateError):
    """The file to restore is missing, not SQLite, or fails its integrity check: nothing changed."""

    exit_code = 2


# SQLite's result codes ------------------------------------------------------------------------------

def sqlite_code(exc: BaseException) -> int | None:
    """The primary result code of the first sqlite3 error in `exc`'s chain (Django wraps them)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, sqlite3.Error):
            code = getattr(seen, "sqlite_errorcode", None)
            if code is not None:
                return code & 0xFF
            return _TEXT_OF_CODE.get(str(seen))  # Python 3.10: see _TEXT_OF_CODE
        seen = seen.__cause__ or seen.__context__
    return None


def is_busy(exc: BaseException) -> bool:
    """SQLite's write lock stayed taken past the busy timeout (SQLITE_BUSY or SQLITE_LOCKED)."""
    return sqlite_code(exc) in (SQLITE_BUSY, SQLITE_LOCKED)


def is_readonly(exc: BaseException) -> bool:
    return sqlite_code(exc) == SQLITE_READONLY
