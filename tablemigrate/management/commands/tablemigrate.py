"""`manage.py tablemigrate <command>`: parse arguments, call the library, print, set the exit code."""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandError

from tablemigrate import conf, progress
from tablemigrate.apply import statements_of
from tablemigrate.diff import Renames
from tablemigrate.errors import TablemigrateError
from tablemigrate.generate import GenerateResult, Questioner

EXIT_CODES = """exit codes:
  0  success (for generate --check: models and history agree)
  1  failure: a migration failed and the database was rolled back/restored, existing rows
     violate a pending migration, generate --check found model changes without migrations, or
     a destructive migration was not confirmed
  2  usage or configuration error: unknown option, non-SQLite database, malformed migration
     module, missing directory or file, a database file that is corrupt, empty (0 bytes) or a
     directory, a pending Django migration of an app tablemigrate owns, an app's initial Django
     migration whose tables already exist; nothing was changed
  3  another run holds the lock, or another connection kept the database locked past the busy
     timeout; nothing was changed
  130  interrupted by SIGINT (Ctrl-C), or
  143  by SIGTERM (`docker stop`): the command stopped cleanly (the migration under way rolled back,
       the run's backup restored, partial files removed); its one line says what state things are in
  141  stdout was closed early (`show | head`): the output was cut short; the command's work
       (for run/revert: the migrations and post_migrate) was done before it printed
"""

#: Commands that write (the database, backups, snapshots or modules): SIGTERM stops them the way Ctrl-C does.
WRITERS = frozenset({"run", "revert", "restore", "snapshot", "baseline", "generate"})

#: 128 + the signal number, the shell's convention for "ended by a signal" (`$?` after a Ctrl-C is 130).
EXIT_SIGPIPE = 128 + signal.SIGPIPE


#: Objects the interpreter itself keeps in the permanent generation (375 on CPython 3.12 at startup, 0 on
#: 3.10, 3.11 and 3.13), read when this module is first imported: more than this means that the host
#: process froze objects of its own.
_INTERPRETER_FROZEN = gc.get_freeze_count()


@contextlib.contextmanager
def _long_lived_objects_frozen(until_exit: bool) -> Iterator[None]:
    """Keep the garbage collector off the objects that exist when the command starts (settings, apps,
    models, modules: they live as long as the process) while it runs. A full collection walks every one
    of them; at 50 models that pass alone took 15 ms of a 60 ms `generate`.

    `until_exit` (the command is the whole process): they stay frozen, so the interpreter's collections
    at exit skip them too (about 45 ms of a 250 ms process). What the command itself created, such as a
    connection a data step left open, is still collected and closed at exit. Otherwise (`call_command`
    in a long-lived process) everything is unfrozen afterwards, and nothing is frozen at all when the
    host process froze objects itself (a pre-forking server, say)."""
    if gc.get_freeze_count() > _INTERPRETER_FROZEN:
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        if not until_exit:
            gc.unfreeze()


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
def _signals_stop_cleanly(enabled: bool) -> Iterator[_Stop]:
    """While a writing command runs, SIGTERM (what `docker stop` and Kubernetes send) does what Ctrl-C
    does: it raises KeyboardInterrupt in the main thread, so the library's `except BaseException` paths
    roll back, restore the run's backup and remove partial files, instead of the process dying in
    between. Only the first signal interrupts: a second one (an impatient Ctrl-C, a repeated TERM)
    would interrupt the rollback or the restore itself, so it is ignored until the command ends
    (SIGKILL stays safe: SQLite's journal). Handlers a host process installed are left alone, and so is
    everything outside the main thread (where Python cannot install handlers)."""
    stop = _Stop()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: object) -> None:
        if stop.signum is None:
            stop.signum = signum
            raise KeyboardInterrupt

    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    previous = {sig: signal.signal(sig, handler) for sig, default in defaults.items()
                if signal.getsignal(sig) is default}
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _interrupted_by(exc: BaseException) -> bool:
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


def _sqlite_error(exc: sqlite3.DatabaseError, database: str) -> CommandError:
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


class InteractiveQuestioner(Questioner):
    interactive = True

    def __init__(self, command: BaseCommand):
        self.command = command

    def _input(self, prompt: str) -> str | None:
        return _ask(prompt)

    def confirm(self, question: str) -> bool:
        answer = self._input(f"{question} [y/N] ")
        return (answer or "").strip().lower() in ("y", "yes")

    def value(self, question: str) -> str | None:
        while True:
            answer = self._input(f"{question}: ")
            if answer is None or not answer.strip():
                return None
            try:  # accept only one valid SQL expression
                sqlite3.connect(":memory:").execute(f"SELECT {answer}").fetchall()
                return answer.strip()
            except sqlite3.Error as exc:
                self.command.stderr.write(f"Not a valid SQL literal ({exc}); try again or press Enter to stop.")


