"""`show`, `run` and `revert`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from django.core.management.base import CommandError, OutputWrapper

from tablemigrate import conf
from tablemigrate.errors import DatabaseLocked, LockTimeout, MigrationsPending, is_busy
from tablemigrate.run.apply import statements_of

from .output import document, migration_entry
from .parts import CommandParts


class MigrationCommands(CommandParts):
    """The handlers, mixed into the Command."""

    def handle_show(self, options: dict[str, Any]) -> None:
        from tablemigrate.history.status import status

        target = self._target(options)
        directory = self._existing_migrations_dir(options)
        st = status(target.conn, directory)
        if options["format"] == "json":
            doc = self._status_document(target, directory, st)
            self._write_json(document("show", **doc))
            pending = bool(doc["pending"])
        else:
            pending = self._show_text(target, directory, st, options)
        if options["check"]:
            self._check_pending(st, pending)

    def _show_text(self, target, directory, st, options: dict[str, Any]) -> bool:
        """`show`'s listing; whether anything is pending (Django's migrations included)."""
        from tablemigrate.history.loader import load_migration
        from tablemigrate.history.status import acceptance, out_of_order
        from tablemigrate.project.ownership import ownership
        from tablemigrate.run import online
        from tablemigrate.sqlite import shapes

        own = ownership()
        for line in own.describe():
            self.stdout.write(line)
        for a in st.applied:
            flag = "  EDITED AFTER APPLY" if a.name in st.modified else (
                "  MISSING FILE" if a.name in st.missing else
                "  edited after apply, accepted (previous_checksums)" if a.name in st.accepted else
                f"  checkpoint: the {len(st.replaced)} migrations it replaces are applied; `run` records it"
                if st.checkpoint is not None and a.name == st.checkpoint.name else "")
            self.stdout.write(f"[X] {a.name}  (applied {a.applied_at}){flag}")
        # Pending ones in the order `run` applies them: Django's, tablemigrate's, then the Django
        # migrations that depend on an owned app.
        later, django_pending = self._show_django(target, options["sql"])
        early = set(out_of_order(st))
        touched: set[str] = set()  # tables an earlier pending module changes: its shape is not known yet
        for path in st.pending:
            m = load_migration(path)
            warn = "  (destructive: " + "; ".join(m.destructive) + ")" if m.destructive else ""
            if path in early:  # merged from a branch: sorts before a module already applied here
                warn = "  (out of order: sorts before an applied migration)" + warn
            self.stdout.write(self.style.MIGRATE_HEADING(f"[ ] {m.name}") + warn)
            refusal = shapes.refusal(target.conn, m, "up") if m.before and \
                m.before["table"].lower() not in touched else None
            if refusal:
                self.stdout.write(self.style.ERROR(f"      `run` refuses it: {refusal}"))
            elif m.table and m.table.lower() not in touched and online.plan(target.conn, m, "up") is not None:
                self.stdout.write(f"      online: {m.table} is rebuilt in short transactions while the "
                                  "application keeps writing (TABLEMIGRATE_ONLINE_REBUILD_ROWS)")
            touched |= {t["table"].lower() for t in (m.before, m.after) if t} | ({m.table.lower()} if m.table else set())
            if options["sql"]:
                self._write_sql(s for step in m.up for s in statements_of(step))
        later()
        if not st.applied and not st.pending:
            self.stdout.write("No migrations.")
        if st.modified or st.missing or st.checkpoint_refusal:
            self.stdout.write(self.style.ERROR(
                "The history does not match the migration files: `run` refuses until this is resolved."))
            if st.checkpoint_refusal:
                self.stdout.write(f"  {st.checkpoint_refusal}")
            for name in st.modified:
                self.stdout.write(f"  {name}: to accept the edit, write in it: {acceptance(st, name)}")
        else:
            drifted = self._drift(target, directory, st)
            if drifted:
                self.stdout.write(self.style.WARNING(
                    "Drift: the live schema differs from the applied history in: " + ", ".join(drifted)))
        return bool(st.pending) or django_pending

    @staticmethod
    def _drift(target, directory, st) -> list[str]:
        from tablemigrate.project.build import foreign_tables, managed_models
        from tablemigrate.project.fingerprint import model_tables
        from tablemigrate.run.drift import drift

        return drift(target, directory, model_tables(managed_models(target.alias)), foreign_tables(target.alias), st)

    def _check_pending(self, st, pending: bool) -> None:
        """`--check`: a history that does not match the files refuses as `run` does (exit 2); pending
        migrations exit 4 (MigrationsPending). Nothing was written either way."""
        from tablemigrate.history.status import check_history

        check_history(st)
        if pending:
            raise MigrationsPending("migrations are pending: `manage.py tablemigrate run` applies them "
                                    "(nothing was changed)")

    def _status_document(self, target, directory, st, with_drift: bool = True) -> dict[str, Any]:
        """The `--format json` parts of `show` and `run --check`: applied and pending migrations (in the
        order `run` applies them), the history's mismatches, drift (null while the history mismatches)."""
        from tablemigrate.history.loader import load_migration
        from tablemigrate.history.status import out_of_order
        from tablemigrate.project.ownership import ownership

        listed, first = self._django_pending(target, sql=False)
        early = set(out_of_order(st))
        modules = [{**migration_entry(load_migration(p)), "out_of_order": p in early} for p in st.pending]
        django = [migration_entry(name) for name, _sql in listed]
        matches = not (st.modified or st.missing or st.checkpoint_refusal)
        return {
            "owned_apps": sorted(ownership().owned),
            "applied": [{"name": a.name, "applied_at": str(a.applied_at),
                         "state": "edited" if a.name in st.modified else "missing" if a.name in st.missing
                         else "accepted" if a.name in st.accepted else "ok"} for a in st.applied],
            "pending": django[:first] + modules + django[first:],
            "history_matches": matches,
            "drift": self._drift(target, directory, st) if matches and with_drift else None,
        }

    def _django_pending(self, target, sql: bool) -> tuple[list[tuple[str, list[str]]], int]:
        """The pending Django migrations of the apps tablemigrate does not own, in `run`'s order, each with
        its SQL (`sql`), and how many of them `run` applies before its own modules."""
        from tablemigrate.project import djangoapps

        wrapper = djangoapps.wrapper_of(target.alias, target.conn)
        with contextlib.ExitStack() as stack:
            if wrapper is None:  # no database file yet: every Django migration is pending, and a
                # migration module that touches the alias's connection must not create the file
                wrapper = stack.enter_context(djangoapps.stand_in(target.alias))
            dplan = djangoapps.plan(wrapper)
            listed = djangoapps.collect_sql(dplan) if sql else [(n, []) for n in dplan.names]
        return listed, len(dplan.split()[0].steps)

    def _show_django(self, target, sql: bool) -> tuple[Callable[[], None], bool]:
        """Print the pending Django migrations of the apps tablemigrate does not own that `run` applies
        before its modules; returns what prints the rest (those that depend on an owned app), and whether
        any is pending."""
        listed, first = self._django_pending(target, sql)

        def write(entries: list[tuple[str, list[str]]]) -> None:
            for name, statements in entries:
                self.stdout.write(self.style.MIGRATE_HEADING(f"[ ] django: {name}"))
                self._write_sql(statements)

        write(listed[:first])
        return (lambda: write(listed[first:])), bool(listed)

    def handle_run(self, options: dict[str, Any]) -> None:
        from tablemigrate.run import runner
        from tablemigrate.run.dryrun import dry_run

        as_json = options["format"] == "json"
        if as_json:  # a question would land in the document: what needs an answer refuses, as --noinput
            options = {**options, "interactive": False}
        directory = self._existing_migrations_dir(options)  # before the database: a missing one is not created
        answered: list[str] = []
        target = self._target(options, directory, self._first_run_check(options, answered))
        if options["check"]:
            self._run_check(target, directory, as_json)
            return
        if options["dry_run"]:
            if as_json:
                raise CommandError("--format json is for `run` and `run --check`, not --dry-run", returncode=2)
            rehearsals = dry_run(target, directory, allow_destructive=options["allow_destructive"],
                                 confirm=self._would_ask(options))
            if not rehearsals:
                self._say("No migrations to apply.")
            for r in rehearsals:
                self.stdout.write(self.style.MIGRATE_HEADING(f"would apply {r.migration} ({r.seconds * 1000:.1f} ms)"))
                for sql, seconds in r.statements:
                    self.stdout.write(f"  {seconds * 1000:8.1f} ms  {sql}")
                # Every table's count at -v 2; by default only the tables whose count the migration changes.
                for t in sorted(set(r.rows_before) | set(r.rows_after)):
                    before, after = r.rows_before.get(t, "-"), r.rows_after.get(t, "-")
                    if before != after or self.verbosity >= 2:
                        mark = "" if before == after else "   (changed)"
                        self.stdout.write(f"  rows {t}: {before} -> {after}{mark}")
            return
        self._remember_history(target)
        confirm = self._confirm(options)
        if answered and confirm is not None:  # asked on the stand-in already: not the same question twice
            confirm = lambda text, ask=confirm: text == answered[0] or ask(text)  # noqa: E731
        announce = self._migrate_signals(target.alias, options) if conf.post_migrate() else None
        with self._timing() as took:
            applied = runner.run(target, directory, allow_destructive=options["allow_destructive"],
                                 confirm=confirm, take_backup=options["backup"],
                                 keep=conf.keep_backups(), lock_timeout=conf.busy_timeout(), announce=announce)
        if announce is not None:  # on every run, as `migrate`; the work first: a reader that went away only loses lines
            try:  # one runner's receivers at a time: two would insert the same content type or permission
                with target.lock(conf.busy_timeout()):
                    announce.pre([])  # nothing was applied: not sent yet
                    self._post_migrate(announce, applied)
            except LockTimeout as exc:
                raise CommandError(f"{_outcome(applied)}, but post_migrate was not sent: {exc}",
                                   returncode=exc.exit_code) from None
        if as_json:
            done = [migration_entry(m, took.seconds.get(m.name), applied=True) for m in applied]
            self._write_json(document("run", pending=[], applied=done, tables=sorted(
                {t for entry in done for t in entry["tables"] or ()}, key=str.lower)))
            return
        if not applied:
            self._say("No migrations to apply.")
        for m in applied:
            self._say(self.style.SUCCESS(f"Applied {m.name}{took(m.name)}"))

    def _run_check(self, target, directory, as_json: bool) -> None:
        """`run --check`, as Django's `migrate --check`: apply nothing; exit 4 when anything is pending
        (Django's migrations of the other apps included), 2 when the history does not match the files."""
        from tablemigrate.history.status import check_history, status

        st = status(target.conn, directory)
        if as_json:  # the document first, as `show --check`: a CI step reads why it failed (then exit 2 or 4)
            doc = self._status_document(target, directory, st, with_drift=False)
            self._write_json(document("run", check=True, pending=doc["pending"], applied=[], tables=[],
                                      history_matches=doc["history_matches"]))
        else:
            check_history(st)  # what `run` would refuse first
            doc = self._status_document(target, directory, st, with_drift=False)
            for entry in doc["pending"]:
                flags = f"  (destructive: {'; '.join(entry['destructive'])})" if entry["destructive"] else ""
                prefix = "django: " if entry["kind"] == "django" else ""
                self._say(f"[ ] {prefix}{entry['name']}{flags}")
            if not doc["pending"]:
                self._say("No migrations to apply.")
        self._check_pending(st, bool(doc["pending"]))

    def _first_run_check(self, options: dict[str, Any], answered: list[str]) -> Callable[[Any, list], None]:
        """What a first `run` (no database file yet) checks on the empty in-memory stand-in, which holds
        what the new file would: everything `run` refuses before applying (tablemigrate.run.preflight), and
        the confirmation it would ask, so that a refused first run leaves neither a database file nor a
        lock file. The question answered is kept in `answered` (the run on the new file asks it again)."""
        from tablemigrate.run.preflight import preflight, question, require_confirmation

        def check(stand_in, pending: list) -> None:
            reasons = preflight(stand_in, pending, "up", explain=False)  # the run on the file explains
            confirm = self._confirm(options)
            if reasons and not options["allow_destructive"] and confirm is not None:
                answered.append(question(reasons))
            require_confirmation(reasons, options["allow_destructive"], confirm)
        return check

    def _would_ask(self, options: dict[str, Any]) -> Callable[[str], bool] | None:
        """`run --dry-run` asks nothing: under --noinput what `run` would refuse unconfirmed refuses (None);
        otherwise it says what `run` will ask, and rehearses."""
        from tablemigrate.run.preflight import PROMPT

        if not options["interactive"]:
            return None

        def note(text: str) -> bool:
            self.stdout.write(self.style.WARNING("`run` will ask: " + text.removesuffix(PROMPT)))
            return True
        return note

    def _remember_history(self, target) -> None:
        """The applied migrations before a run/revert, to say what an interrupt left applied."""
        from tablemigrate.history.applied import applied

        self._history_conn = target.conn
        self._history_before = [a.name for a in applied(target.conn)]

    def _migrate_signals(self, alias: str, options: dict[str, Any]):
        from tablemigrate.project.djangoapps import MigrateSignals

        # Under --format json the receivers' lines ("Running post-migrate handlers ...", -v 2) go to
        # stderr: stdout holds only the document.
        out = OutputWrapper(self.stderr._out) if options.get("format") == "json" else self.stdout
        return MigrateSignals(alias, options["verbosity"], options["interactive"], out)

    def _post_migrate(self, announce, done: list, backward: bool = False) -> None:
        """What Django's `migrate` does after applying (also when there was nothing to apply): receivers
        create content types, permissions... Its `plan` holds the model renames of the modules in `done`
        (tablemigrate.run.contenttypes)."""
        from tablemigrate.run.contenttypes import post_migrate_plan

        state = _outcome(done)
        try:
            announce.post(post_migrate_plan(done, backward))
        except Exception as exc:
            if is_busy(exc):  # another connection's lock: exit 3 (retry), whatever Django wrapped it in
                raise CommandError(f"{state}, but a post_migrate receiver could not write: "
                                   f"another connection kept the database locked past the busy timeout "
                                   f"({type(exc).__name__}: {exc}); run again when it is free",
                                   returncode=DatabaseLocked.exit_code) from None
            raise CommandError(f"{state}, but a post_migrate receiver failed: "
                               f"{type(exc).__name__}: {exc}", returncode=1) from None

    def handle_revert(self, options: dict[str, Any]) -> None:
        from tablemigrate.run import runner

        directory = conf.existing_migrations_dir(options["database"])
        target = self._target(options)
        self._remember_history(target)
        with self._timing() as took:
            reverted = runner.revert(target, directory, to=options["to"],
                                     allow_destructive=options["allow_destructive"], confirm=self._confirm(options),
                                     take_backup=options["backup"], keep=conf.keep_backups(),
                                     lock_timeout=conf.busy_timeout())
        if reverted and conf.post_migrate():  # the work first: a reader that went away only loses lines
            self._post_migrate(self._migrate_signals(conf.sqlite_alias(options["database"]), options), reverted,
                               backward=True)
        for m in reverted:
            self._say(self.style.SUCCESS(f"Reverted {m.name}{took(m.name)}"))


def _outcome(done: list) -> str:
    return "the migrations were applied" if done else "there was nothing to apply"
