"""`manage.py tablemigrate <command>`: parse arguments, call the library, print, set the exit code."""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
     module, missing directory or file; nothing was changed
  3  another run holds the lock, or another connection kept the database locked past the busy
     timeout; nothing was changed
"""


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
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        if not until_exit:
            gc.unfreeze()


class InteractiveQuestioner(Questioner):
    interactive = True

    def __init__(self, command: BaseCommand):
        self.command = command

    def _input(self, prompt: str) -> str | None:
        try:
            return input(prompt)
        except EOFError:
            return None

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


class _LogLines(logging.StreamHandler):
    """`tablemigrate` log lines on stderr when the project configured no logging for them. Errors are
    left to the command, which prints each failure once as its last line."""

    def __init__(self, stream, level: int):
        super().__init__(stream)
        self.setLevel(level)
        self.setFormatter(logging.Formatter("%(message)s"))
        self.addFilter(lambda record: record.levelno < logging.ERROR)

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
    shown = progress.Progress(command.stderr._out, options["interactive"] and command.stderr.isatty())
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
        process, so what existed before it stays frozen to the end (see `_long_lived_objects_frozen`)."""
        self.whole_process = argv == sys.argv
        super().run_from_argv(argv)

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

        g = add("generate", "Diff the migration history against the models and write one migration "
                            "module per changed table.")
        g.add_argument("name", nargs="?", default="", help="a label recorded in the new modules")
        g.add_argument("--dry-run", action="store_true", help="print the modules and SQL; write nothing")
        g.add_argument("--check", action="store_true",
                       help="write nothing; exit 1 when the models differ from the history (for CI)")
        g.add_argument("--rename", action="append", default=[], metavar="OLD:NEW",
                       help="declare a rename: TABLE.OLDCOLUMN:NEWCOLUMN or OLDTABLE:NEWTABLE (repeatable)")

        show = add("show", "List applied and pending migrations with the SQL pending ones would run, and "
                           "report edited modules and schema drift. Never writes.")
        show.add_argument("--no-sql", dest="sql", action="store_false", help="list only, without SQL")

        def add_apply_options(p: argparse.ArgumentParser) -> None:
            p.add_argument("--allow-destructive", action="store_true",
                           help="apply migrations flagged destructive without asking")
            p.add_argument("--no-backup", dest="backup", action="store_false",
                           help="skip the backup (a failure then only rolls back the failing migration)")

        r = add("run", "Apply pending migrations: validate, check the existing rows (violations refuse, "
                       "data loss needs confirmation), lock, back up, one transaction per migration, "
                       "restore the backup on failure, keep the newest backups.")
        add_apply_options(r)
        r.add_argument("--dry-run", action="store_true",
                       help="rehearse on an in-memory copy of the database and report; change nothing")
        rv = add("revert", "Revert the last applied migration (or every one after --to NAME), with the "
                           "same lock/backup/restore safety.")
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
        ins = add("inspect", "Print the live schema as the diff sees it (one table, or all).")
        ins.add_argument("table", nargs="?", help="only this table")
        add("stats", "Tables with row counts and sizes, database facts, pending and last applied migrations.")
        bl = add("baseline", "Adopt a database without tablemigrate history (e.g. made by Django's `migrate`): "
                             "write modules that create its current tables and record them as applied.")
        bl.add_argument("--dry-run", action="store_true", help="print what would be written; change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            with _long_lived_objects_frozen(until_exit=getattr(self, "whole_process", False)):
                if options["action"] in ("run", "revert"):
                    with _reporting(self, options):
                        getattr(self, "handle_" + options["action"])(options)
                else:
                    getattr(self, "handle_" + options["action"])(options)
        except TablemigrateError as exc:
            raise CommandError(str(exc), returncode=exc.exit_code) from None

    # shared ---------------------------------------------------------------------------------

    def _target(self, options: dict[str, Any]):
        from django.db import connections

        from tablemigrate.runner import Target

        alias = conf.sqlite_alias(options["database"])
        wrapper = connections[alias]
        name = str(wrapper.settings_dict["NAME"])
        missing = not wrapper.is_in_memory_db() and not Path(name).is_file()
        if missing and options["action"] == "show":  # safe any time: an empty stand-in, nothing created
            self.stdout.write(f"(database file {name} does not exist yet: every migration is pending)")
            return Target(alias, sqlite3.connect(":memory:", isolation_level=None), None)
        if missing and options["action"] not in ("run", "restore"):
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
        writes = options["action"] in ("run", "revert", "restore", "baseline") and not options.get("dry_run")
        if writes and not wrapper.is_in_memory_db() and not (
                os.access(name, os.W_OK) and os.access(os.path.dirname(os.path.abspath(name)), os.W_OK)):
            raise CommandError(f"database file {name} (or its directory, where SQLite keeps its journal) is "
                               "read-only; nothing was changed", returncode=2)
        conn.execute(f"PRAGMA busy_timeout = {int(conf.busy_timeout() * 1000)}")
        path = None if wrapper.is_in_memory_db() else Path(wrapper.settings_dict["NAME"]).resolve()
        return Target(alias, conn, path, conf.backup_dir())

    def _confirm(self, options: dict[str, Any]):
        if not options["interactive"]:
            return None

        def ask(text: str) -> bool:
            try:
                return input(text + ": ").strip().lower() == "yes"
            except EOFError:
                return False
        return ask

    # show / run / revert ----------------------------------------------------------------------

    def handle_show(self, options: dict[str, Any]) -> None:
        import sqlparse

        from tablemigrate.loader import load_migration
        from tablemigrate.runner import drift, status

        target = self._target(options)
        directory = conf.existing_migrations_dir()
        st = status(target.conn, directory)
        for a in st.applied:
            flag = "  EDITED AFTER APPLY" if a.name in st.modified else (
                "  MISSING FILE" if a.name in st.missing else "")
            self.stdout.write(f"[X] {a.name}  (applied {a.applied_at}){flag}")
        for path in st.pending:
            m = load_migration(path)
            warn = "  (destructive: " + "; ".join(m.destructive) + ")" if m.destructive else ""
            self.stdout.write(self.style.MIGRATE_HEADING(f"[ ] {m.name}") + warn)
            if options["sql"]:
                for step in m.up:
                    for statement in statements_of(step):
                        if statement.startswith("--"):
                            self.stdout.write("      " + statement)
                            continue
                        formatted = sqlparse.format(statement, keyword_case="upper", strip_whitespace=False)
                        self.stdout.write("      " + formatted.replace("\n", "\n      ").rstrip(";") + ";")
        if not st.applied and not st.pending:
            self.stdout.write("No migrations.")
        if st.modified or st.missing:
            self.stdout.write(self.style.ERROR(
                "The history does not match the migration files: `run` refuses until this is resolved."))
            return
        from tablemigrate.baseline import model_tables
        from tablemigrate.build import managed_models

        drifted = drift(target, directory, model_tables(managed_models(target.alias)))
        if drifted:
            self.stdout.write(self.style.WARNING(
                "Drift: the live schema differs from the applied history in: " + ", ".join(drifted)))

    def handle_run(self, options: dict[str, Any]) -> None:
        from tablemigrate import runner

        target = self._target(options)
        directory = conf.existing_migrations_dir()
        if options["dry_run"]:
            rehearsals = runner.dry_run(target, directory)
            if not rehearsals:
                self.stdout.write("No migrations to apply.")
            for r in rehearsals:
                self.stdout.write(self.style.MIGRATE_HEADING(f"would apply {r.migration} ({r.seconds * 1000:.1f} ms)"))
                for sql, seconds in r.statements:
                    self.stdout.write(f"  {seconds * 1000:8.1f} ms  {sql}")
                for t in sorted(set(r.rows_before) | set(r.rows_after)):
                    before, after = r.rows_before.get(t, "-"), r.rows_after.get(t, "-")
                    mark = "" if before == after else "   (changed)"
                    self.stdout.write(f"  rows {t}: {before} -> {after}{mark}")
            return
        applied = runner.run(target, directory, allow_destructive=options["allow_destructive"],
                             confirm=self._confirm(options), take_backup=options["backup"],
                             keep=conf.keep_backups(), lock_timeout=conf.busy_timeout())
        if not applied:
            self.stdout.write("No migrations to apply.")
        for m in applied:
            self.stdout.write(self.style.SUCCESS(f"Applied {m.name}"))
        if applied and conf.post_migrate():
            self._post_migrate(target.alias, options)

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

        reverted = runner.revert(self._target(options), conf.existing_migrations_dir(), to=options["to"],
                                 allow_destructive=options["allow_destructive"], confirm=self._confirm(options),
                                 take_backup=options["backup"], keep=conf.keep_backups(),
                                 lock_timeout=conf.busy_timeout())
        for m in reverted:
            self.stdout.write(self.style.SUCCESS(f"Reverted {m.name}"))
        if reverted and conf.post_migrate():
            self._post_migrate(conf.sqlite_alias(options["database"]), options)

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
        self.stdout.write(self.style.SUCCESS(f"Snapshot {options['name']} written to {path}"))

    def handle_snapshots(self, options: dict[str, Any]) -> None:
        from tablemigrate import snapshots

        target = self._file_target(options)
        entries = snapshots.listing(target.backups_dir, target.path)
        if not entries:
            self.stdout.write(f"No snapshots or backups in {target.backups_dir}")
        for e in entries:
            self.stdout.write(f"{e.kind:8}  {e.name:40}  {e.created}  {e.size:>12,} B  "
                              f"{e.last_migration or '(no migrations)'}")

    def handle_restore(self, options: dict[str, Any]) -> None:
        from django.db import connections

        from tablemigrate import snapshots

        if options["name"] is not None:
            snapshots.check_name(options["name"])
        target = self._file_target(options)
        source = (snapshots.snapshot_path(target.backups_dir, options["name"]) if options["name"] is not None
                  else snapshots.resolve_backup(target.backups_dir, options["backup"]))
        safety = snapshots.restore(target.conn, target.path, source, target.backups_dir, conf.busy_timeout())
        connections[target.alias].close()  # the last connection closing removes the -wal and -shm files
        self.stdout.write(self.style.SUCCESS(f"Restored {source}; the previous state was saved to {safety}"))

    def handle_inspect(self, options: dict[str, Any]) -> None:
        from tablemigrate.introspect import introspect
        from tablemigrate.report import describe

        lines = describe(introspect(self._target(options).conn), options["table"])
        if not lines and options["table"]:
            raise CommandError(f"no table {options['table']!r} in the database", returncode=2)
        self.stdout.write("\n".join(lines) if lines else "The database has no tables.")

    def handle_stats(self, options: dict[str, Any]) -> None:
        from tablemigrate.report import database_facts, table_stats
        from tablemigrate.runner import status

        target = self._target(options)
        facts = database_facts(target.conn)
        self.stdout.write(f"database  {target.path or ':memory:'}  {facts['size']:,} bytes, page size "
                          f"{facts['page_size']}, {facts['free_pages']} free pages, journal {facts['journal_mode']}, "
                          f"SQLite {facts['sqlite_version']}")
        rows = table_stats(target.conn)
        width = max((len(r.name) for r in rows), default=5)
        for r in rows:
            size = f"{r.bytes:>12,} B" if r.bytes is not None else "           ? B"
            self.stdout.write(f"  {r.name.ljust(width)}  {r.rows:>10,} row{'' if r.rows == 1 else 's'}  {size}")
        st = status(target.conn, conf.existing_migrations_dir())
        last = f"{st.applied[-1].name} at {st.applied[-1].applied_at}" if st.applied else "none"
        self.stdout.write(f"migrations  {len(st.applied)} applied, {len(st.pending)} pending; last applied: {last}")

    def handle_baseline(self, options: dict[str, Any]) -> None:
        from tablemigrate.baseline import baseline
        from tablemigrate.build import managed_models

        target = self._target(options)
        result, left_alone = baseline(target, conf.migrations_dir(), managed_models(target.alias),
                                      lock_timeout=conf.busy_timeout(), write=not options["dry_run"])
        self._print_plans(result, sql=options["dry_run"], written=not options["dry_run"])
        if left_alone:
            self.stdout.write("Left alone (no managed model owns them): " + ", ".join(left_alone))
        if not options["dry_run"]:
            self.stdout.write(self.style.SUCCESS(
                f"Recorded {len(result.modules)} migrations as applied; `generate` now works from this schema."))

    # generate -------------------------------------------------------------------------------

    def handle_generate(self, options: dict[str, Any]) -> None:
        from tablemigrate.build import managed_models
        from tablemigrate.generate import generate

        alias = conf.sqlite_alias(options["database"])
        try:
            renames = Renames.parse(options["rename"])
        except ValueError as exc:
            raise CommandError(str(exc), returncode=2) from None
        questioner = InteractiveQuestioner(self) if options["interactive"] else Questioner()
        write = not (options["dry_run"] or options["check"])
        result = generate(conf.migrations_dir(), managed_models(alias), label=options["name"],
                          renames=renames, questioner=questioner, write=write)
        if not result.changed:
            self.stdout.write("No changes detected")
            return
        if options["check"]:
            self._print_plans(result, sql=False, written=False)
            raise CommandError(
                f"the models differ from the migration history in {len(result.modules)} table(s): "
                "run `manage.py tablemigrate generate`", returncode=1)
        self._print_plans(result, sql=options["dry_run"], written=write)

    def _print_plans(self, result: GenerateResult, sql: bool, written: bool) -> None:
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
