"""The command as a process: how it stops, the line it ends with, the garbage collector.

Signals that stop it cleanly, the line it ends with after an interrupt or an SQLite error, and the
garbage-collector setting for objects that live as long as it does.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import signal
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any, NoReturn

from django.core.management.base import CommandError

from tablemigrate.errors import Stopped, TablemigrateError
from tablemigrate.history.applied import applied

from .base import CommandState

#: 128 + the signal number, the shell's convention for "ended by a signal" (`$?` after a Ctrl-C is 130).
#: Windows has no SIGPIPE; a closed pipe there exits with the same status (13 is SIGPIPE on every POSIX).
EXIT_SIGPIPE = 128 + getattr(signal, "SIGPIPE", 13)


#: Objects the interpreter itself keeps in the permanent generation (375 on CPython 3.12 at startup, 0 on
#: 3.10, 3.11 and 3.13), read when this module is first imported: more than this means that the host
#: process froze objects of its own.
_INTERPRETER_FROZEN = gc.get_freeze_count()
#: Not empty while a command of this process keeps the objects frozen.
_FROZEN_HERE: list[bool] = []


@contextlib.contextmanager
def long_lived_objects_frozen(until_exit: bool) -> Iterator[None]:
    """Keep the garbage collector off the objects that exist when the command starts (settings, apps,
    models, modules: they live as long as the process) while it runs. A full collection walks every one
    of them; at 50 models that pass alone took 15 ms of a 60 ms `generate`.

    `until_exit` (the command is the whole process): they stay frozen, so the interpreter's collections
    at exit skip them too (about 45 ms of a 250 ms process). What the command itself created, such as a
    connection a data step left open, is still collected and closed at exit. Otherwise (`call_command`
    in a long-lived process) everything is unfrozen afterwards, and nothing is frozen at all when the
    host process froze objects itself (a pre-forking server, say)."""
    if _FROZEN_HERE or gc.get_freeze_count() > _INTERPRETER_FROZEN:  # counting walks them: 4 ms at 40 models
        yield
        return
    gc.freeze()
    _FROZEN_HERE.append(True)  # a command inside this one (a fleet's databases) finds them frozen already
    try:
        yield
    finally:
        if not until_exit:
            _FROZEN_HERE.clear()
            gc.unfreeze()


#: The signals that stop a writing command cleanly, each with the disposition it must have for the command to
#: take it over (a host's own handler, or SIGHUP ignored under `nohup`, is left alone). Windows has no SIGHUP.
STOP_SIGNALS = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL,
                **({signal.SIGHUP: signal.SIG_DFL} if hasattr(signal, "SIGHUP") else {})}


class _Stop:
    """Which signal stopped the command. None: no handler of ours saw one; a KeyboardInterrupt then
    came from Python's own SIGINT handler (the read-only commands keep it), so it counts as SIGINT."""

    def __init__(self) -> None:
        self.signum: int | None = None

    @property
    def name(self) -> str:
        return signal.Signals(self.signum if self.signum is not None else signal.SIGINT).name

    @property
    def exit_code(self) -> int:
        return 128 + (self.signum if self.signum is not None else signal.SIGINT)


@contextlib.contextmanager
def signals_stop_cleanly(enabled: bool) -> Iterator[_Stop]:
    """While a writing command runs, SIGTERM (what `docker stop` and Kubernetes send) and SIGHUP (the
    terminal or SSH session closed) do what Ctrl-C does: each raises a KeyboardInterrupt (`Stopped`,
    which names the signal) in the main thread, so the library's `except BaseException` paths
    roll back, restore the run's backup and remove partial files, instead of the process dying in
    between. Only the first signal interrupts: a second one (an impatient Ctrl-C, a repeated TERM)
    would interrupt the rollback or the restore itself, so it is ignored until the command ends
    (SIGKILL stays safe: SQLite's journal). Handlers a host process installed are left alone, and so is
    everything outside the main thread (where Python cannot install handlers)."""
    stop = _Stop()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: object) -> None:  # noqa: ARG001 (the signal module's handler signature)
        if stop.signum is None:
            stop.signum = signum
            raise Stopped(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig, default in STOP_SIGNALS.items()
                if signal.getsignal(sig) is default}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def interrupted_by(exc: BaseException) -> bool:
    """A KeyboardInterrupt is the exception or what it was raised from (the library wraps it in
    MigrationFailed after rolling back)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def sqlite_error(exc: sqlite3.DatabaseError, database: str) -> CommandError:
    """One line for an SQLite error that reached the command, classified by SQLite's result code (the
    exception class where Python < 3.11 has no code): a corrupt file, a lock held too long, or other."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if code is not None else None
    corrupt = primary in (11, 26) if primary is not None else type(exc) is sqlite3.DatabaseError  # CORRUPT, NOTADB
    if corrupt:
        return CommandError(f"database {database} is corrupt or not an SQLite database ({exc}); restore a backup "
                            "(`manage.py tablemigrate snapshots` lists them)", returncode=2)
    if primary in (5, 6):  # BUSY, LOCKED
        return CommandError(f"database {database} stayed locked by another connection past the busy timeout "
                            f"({exc})", returncode=3)
    return CommandError(f"SQLite error on database {database}: {exc}", returncode=2)