def _ask(prompt: str) -> str | None:
    """`input(prompt)`, None at end of input. When stdin is not a terminal nothing echoes the answer,
    so the next output would continue the prompt's line: the answer is echoed, with its newline."""
    try:
        answer = input(prompt)
    except EOFError:
        answer = None
    if not sys.stdin.isatty():
        sys.stdout.write((answer or "") + "\n")
        sys.stdout.flush()
    return answer


class _LogLines(logging.StreamHandler):
    """`tablemigrate` log lines on stderr when the project configured no logging for them. Errors are
    left to the command, which prints each failure once as its last line."""

    def __init__(self, stream, level: int):
        super().__init__(stream)
        self.setLevel(level)
        self.setFormatter(logging.Formatter("%(message)s"))
        self.addFilter(lambda record: record.levelno < logging.ERROR)
        # "migration X applied (N ms)": the command prints each applied migration on stdout itself.
        self.addFilter(lambda record: not hasattr(record, "tablemigrate_migration")
                       and not hasattr(record, "tablemigrate_in_error_line"))

    def emit(self, record: logging.LogRecord) -> None:
        progress.current().clear()
        super().emit(record)


@contextlib.contextmanager
def _reporting(command: BaseCommand, options: dict[str, Any]) -> Iterator[None]:
    """Log lines (unless logging is configured) and, on a terminal with prompts allowed, progress."""
    logger = logging.getLogger("tablemigrate")
    handler, previous = None, logger.level
    if not logger.hasHandlers():  # at -v 0 too: else Python's last-resort handler prints errors twice
        level = {0: logging.CRITICAL + 1, 3: logging.DEBUG}.get(options["verbosity"], logging.INFO)
        handler = _LogLines(command.stderr._out, level)
        logger.addHandler(handler)
        logger.setLevel(min(handler.level, logger.getEffectiveLevel()))
    shown = progress.Progress(command.stderr._out, options["interactive"] and options["verbosity"] > 0
                              and command.stderr.isatty())
    try:
        with progress.reporting(shown):
            yield
    finally:
        if handler is not None:
            logger.removeHandler(handler)
            logger.setLevel(previous)


