"""`manage.py tablemigrate <command>`: the command Django runs, a dispatcher.

It parses the arguments, dispatches to the handlers (tablemigrate.cli), and ends with one line and an
exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sqlite3
import sys
from typing import Any

from django.core.management.base import CommandError

from tablemigrate.cli.files import FileCommands
from tablemigrate.cli.fleet import FleetCommands, add_fleet_options
from tablemigrate.cli.migrating import MigrationCommands
from tablemigrate.cli.output import document_only, reporting
from tablemigrate.cli.process import (
    EXIT_SIGPIPE,
    add_djangos_options,
    interrupted_by,
    long_lived_objects_frozen,
    signals_stop_cleanly,
    sqlite_error,
    version,
)
from tablemigrate.cli.provision import ProvisionCommands
from tablemigrate.cli.schema import SchemaCommands
from tablemigrate.errors import TablemigrateError

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
     timeout (opening it, at BEGIN, a statement, COMMIT, the backup, the restore, a Django migration):
     nothing was changed, or the run's backup was restored; if a lock kept even the restore from
     running, the line says which migrations stay applied; in a post_migrate receiver, after the
     migrations were applied, the line says so
  4  show --check / run --check: migrations are pending (Django's of the other apps included);
     nothing was changed
  5  --all-databases: some databases did not end as asked (refused, failed and restored, locked,
     or not started after the failure limit or a failed canary); one line per database says which
  6  run, revert, restore or baseline on a LiteFS replica (a .primary file beside the database):
     nothing was opened or written; migrations run on the primary (litefs.yml `exec`, if-candidate)
  130  interrupted by SIGINT (Ctrl-C),
  143  by SIGTERM (`docker stop`), or
  129  by SIGHUP (the terminal or SSH session closed): the command stopped cleanly (the migration
       under way rolled back, the run's backup restored, partial files removed); its one line says
       what state things are in
  141  stdout was closed early (`show | head`): the output was cut short; the command's work
       (for run/revert: the migrations and post_migrate) was done before it printed
"""

SEE_EXIT_CODES = "exit codes: see `manage.py tablemigrate --help`"

#: Commands that write (the database, backups, snapshots or modules): SIGTERM stops them the way Ctrl-C does.
WRITERS = frozenset({"run", "revert", "restore", "snapshot", "baseline", "generate", "squash", "provision"})