def version() -> str:
    """What `--version` prints: tablemigrate's version, and the Django and SQLite it runs with."""
    import django

    from tablemigrate import __version__

    return f"tablemigrate {__version__} (Django {django.get_version()}, SQLite {sqlite3.sqlite_version})"


def add_djangos_options(parser: argparse.ArgumentParser) -> None:
    """Django's options of every command (`BaseCommand.create_parser`), for a parser that follows a
    subcommand: `tablemigrate run --traceback` takes them as `migrate --traceback` does. Not given, they
    leave the value given before the subcommand (or Django's default) as it is; given, they win.
    `--settings` and `--pythonpath` took effect before the command was loaded (Django reads them
    anywhere on the line); `--skip-checks` changes nothing (tablemigrate runs no system checks first)."""
    parser.add_argument("--version", action="version", version=version(), help="show the versions and exit")
    parser.add_argument("--settings", default=argparse.SUPPRESS, help="a settings module, as for any command")
    parser.add_argument("--pythonpath", default=argparse.SUPPRESS, help="a directory to add to the Python path")
    for flag, what in (("--traceback", "raise on CommandError exceptions"), ("--no-color", "don't colorize the output"),
                       ("--force-color", "colorize the output even when it is not a terminal"),
                       ("--skip-checks", "accepted as Django's commands accept it; nothing to skip")):
        parser.add_argument(flag, action="store_true", default=argparse.SUPPRESS, help=what)


class StopReport(CommandState):
    """What a stopped command says about the state it left (mixed into the Command)."""

    def _stopped(self, stop: _Stop, exc: BaseException, options: dict[str, Any]) -> NoReturn:
        """A signal or Ctrl-C stopped the command. From the command line: one line saying what state
        everything is in, and exit 130 (SIGINT) or 143 (SIGTERM). Called in-process (`call_command`),
        the interrupt goes on to the caller as KeyboardInterrupt, with that line as its message."""
        state = self._state_after_stop(exc, options, stop.name)
        line = f"interrupted by {stop.name}; {state}"
        if not getattr(self, "whole_process", False):
            raise KeyboardInterrupt(line) from exc
        raise CommandError(line, returncode=stop.exit_code) from None

    def _state_after_stop(self, exc: BaseException, options: dict[str, Any], name: str) -> str:
        if isinstance(exc, TablemigrateError):  # the library rolled back / restored and says how it left things
            from tablemigrate.backups.backup import describe

            said = describe(Stopped(name))  # its wording of the interrupt itself: said already
            return str(exc).removeprefix(said).lstrip("; ")
        action = options["action"]
        if options.get("all_databases") and action in ("run", "revert"):  # outside any database's own command
            return ("each database is either done or as it was: `manage.py tablemigrate show --all-databases` "
                    "says what is applied")
        if action in ("run", "revert"):
            return self._history_change()
        if action == "snapshot":
            return self._snapshot_state(options)
        if action == "restore":
            return ("the database is as it was, or fully restored: SQLite copies it in one transaction "
                    "(`manage.py tablemigrate show` tells which)")
        if action in ("show", "inspect", "stats", "snapshots"):
            return "nothing was changed"
        if action == "provision":  # the link into place is its last step, and a whole file
            return (f"{options['path']} is complete if it exists (the link into place is the last step); "
                    "temporary files were removed")
        return ("the migrations directory may hold some of the new modules but not all: review it (e.g. "
                "`git status`) and run the command again")

    def _snapshot_state(self, options: dict[str, Any]) -> str:
        from tablemigrate.backups import snapshots

        try:
            db_path, backups_dir = self._paths(options)
            path = snapshots.snapshot_path(backups_dir, options["name"], db_path)
        except Exception:
            return "no snapshot was written"
        if path.exists():  # the interrupt came after the rename that completes it
            return f"the snapshot was complete and is kept: {path}"
        return "no snapshot was written (its partial copy was removed)"

    def _history_change(self) -> str:
        """What a stopped run/revert left applied, from the history table (each migration commits its
        history row in its own transaction, so the table is the truth)."""
        if self._history_before is None:
            return "nothing was changed"
        try:
            now = [a.name for a in applied(self._history_conn)]
        except Exception:
            return "the state could not be read back: check it with `manage.py tablemigrate show`"
        changed = sorted(set(now) ^ set(self._history_before))
        if not changed:
            return "nothing was applied or reverted; the database is unchanged"
        return (f"{', '.join(changed)} changed state before the interrupt and stay so; the history table "
                "matches the schema")

    def _database_name(self) -> str:
        from django.conf import settings

        return str(settings.DATABASES.get(self._database, {}).get("NAME", self._database))
