"""`manage.py tablemigrate <command>`: parse arguments, call the library, print, set the exit code."""

from __future__ import annotations

import argparse
import sqlite3
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tablemigrate import conf
from tablemigrate.apply import statements_of
from tablemigrate.diff import Renames
from tablemigrate.errors import TablemigrateError
from tablemigrate.generate import GenerateResult, Questioner

EXIT_CODES = """exit codes:
  0  success (for generate --check: models and history agree)
  1  failure: a migration failed and the database was rolled back/restored, or generate --check
     found model changes without migrations, or a destructive migration was not confirmed
  2  usage or configuration error: unknown option, non-SQLite database, malformed migration
     module, missing directory or file; nothing was changed
  3  another run holds the lock, or the database stayed locked past the busy timeout
"""


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


class Command(BaseCommand):
    help = ("Per-table, diff-based schema migrations for SQLite: generate, show, run, revert, "
            "snapshot/restore. Run `manage.py tablemigrate COMMAND --help` for each command.")
    requires_system_checks: list[str] = []

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

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            getattr(self, "handle_" + options["action"])(options)
        except TablemigrateError as exc:
            raise CommandError(str(exc), returncode=exc.exit_code) from None

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