class Command(MigrationCommands, FileCommands, SchemaCommands, FleetCommands, ProvisionCommands):
    help = ("Per-table, diff-based schema migrations for SQLite: generate, show, run, revert, "
            "snapshot/restore. Run `manage.py tablemigrate COMMAND --help` for each command.")
    requires_system_checks: list[str] = []

    def run_from_argv(self, argv: list[str]) -> None:
        """`manage.py tablemigrate ...` with the process's own arguments: the command is the whole
        process, so what existed before it stays frozen to the end (see `long_lived_objects_frozen`),
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

    def get_version(self) -> str:
        return version()

    #: Parsers made for `call_command`, by program and subcommand name: `run --all-databases` runs one command
    #: per database, and building this parser takes 10 ms (parsing never changes it).
    _parsers: dict[tuple[str, str], Any] = {}

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any):
        key = (prog_name, subcommand)
        reuse = not kwargs and not getattr(self, "_called_from_command_line", None)
        if reuse and key in self._parsers:
            return self._parsers[key]
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        parser.epilog = EXIT_CODES
        if reuse:
            self._parsers[key] = parser
        return parser

    def add_arguments(self, parser) -> None:
        common = argparse.ArgumentParser(add_help=False)
        common.add_argument("--database", help="database alias (default: 'default'; `generate` with a history per "
                                               "alias: every alias TABLEMIGRATE_MIGRATIONS_DIR names)")
        common.add_argument("--noinput", "--no-input", action="store_false", dest="interactive",
                            help="never prompt; refuse what would need an answer")
        common.add_argument("-v", "--verbosity", type=int, choices=[0, 1, 2, 3], default=argparse.SUPPRESS,
                            help="0: only errors; 1: log lines (default); 2-3: more")
        add_djangos_options(common)  # after the subcommand too, as `manage.py migrate --traceback`
        parser.add_argument("--skip-checks", action="store_true", help="accepted as Django's commands accept it")
        sub = parser.add_subparsers(dest="action", metavar="COMMAND", required=True)

        def add(name: str, help_text: str) -> argparse.ArgumentParser:
            p = sub.add_parser(name, help=help_text, description=help_text, parents=[common],
                               epilog=SEE_EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter)
            return p

        def add_format(p: argparse.ArgumentParser, what: str) -> None:
            p.add_argument("--format", choices=["text", "json"], default="text",
                           help=f"json: print one JSON document on stdout ({what}; shape in the README), "
                                "never prompt")

        g = add("generate", "Diff the migration history against the models of the apps tablemigrate owns and "
                            "write one migration module per changed table.")
        g.add_argument("name", nargs="?", default="", help="a label recorded in the new modules")
        g.add_argument("app", nargs="?", help="with --empty: the app label the data module is for")
        g.add_argument("--empty", action="store_true",
                       help="write one empty data module after the latest (Django's makemigrations --empty): "
                            "`generate --empty NAME APP` or `generate --empty NAME --table TABLE`; its "
                            "forwards(apps, schema_editor) and backwards get historical models as the tables "
                            "are at that module, as RunPython does (docs/modules.md). Compares no models")
        g.add_argument("--table", help="with --empty: the table the data module is for (a model's table)")
        g.add_argument("--dry-run", action="store_true", help="print the modules and SQL; write nothing")
        g.add_argument("--check", action="store_true",
                       help="write nothing; exit 1 when the models differ from the history (for CI)")
        add_format(g, "with --check: the changes found, their tables and destructive flags, and why it fails: "
                      "ok, reasons")
        g.add_argument("--rename", action="append", default=[], metavar="OLD:NEW",
                       help="declare a rename: TABLE.OLDCOLUMN:NEWCOLUMN, OLDTABLE:NEWTABLE or APP.OLDMODEL:APP.NEWMODEL "
                            "(a model: its content type follows; repeatable)")
        g.add_argument("--default", action="append", default=[], metavar="COLUMN=VALUE",
                       help="the one-off value existing rows take in a column added (or made) NOT NULL without a "
                            "default, so that --noinput need not ask: COLUMN is TABLE.COLUMN or APP.MODEL.FIELD, "
                            "VALUE a Python expression as makemigrations takes it (datetime and "
                            "django.utils.timezone available: 0, \"'unknown'\", timezone.now to take the time "
                            "when the migration runs); repeatable")

        show = add("show", "Say which apps tablemigrate owns; list the other apps' pending Django migrations "
                           "and tablemigrate's applied and pending migrations, with the SQL pending ones would "
                           "run; report edited modules and schema drift. Never writes.")
        show.add_argument("--no-sql", dest="sql", action="store_false", help="list only, without SQL")
        show.add_argument("--check", action="store_true",
                          help="exit 4 when any migration is pending (2 when the history does not match the "
                               "files), as `migrate --check`; for CI")
        add_format(show, "applied and pending migrations, with tables and destructive flags, drift")
        add_fleet_options(show)

        def add_apply_options(p: argparse.ArgumentParser) -> None:
            p.add_argument("--allow-destructive", action="store_true",
                           help="apply migrations flagged destructive without asking (one that loses nothing on "
                                "this database, counted, is not asked about unless it is `atomic = False`)")
            p.add_argument("--no-backup", dest="backup", action="store_false",
                           help="skip the backup (a failure then only rolls back the failing migration)")

        r = add("run", "Apply pending migrations: validate, check the existing rows (violations refuse, "
                       "data loss needs confirmation), lock, back up, apply the pending Django migrations of "
                       "the apps tablemigrate does not own (Django's executor, data steps included), then "
                       "tablemigrate's, one transaction per migration, restore the backup on failure, keep "
                       "the newest backups. Every run, nothing pending included, sends Django's pre_migrate "
                       "and post_migrate as `migrate` does (content types, permissions; off with "
                       "TABLEMIGRATE_POST_MIGRATE = False).")
        add_apply_options(r)
        r.add_argument("--dry-run", action="store_true",
                       help="rehearse on a temporary copy of the database (a file beside the backups) and report "
                            "(row counts of the tables a migration changes; of every table at -v 2); change nothing")
        r.add_argument("--check", action="store_true",
                       help="apply nothing; list what is pending and exit 4 when anything is (2 when the history "
                            "does not match the files), as `migrate --check`; for CI")
        add_format(r, "what was applied, with durations, and the changed tables; with --check, what is pending")
        add_fleet_options(r)
        rv = add("revert", "Revert the last applied tablemigrate migration (or every one after --to NAME), "
                           "with the same lock/backup/restore safety. Other apps: `manage.py migrate APP 000N`.")
        add_apply_options(rv)
        rv.add_argument("--to", metavar="NAME", help="revert every migration applied after NAME (required with --all-databases)")
        add_fleet_options(rv)

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
        stats = add("stats", "Tables with row counts and sizes, database facts, pending and last applied "
                             "migrations, which apps tablemigrate owns.")
        add_fleet_options(stats)
        bl = add("baseline", "Adopt a database without tablemigrate history (e.g. made by Django's `migrate`): "
                             "write modules that create the current tables of the apps tablemigrate owns and "
                             "record them as applied. When the modules exist (written by baseline from another "
                             "database): check that this database's tables are exactly what they build up to the "
                             "adoption point and record those as applied; `run` then applies the later ones.")
        bl.add_argument("--dry-run", action="store_true", help="print what would be written; change nothing")
        sq = add("squash", "Replace the first migration modules (up to --to NAME, default all) by one checkpoint "
                           "module that creates their schema at once, proved first to give exactly the schema they "
                           "give; move them to squashed/<checkpoint>/ in the migrations directory. A database that "
                           "applied all of them records the checkpoint in their place at its next `run` (nothing "
                           "applied); a new one runs the checkpoint alone; one that applied only some is refused "
                           "until it applied the rest. Refused when they hold a data step. Reads no database.")
        sq.add_argument("--to", metavar="NAME", help="the last module to squash (default: the last one)")
        sq.add_argument("--dry-run", action="store_true", help="print the checkpoint; write nothing")
        pv = add("provision", "Create a new database file for the alias (--database) at the cost of a file copy: "
                              "a copy of its template, the database a first `run` builds on a new file (history, "
                              "Django's migrations of the other apps, post_migrate's content types and "
                              "permissions), proved equal to the models' schema (refused, exit 2, when the models "
                              "have changes without a migration: run `generate` first) and integrity-checked. The "
                              "template is built at the first provision and kept in the backups directory's "
                              "templates/ (TABLEMIGRATE_BACKUP_DIR, else backups/ beside the alias's database), "
                              "rebuilt when the modules, Django's migrations, the models or tablemigrate change. "
                              "The copy is checked and linked into place; a file in a TABLEMIGRATE_FLEET glob is "
                              "then a fleet member like any other. Python: tablemigrate.fleet.provision.provision("
                              "path, alias).")
        pv.add_argument("path", metavar="PATH", help="the new database file; refused (exit 2) if anything is there: "
                                                     "never overwritten")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        self.verbosity = options["verbosity"]
        options["database_given"] = options["database"] is not None
        options["database"] = options["database"] or "default"
        self._database = options["database"]
        self._history_before: list[str] | None = None
        with signals_stop_cleanly(action in WRITERS) as stop:
            try:
                with long_lived_objects_frozen(until_exit=getattr(self, "whole_process", False)), \
                        document_only(self, options):
                    if options.get("all_databases"):  # each database's command reports for itself
                        self.handle_fleet(options)
                    else:
                        self.single_database(options)
                        logged = reporting(self, options) if action in ("run", "revert") else contextlib.nullcontext()
                        with self.fleet_file_as_its_alias(options), logged:
                            getattr(self, "handle_" + action)(options)
            except (KeyboardInterrupt, TablemigrateError, sqlite3.DatabaseError) as exc:
                if stop.signum is not None or interrupted_by(exc):
                    self._stopped(stop, exc, options)
                if isinstance(exc, sqlite3.DatabaseError):
                    raise sqlite_error(exc, self._database_name()) from None
                assert isinstance(exc, TablemigrateError)  # a KeyboardInterrupt always went to _stopped
                # With --traceback, the chain down to the failure itself (a data step's own file and line).
                raise CommandError(str(exc), returncode=exc.exit_code) from (exc if options.get("traceback") else None)
