"""`manage.py migrate` in a project where tablemigrate owns apps (issue 23: it must never half-apply).

Django's `get_commands()` lets the app listed *first* in INSTALLED_APPS win a command name (it walks
the apps in reverse and lets each overwrite, Django 4.2 to 6.x), and django.core's own commands lose to
any app's; so this `migrate` replaces Django's wherever tablemigrate is listed, unless an app before it
ships a `migrate` too (the pre_migrate receiver in tablemigrate.testing is the backstop then).

On a real SQLite database that has tables of the apps tablemigrate owns:
- plain `migrate` (with `--noinput`, `--database`, `-v`, `--run-syncdb`: syncdb's apps without
  migrations are the ones tablemigrate owns) is `manage.py tablemigrate run`: one lock, one backup, the
  other apps' Django migrations and tablemigrate's modules in the right order, its exit codes;
- `--plan` lists what that run would apply, in its order, and `--check` exits 1 when anything is
  pending; neither writes, nor creates a missing database file;
- while an owned app still has Django migrations (a project being adopted, W003), `migrate` stays
  Django's: those migrations create its tables in Django's order (a pending one of them is refused);
- `migrate APP [NAME]`, `--fake`, `--fake-initial`, `--prune` stay Django's, for the apps whose
  Django migrations own their tables; a plan that would apply a migration while tablemigrate's
  migrations are pending is refused before anything changed (the pre_migrate receiver). An owned app
  label is refused.
Everything else (another database vendor, an alias without owned tables, the test database, which the
test runners build through `migrate`) is Django's `migrate`, untouched.
"""

from __future__ import annotations

import contextlib
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.core.management.base import CommandError
from django.core.management.commands.migrate import Command as DjangoMigrate
from django.db import connections

from tablemigrate import conf
from tablemigrate.errors import TablemigrateError
from tablemigrate.project.ownership import owned_with_django_migrations, ownership
from tablemigrate.testing import is_test_database, records_only


@contextlib.contextmanager
def _one_line(alias: str) -> Iterator[None]:
    """tablemigrate's errors as the one-line CommandError with their exit code, as `tablemigrate` ends."""
    from tablemigrate.cli.process import sqlite_error

    try:
        yield
    except TablemigrateError as exc:
        raise CommandError(str(exc), returncode=exc.exit_code) from None
    except sqlite3.DatabaseError as exc:
        raise sqlite_error(exc, str(connections[alias].settings_dict["NAME"])) from None


def owns_tables_on(alias: str) -> bool:
    """Whether `alias` is a real SQLite database on which tablemigrate owns tables."""
    from tablemigrate.project.build import managed_models

    if connections[alias].vendor != "sqlite" or is_test_database(alias):
        return False
    with _one_line(alias):
        return bool(managed_models(alias))


class Command(DjangoMigrate):
    help = (DjangoMigrate.help + " Where tablemigrate owns apps on a SQLite database, `migrate` is "
            "`manage.py tablemigrate run`; `--plan` and `--check` list and count what it would apply.")

    def run_from_argv(self, argv: list[str]) -> None:
        self.whole_process = argv == sys.argv  # as `tablemigrate`: Ctrl-C/SIGTERM then exit 130/143
        super().run_from_argv(argv)

    def handle(self, *args: Any, **options: Any) -> None:
        alias = options["database"]
        own = ownership() if owns_tables_on(alias) else None
        if own is None or owned_with_django_migrations(own):
            # An owned app that still has Django migrations (adopting a project, W003): they own its
            # tables until its migrations folder is deleted, so Django's `migrate` builds them in order.
            return super().handle(*args, **options)
        app = options["app_label"]
        if app and own.owns(app):
            raise CommandError(f"tablemigrate owns app {app}: its tables are created and changed by `manage.py "
                               "tablemigrate run` (and `tablemigrate revert`), not by `migrate`; nothing was "
                               "changed", returncode=2)
        if app or options["fake"] or options["fake_initial"] or options["prune"]:
            records = options["fake"] or options["prune"]
            wrapper = connections[alias]
            name = str(wrapper.settings_dict["NAME"])
            if not records and not wrapper.is_in_memory_db() and not Path(name).exists():
                raise CommandError(f"database file {name} does not exist: plain `manage.py migrate` creates it "
                                   "(it runs `manage.py tablemigrate run`); nothing was changed", returncode=2)
            token = records_only.set(records)
            try:
                return super().handle(*args, **options)
            finally:
                records_only.reset(token)
        if not self.requires_system_checks and not options["skip_checks"]:
            self.check(databases=[alias])  # Django 4.2's migrate checks in handle(), 5.x in execute()
        if options["plan"] or options["check_unapplied"]:
            return self._plan(alias, options)
        from .tablemigrate import Command as Tablemigrate

        run = Tablemigrate()
        run.whole_process = getattr(self, "whole_process", False)
        argv = ["run", "--database", alias, "-v", str(options["verbosity"])]
        call_command(run, *argv, *([] if options["interactive"] else ["--noinput"]), stdout=self.stdout._out,
                     stderr=self.stderr._out, no_color=options["no_color"], force_color=options["force_color"])

    def _plan(self, alias: str, options: dict[str, Any]) -> None:
        with _one_line(alias):
            pending = self._pending(alias)
        if options["plan"]:
            self.stdout.write("Planned operations:", self.style.MIGRATE_LABEL)
            for name in pending:
                self.stdout.write("  " + name, self.style.MIGRATE_HEADING)
            if not pending:
                self.stdout.write("  No planned migration operations.")
        if options["check_unapplied"] and pending:
            raise CommandError(f"{len(pending)} migrations are not applied (`manage.py migrate` or `manage.py "
                               "tablemigrate run` applies them)", returncode=1)

    def _pending(self, alias: str) -> list[str]:
        """What `tablemigrate run` would apply, in its order: the Django migrations before the owned
        modules, the modules, the Django migrations that come after an owned app. Nothing is written
        and a missing database file is not created (an empty stand-in answers for it)."""
        from tablemigrate.history.status import check_history, status
        from tablemigrate.project import djangoapps

        from .tablemigrate import Command as Tablemigrate

        directory = conf.existing_migrations_dir(alias)
        probe = Tablemigrate(stdout=self.stdout._out, stderr=self.stderr._out)
        target = probe._target({"database": alias, "action": "run", "dry_run": True})
        st = status(target.conn, directory)
        check_history(st)
        with contextlib.ExitStack() as stack:
            wrapper = djangoapps.wrapper_of(alias, target.conn) or stack.enter_context(djangoapps.stand_in(alias))
            dplan = djangoapps.plan(wrapper)
        django = [f"django: {name}" for name in dplan.names]
        first = len(dplan.split()[0].steps)
        return django[:first] + [f"tablemigrate: {p.stem}" for p in st.pending] + django[first:]