class Command(BaseCommand):
    help = ("Per-table, diff-based schema migrations for SQLite: generate, show, run, revert, "
            "snapshot/restore. Run `manage.py tablemigrate COMMAND --help` for each command.")
    requires_system_checks: list[str] = []

    def run_from_argv(self, argv: list[str]) -> None:
        """`manage.py tablemigrate ...` with the process's own arguments: the command is the whole
        process, so what existed before it stays frozen to the end (see `_long_lived_objects_frozen`),
        and the ways a process ends that are not errors of ours end it with one line or none."""
        self.whole_process = argv == sys.argv
        try:
            try:
                super().run_from_argv(argv)
            finally:
                sys.stdout.flush()  # a reader that went away shows up here, not at interpreter exit
        except BrokenPipeError:
            # `show | head`: the reader has what it wanted. Like `ls | head`, stop without a word, with
            # the status of a process ended by SIGPIPE; stdout goes to /dev/null so that the
            # interpreter's own flush at exit does not complain about the closed pipe either.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(EXIT_SIGPIPE)
        except KeyboardInterrupt:  # outside `handle` (which reports the database's state itself)
            sys.stderr.write("tablemigrate: interrupted; nothing was started\n")
            sys.exit(128 + signal.SIGINT)

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        parser.epilog = EXIT_CODES
        return parser

    def add_arguments(self, parser) -> None:
        common = argparse.ArgumentParser(add_help=False)
        common.add_argument("--database", default="default", help="database alias (default: 'default')")
        common.add_argument("--noinput", "--no-input", action="store_false", dest="interactive",
                            help="never prompt; refuse what would need an answer")
        common.add_argument("-v", "--verbosity", type=int, choices=[0, 1, 2, 3], default=argparse.SUPPRESS,
                            help="0: only errors; 1: log lines (default); 2-3: more")
        sub = parser.add_subparsers(dest="action", metavar="COMMAND", required=True)

        def add(name: str, help_text: str) -> argparse.ArgumentParser:
            p = sub.add_parser(name, help=help_text, description=help_text, parents=[common],
                               epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
            return p

        g = add("generate", "Diff the migration history against the models of the apps tablemigrate owns and "
                            "write one migration module per changed table.")
        g.add_argument("name", nargs="?", default="", help="a label recorded in the new modules")
        g.add_argument("--dry-run", action="store_true", help="print the modules and SQL; write nothing")
        g.add_argument("--check", action="store_true",
                       help="write nothing; exit 1 when the models differ from the history (for CI)")
        g.add_argument("--rename", action="append", default=[], metavar="OLD:NEW",
                       help="declare a rename: TABLE.OLDCOLUMN:NEWCOLUMN or OLDTABLE:NEWTABLE (repeatable)")

        show = add("show", "Say which apps tablemigrate owns; list the other apps' pending Django migrations "
                           "and tablemigrate's applied and pending migrations, with the SQL pending ones would "
                           "run; report edited modules and schema drift. Never writes.")
        show.add_argument("--no-sql", dest="sql", action="store_false", help="list only, without SQL")

        def add_apply_options(p: argparse.ArgumentParser) -> None:
            p.add_argument("--allow-destructive", action="store_true",
                           help="apply migrations flagged destructive without asking")
            p.add_argument("--no-backup", dest="backup", action="store_false",
                           help="skip the backup (a failure then only rolls back the failing migration)")

        r = add("run", "Apply pending migrations: validate, check the existing rows (violations refuse, "
                       "data loss needs confirmation), lock, back up, apply the pending Django migrations of "
                       "the apps tablemigrate does not own (Django's executor, data steps included), then "
                       "tablemigrate's, one transaction per migration, restore the backup on failure, keep "
                       "the newest backups.")
        add_apply_options(r)
        r.add_argument("--dry-run", action="store_true",
                       help="rehearse on an in-memory copy of the database and report; change nothing")
        rv = add("revert", "Revert the last applied tablemigrate migration (or every one after --to NAME), "
                           "with the same lock/backup/restore safety. Other apps: `manage.py migrate APP 000N`.")
        add_apply_options(rv)
        rv.add_argument("--to", metavar="NAME", help="revert every migration applied after NAME")

        snap = add("snapshot", "Save a named full copy of the database (online backup API, mode 0600, checked) "
                               "beside the automatic backups.")
        snap.add_argument("--name", required=True, help="letters, digits, '.', '_', '-' (no path separators)")
        add("snapshots", "List named snapshots and automatic backups: name, time, size, last migration inside.")
        rs = add("restore", "Restore a named snapshot or an automatic backup over the database, after a "
                            "safety backup of the current state.")
        which = rs.add_mutually_exclusive_group(required=True)
        which.add_argument("--name", help="a snapshot made with `snapshot --name`")
        which.add_argument("--backup", metavar="FILE", help="a backup file, or its name as `snapshots` lists it")
        rs.add_argument("--from-other-database", action="store_true",
                        help="restore a file taken from another database (or a hand-made copy) over a database "
                             "that holds data; refused otherwise")
        ins = add("inspect", "Print the live schema as the diff sees it (one table, or all).")
        ins.add_argument("table", nargs="?", help="only this table")
        add("stats", "Tables with row counts and sizes, database facts, pending and last applied migrations, "
                     "which apps tablemigrate owns.")
        bl = add("baseline", "Adopt a database without tablemigrate history (e.g. made by Django's `migrate`): "
                             "write modules that create the current tables of the apps tablemigrate owns and "
                             "record them as applied.")
        bl.add_argument("--dry-run", action="store_true", help="print what would be written; change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        self.verbosity = options["verbosity"]
        self._database = options["database"]
        self._history_before: list[str] | None = None
        with _signals_stop_cleanly(action in WRITERS) as stop:
            try:
                with _long_lived_objects_frozen(until_exit=getattr(self, "whole_process", False)):
                    if action in ("run", "revert"):
                        with _reporting(self, options):
                            getattr(self, "handle_" + action)(options)
                    else:
                        getattr(self, "handle_" + action)(options)
            except (KeyboardInterrupt, TablemigrateError, sqlite3.DatabaseError) as exc:
                if stop.signum is not None or _interrupted_by(exc):
                    self._stopped(stop, exc, options)
                if isinstance(exc, sqlite3.DatabaseError):
                    raise _sqlite_error(exc, self._database_name()) from None
                assert isinstance(exc, TablemigrateError)  # a KeyboardInterrupt always went to _stopped
                raise CommandError(str(exc), returncode=exc.exit_code) from None

    def _stopped(self, stop: _Stop, exc: BaseException, options: dict[str, Any]) -> NoReturn:
        """A signal or Ctrl-C stopped the command. From the command line: one line saying what state
        everything is in, and exit 130 (SIGINT) or 143 (SIGTERM). Called in-process (`call_command`),
        the interrupt goes on to the caller as KeyboardInterrupt, with that line as its message."""
        state = self._state_after_stop(exc, options)
        line = f"interrupted by {stop.name}; {state}"
        if not getattr(self, "whole_process", False):
            raise KeyboardInterrupt(line) from exc
        raise CommandError(line, returncode=stop.exit_code) from None

    def _state_after_stop(self, exc: BaseException, options: dict[str, Any]) -> str:
        if isinstance(exc, TablemigrateError):  # the library rolled back / restored and says how it left things
            from tablemigrate.backup import describe

            said = describe(KeyboardInterrupt())  # its wording of the interrupt itself: said already
            return str(exc).removeprefix(said).lstrip("; ")
        action = options["action"]
        if action in ("run", "revert"):
            return self._history_change()
        if action == "snapshot":
            return self._snapshot_state(options)
        if action == "restore":
            return ("the database is as it was, or fully restored: SQLite copies it in one transaction "
                    "(`manage.py tablemigrate show` tells which)")
        if action in ("show", "inspect", "stats", "snapshots"):
            return "nothing was changed"
        return ("the migrations directory may hold some of the new modules but not all: review it (e.g. "
                "`git status`) and run the command again")

    def _snapshot_state(self, options: dict[str, Any]) -> str:
        from tablemigrate import snapshots

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
        from tablemigrate.history import applied

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

    def _say(self, text: str) -> None:
        """A success or status line: silent at -v 0 (only errors are printed then)."""
        if self.verbosity > 0:
            self.stdout.write(text)

    # shared ---------------------------------------------------------------------------------

    def _target(self, options: dict[str, Any], directory: Path | None = None):
        """The database to work on. A file that does not exist is created only by a `run` that has
        something to apply and whose modules pass validation (`directory`), and by `restore`: a
        command with nothing to do, or one that fails first, leaves no empty database file behind."""
        from django.db import connections

        from tablemigrate.runner import Target

        alias = conf.sqlite_alias(options["database"])
        wrapper = connections[alias]
        name = str(wrapper.settings_dict["NAME"])
        action = options["action"]
        missing = False
        if not wrapper.is_in_memory_db():
            path = Path(name)
            if path.exists() and not path.is_file():
                raise CommandError(f"database path {name} is not a file (a directory?); check "
                                   f"DATABASES[{alias!r}]['NAME']", returncode=2)
            missing = not path.exists()
            if not missing and action not in ("run", "restore") and path.stat().st_size == 0:
                raise CommandError(f"database file {name} is empty (0 bytes): there is no database to "
                                   f"{action} yet (`manage.py tablemigrate run` creates it)", returncode=2)
        if missing and action == "show":  # safe any time: an empty stand-in, nothing created
            self.stdout.write(f"(database file {name} does not exist yet: every migration is pending)")
            return Target(alias, sqlite3.connect(":memory:", isolation_level=None), None)
        if missing and action == "run":
            stand_in = Target(alias, sqlite3.connect(":memory:", isolation_level=None), None)
            if options.get("dry_run") or not self._first_run_needs_file(stand_in, directory):
                return stand_in
        elif missing and action != "restore":
            raise CommandError(f"database file {name} does not exist (`manage.py tablemigrate run` creates it)",
                               returncode=2)
        try:
            wrapper.ensure_connection()
        except Exception as exc:
            raise CommandError(f"cannot open database {alias!r} ({wrapper.settings_dict['NAME']}): {exc}",
                               returncode=2) from None
        if wrapper.in_atomic_block:
            raise CommandError("tablemigrate cannot run inside a transaction (atomic block)", returncode=2)
        conn = wrapper.connection
        try:
            conn.execute("PRAGMA schema_version").fetchone()  # reads the header: is it SQLite at all?
        except sqlite3.DatabaseError as exc:
            raise CommandError(f"{name} is not a usable SQLite database ({exc})", returncode=2) from None
        writes = action in ("run", "revert", "restore", "baseline") and not options.get("dry_run")
        if writes and not wrapper.is_in_memory_db() and not (
                os.access(name, os.W_OK) and os.access(os.path.dirname(os.path.abspath(name)), os.W_OK)):
            raise CommandError(f"database file {name} (or its directory, where SQLite keeps its journal) is "
                               "read-only; nothing was changed", returncode=2)
        conn.execute(f"PRAGMA busy_timeout = {int(conf.busy_timeout() * 1000)}")
        resolved = None if wrapper.is_in_memory_db() else Path(wrapper.settings_dict["NAME"]).resolve()
        return Target(alias, conn, resolved, conf.backup_dir())

    @staticmethod
    def _first_run_needs_file(stand_in, directory: Path | None) -> bool:
        """A first `run` (no database file yet): False when there is nothing to apply; otherwise the
        modules are loaded and validated on an empty in-memory stand-in first, so that a malformed or
        invalid module refuses before the file is created."""
        from tablemigrate import runner

        from tablemigrate import djangoapps

        assert directory is not None
        _status, pending = runner.pending_migrations(stand_in, directory)
        if pending:
            runner.validate(stand_in, pending)
        with djangoapps.stand_in(stand_in.alias) as empty:  # its refusals too, before the file exists
            django = djangoapps.plan(empty)
        return bool(pending) or bool(django)

    def _confirm(self, options: dict[str, Any]):
        if not options["interactive"]:
            return None

        def ask(text: str) -> bool:
            return (_ask(text + ": ") or "").strip().lower() == "yes"
        return ask

    # show / run / revert ----------------------------------------------------------------------

    def _existing_migrations_dir(self, options: dict[str, Any]) -> Path:
        """The migrations directory; when it is missing and the database already has tables of the
        owned models (built by Django's `migrate`), the way forward is `baseline`, not `generate`."""
        try:
            return conf.existing_migrations_dir()
        except TablemigrateError:
            name = self._needs_baseline(options)
            if name:
                raise CommandError(f"{name} already has tables of your models (made by Django's `migrate`?) and "
                                   f"there is no migrations directory ({conf.migrations_dir()}): adopt it with "
                                   "`manage.py tablemigrate baseline`", returncode=2) from None
            raise

    @staticmethod
    def _needs_baseline(options: dict[str, Any]) -> str | None:
        """The database's file name when it has tables of the owned models but no tablemigrate history
        (read-only; None otherwise)."""
        from django.conf import settings

        from tablemigrate.baseline import model_tables
        from tablemigrate.build import managed_models
        from tablemigrate.introspect import HISTORY_TABLE
        from tablemigrate.sqltext import readonly_uri

        alias = conf.sqlite_alias(options["database"])
        name = str(settings.DATABASES[alias].get("NAME", ""))
        if not name or not Path(name).is_file():
            return None
        try:
            conn = sqlite3.connect(readonly_uri(name), uri=True)
            try:
                live = {r[0].lower() for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            finally:
                conn.close()
        except sqlite3.Error:
            return None
        return name if HISTORY_TABLE not in live and live & model_tables(managed_models(alias)) else None

    def handle_show(self, options: dict[str, Any]) -> None:
        from tablemigrate.loader import load_migration
        from tablemigrate.ownership import ownership
        from tablemigrate.runner import drift, status

        target = self._target(options)
        directory = self._existing_migrations_dir(options)
        own = ownership()
        for line in own.describe():
            self.stdout.write(line)
        st = status(target.conn, directory)
        for a in st.applied:
            flag = "  EDITED AFTER APPLY" if a.name in st.modified else (
                "  MISSING FILE" if a.name in st.missing else "")
            self.stdout.write(f"[X] {a.name}  (applied {a.applied_at}){flag}")
        # Pending ones in the order `run` applies them: Django's, tablemigrate's, then the Django
        # migrations that depend on an owned app.
        later = self._show_django(target, options["sql"])
        for path in st.pending:
            m = load_migration(path)
            warn = "  (destructive: " + "; ".join(m.destructive) + ")" if m.destructive else ""
            self.stdout.write(self.style.MIGRATE_HEADING(f"[ ] {m.name}") + warn)
            if options["sql"]:
                self._write_sql(s for step in m.up for s in statements_of(step))
        later()
        if not st.applied and not st.pending:
            self.stdout.write("No migrations.")
        if st.modified or st.missing:
            self.stdout.write(self.style.ERROR(
                "The history does not match the migration files: `run` refuses until this is resolved."))
            return
        from tablemigrate.baseline import model_tables
        from tablemigrate.build import foreign_tables, managed_models

        drifted = drift(target, directory, model_tables(managed_models(target.alias)), foreign_tables(target.alias))
        if drifted:
            self.stdout.write(self.style.WARNING(
                "Drift: the live schema differs from the applied history in: " + ", ".join(drifted)))

    def _write_sql(self, statements: Iterable[str]) -> None:
        import sqlparse

        for statement in statements:
            if statement.startswith("--"):
                self.stdout.write("      " + statement.replace("\n", "\n      "))
                continue
            formatted = sqlparse.format(statement, keyword_case="upper", strip_whitespace=False)
            self.stdout.write("      " + formatted.replace("\n", "\n      ").rstrip(";") + ";")

    def _show_django(self, target, sql: bool) -> Callable[[], None]:
        """Print the pending Django migrations of the apps tablemigrate does not own that `run` applies
        before its modules; returns what prints the rest (those that depend on an owned app)."""
        from tablemigrate import djangoapps

        wrapper = djangoapps.wrapper_of(target.alias, target.conn)
        with contextlib.ExitStack() as stack:
            if wrapper is None:  # no database file yet: every Django migration is pending, and a
                # migration module that touches the alias's connection must not create the file
                wrapper = stack.enter_context(djangoapps.stand_in(target.alias))
            dplan = djangoapps.plan(wrapper)
            listed = djangoapps.collect_sql(dplan) if sql else [(n, []) for n in dplan.names]
        first = len(dplan.split()[0].steps)

        def write(entries: list[tuple[str, list[str]]]) -> None:
            for name, statements in entries:
                self.stdout.write(self.style.MIGRATE_HEADING(f"[ ] django: {name}"))
                self._write_sql(statements)

        write(listed[:first])
        return lambda: write(listed[first:])

    def handle_run(self, options: dict[str, Any]) -> None:
        from tablemigrate import runner

        directory = self._existing_migrations_dir(options)  # before the database: a missing one is not created
        target = self._target(options, directory)
        if options["dry_run"]:
            rehearsals = runner.dry_run(target, directory)
            if not rehearsals:
                self._say("No migrations to apply.")
            for r in rehearsals:
                self.stdout.write(self.style.MIGRATE_HEADING(f"would apply {r.migration} ({r.seconds * 1000:.1f} ms)"))
                for sql, seconds in r.statements:
                    self.stdout.write(f"  {seconds * 1000:8.1f} ms  {sql}")
                for t in sorted(set(r.rows_before) | set(r.rows_after)):
                    before, after = r.rows_before.get(t, "-"), r.rows_after.get(t, "-")
                    mark = "" if before == after else "   (changed)"
                    self.stdout.write(f"  rows {t}: {before} -> {after}{mark}")
            return
        self._remember_history(target)
        with self._timing() as took:
            applied = runner.run(target, directory, allow_destructive=options["allow_destructive"],
                                 confirm=self._confirm(options), take_backup=options["backup"],
                                 keep=conf.keep_backups(), lock_timeout=conf.busy_timeout())
        if applied and conf.post_migrate():  # the work first: a reader that went away only loses lines
            self._post_migrate(target.alias, options)
        if not applied:
            self._say("No migrations to apply.")
        for m in applied:
            self._say(self.style.SUCCESS(f"Applied {m.name}{took(m.name)}"))

    def _remember_history(self, target) -> None:
        """The applied migrations before a run/revert, to say what an interrupt left applied."""
        from tablemigrate.history import applied

        self._history_conn = target.conn
        self._history_before = [a.name for a in applied(target.conn)]

    @contextlib.contextmanager
    def _timing(self) -> Iterator[Callable[[str], str]]:
        """Each migration's duration, from the post_migration signal, for its one line on stdout (the
        log record "migration X applied (N ms)" goes to the project's logging, not to our stderr)."""
        from tablemigrate import signals

        seconds: dict[str, float] = {}

        def receiver(sender: object, name: str, duration: float, **kwargs: Any) -> None:
            seconds[name] = duration

        uid = f"tablemigrate-command-{id(self)}"
        signals.post_migration.connect(receiver, weak=False, dispatch_uid=uid)
        try:
            yield lambda name: f" ({seconds[name] * 1000:.0f} ms)" if name in seconds else ""
        finally:
            signals.post_migration.disconnect(dispatch_uid=uid)

    def _post_migrate(self, alias: str, options: dict[str, Any]) -> None:
        """What Django's `migrate` does after applying: receivers create content types, permissions..."""
        from django.core.management.sql import emit_post_migrate_signal

        try:
            emit_post_migrate_signal(max(options["verbosity"] - 1, 0), options["interactive"], alias)
        except Exception as exc:
            raise CommandError(f"the migrations were applied, but a post_migrate receiver failed: "
                               f"{type(exc).__name__}: {exc}", returncode=1) from None

    def handle_revert(self, options: dict[str, Any]) -> None:
        from tablemigrate import runner

        directory = conf.existing_migrations_dir()
        target = self._target(options)
        self._remember_history(target)
        with self._timing() as took:
            reverted = runner.revert(target, directory, to=options["to"],
                                     allow_destructive=options["allow_destructive"], confirm=self._confirm(options),
                                     take_backup=options["backup"], keep=conf.keep_backups(),
                                     lock_timeout=conf.busy_timeout())
        if reverted and conf.post_migrate():  # the work first: a reader that went away only loses lines
            self._post_migrate(conf.sqlite_alias(options["database"]), options)
        for m in reverted:
            self._say(self.style.SUCCESS(f"Reverted {m.name}{took(m.name)}"))

    # snapshots, restore, inspect, stats, baseline ------------------------------------------------

    def _file_target(self, options: dict[str, Any]):
        target = self._target(options)
        if target.path is None:
            raise CommandError("an in-memory database has no snapshots or backups", returncode=2)
        return target

    def handle_snapshot(self, options: dict[str, Any]) -> None:
        from tablemigrate import snapshots

        snapshots.check_name(options["name"])  # before opening anything
        target = self._file_target(options)
        path = snapshots.take_snapshot(target.conn, target.backups_dir, options["name"])
        self._say(self.style.SUCCESS(f"Snapshot {options['name']} written to {path}"))

    def handle_snapshots(self, options: dict[str, Any]) -> None:
        from tablemigrate import snapshots
        from tablemigrate.report import aligned

        db_path, backups_dir = self._paths(options)  # the listing needs no working database...
        entries = snapshots.listing(backups_dir, db_path)
        if not entries:
            self.stdout.write(f"No snapshots or backups in {backups_dir}")
        else:
            rows = [[e.kind, e.name, e.created, f"{e.size:,} B", e.last_migration or "(no migrations)"]
                    for e in entries]
            for line in aligned(["kind", "name", "taken (UTC)", "size", "last migration inside"], rows,
                                right={3}):
                self.stdout.write(line)
        # ...and is what a user reaches for when the database is damaged: list first, then say so.
        self._quick_check(self._file_target(options))

    def _paths(self, options: dict[str, Any]) -> tuple[Path, Path]:
        """The database file and its backups directory, without opening the database."""
        from django.db import connections

        wrapper = connections[conf.sqlite_alias(options["database"])]
        if wrapper.is_in_memory_db():
            raise CommandError("an in-memory database has no snapshots or backups", returncode=2)
        db_path = Path(str(wrapper.settings_dict["NAME"])).resolve()
        return db_path, conf.backup_dir() or db_path.parent / "backups"

    def handle_restore(self, options: dict[str, Any]) -> None:
        from django.db import connections

        from tablemigrate import backup, snapshots

        if options["name"] is not None:
            snapshots.check_name(options["name"])
        db_path, backups_dir = self._paths(options)
        if not db_path.exists():  # recovery of a lost file: refuse a bad source before creating it
            source = self._restore_source(options, backups_dir, db_path)
            try:
                backup.verify(source)
            except backup.BackupError as exc:
                raise snapshots.RestoreRefused(f"refusing to restore: {exc}; nothing was changed") from None
        target = self._file_target(options)
        source = self._restore_source(options, target.backups_dir, target.path)
        safety = snapshots.restore(target.conn, target.path, source, target.backups_dir, conf.busy_timeout(),
                                   allow_other_database=options["from_other_database"])
        connections[target.alias].close()  # the last connection closing removes the -wal and -shm files
        self._say(self.style.SUCCESS(f"Restored {source}; the previous state was saved to {safety}"))

    @staticmethod
    def _restore_source(options: dict[str, Any], backups_dir: Path, db_path: Path | None = None) -> Path:
        from tablemigrate import snapshots

        if options["name"] is not None:  # this database's snapshot of that name (its own directory)
            return snapshots.snapshot_path(backups_dir, options["name"], db_path)
        return snapshots.resolve_backup(backups_dir, options["backup"])

    def handle_inspect(self, options: dict[str, Any]) -> None:
        from tablemigrate.introspect import introspect
        from tablemigrate.report import describe

        target = self._target(options)
        lines = describe(introspect(target.conn), options["table"])
        if not lines and options["table"]:
            raise CommandError(f"no table {options['table']!r} in the database", returncode=2)
        # The schema is read from the first page alone; a damaged table would go unnoticed, so the
        # table shown (or, without one, the whole file) is checked before it is presented as the truth.
        self._quick_check(target, options["table"])
        self.stdout.write("\n".join(lines) if lines else "The database has no tables.")

    @staticmethod
    def _quick_check(target, table: str | None = None) -> None:
        """`PRAGMA quick_check` (of one table and its indexes when given): exit 2 when it finds damage."""
        from tablemigrate.sqltext import quote

        sql = f"PRAGMA quick_check({quote(table)})" if table else "PRAGMA quick_check"
        problem = target.conn.execute(sql).fetchone()[0]
        if problem != "ok":
            raise CommandError(f"database {target.path or ':memory:'} is corrupt (quick_check: {problem}); restore "
                               "a backup (`manage.py tablemigrate snapshots` lists them)", returncode=2)

    def handle_stats(self, options: dict[str, Any]) -> None:
        from tablemigrate.report import aligned, database_facts, table_stats
        from tablemigrate.runner import status

        target = self._target(options)
        facts = database_facts(target.conn)
        self.stdout.write(f"database  {target.path or ':memory:'}  {facts['size']:,} bytes, page size "
                          f"{facts['page_size']}, {facts['free_pages']} free pages, journal {facts['journal_mode']}, "
                          f"SQLite {facts['sqlite_version']}")
        rows = [[r.name, f"{r.rows:,}", f"{r.bytes:,} B" if r.bytes is not None else "? B"]
                for r in table_stats(target.conn)]
        for line in aligned(["table", "rows", "size"], rows, right={1, 2}):
            self.stdout.write("  " + line)
        st = status(target.conn, conf.existing_migrations_dir())
        last = f"{st.applied[-1].name} at {st.applied[-1].applied_at}" if st.applied else "none"
        self.stdout.write(f"migrations  {len(st.applied)} applied, {len(st.pending)} pending; last applied: {last}")
        from tablemigrate.ownership import ownership

        for line in ownership().describe():
            self.stdout.write(line)

    def handle_baseline(self, options: dict[str, Any]) -> None:
        from tablemigrate.baseline import baseline
        from tablemigrate.build import foreign_tables, managed_models

        target = self._target(options)
        result, left_alone = baseline(target, conf.migrations_dir(), managed_models(target.alias),
                                      lock_timeout=conf.busy_timeout(), write=not options["dry_run"],
                                      foreign=foreign_tables(target.alias))
        self._print_plans(result, sql=options["dry_run"], written=not options["dry_run"])
        for line in left_alone:
            self._say(line[0].upper() + line[1:])
        if not options["dry_run"]:
            self._say(self.style.SUCCESS(
                f"Recorded {len(result.modules)} migrations as applied; `generate` now works from this schema."))

    # generate -------------------------------------------------------------------------------

    def handle_generate(self, options: dict[str, Any]) -> None:
        from tablemigrate.build import foreign_tables, managed_models
        from tablemigrate.generate import generate
        from tablemigrate.loader import migration_files

        alias = conf.sqlite_alias(options["database"])
        try:
            renames = Renames.parse(options["rename"])
        except ValueError as exc:
            raise CommandError(str(exc), returncode=2) from None
        questioner = InteractiveQuestioner(self) if options["interactive"] else Questioner()
        write = not (options["dry_run"] or options["check"])
        adopt = write and not migration_files(conf.migrations_dir()) and self._needs_baseline(options)
        if adopt:
            raise CommandError(f"{adopt} already has tables of your models and no tablemigrate history: adopt it "
                               "with `manage.py tablemigrate baseline` (modules written now would create tables "
                               "that exist there)", returncode=2)
        result = generate(conf.migrations_dir(), managed_models(alias), label=options["name"],
                          renames=renames, questioner=questioner, write=write, foreign=foreign_tables(alias))
        if not result.changed:
            if result.stale_snapshot and options["check"]:
                raise CommandError(f"{result.stale_snapshot}: run `manage.py tablemigrate generate` to rewrite "
                                   "it, and commit it with the modules", returncode=1)
            stale = f"; {'rewrote' if write else 'generate would rewrite'} schema.sql: {result.stale_snapshot}"
            self._say("No changes detected" + (stale if result.stale_snapshot else ""))
            return
        if options["check"]:
            if self.verbosity > 0:
                self._print_plans(result, sql=False, written=False)
            raise CommandError(
                f"the models differ from the migration history in {len(result.modules)} table(s): "
                "run `manage.py tablemigrate generate`", returncode=1)
        self._print_plans(result, sql=options["dry_run"], written=write)

    def _print_plans(self, result: GenerateResult, sql: bool, written: bool) -> None:
        """What was written (a success report: silent at -v 0) or would be (the output asked for)."""
        if written and self.verbosity == 0:
            return
        verb = "Created" if written else "Would create"
        for module in result.modules:
            path = result.directory / f"{module.name}.py"
            self.stdout.write(self.style.MIGRATE_HEADING(f"{verb} {path}"))
            for line in module.plan.summary:
                self.stdout.write(f"  - {line}")
            for reason in module.plan.destructive:
                self.stdout.write(self.style.WARNING(f"  ! destructive: {reason}"))
            if sql:
                for step in module.plan.up:
                    for statement in statements_of(step):
                        self.stdout.write(f"    {statement};")
