"""`generate`, `baseline`, `inspect` and `stats`."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError

from tablemigrate import conf
from tablemigrate.history.loader import migration_files
from tablemigrate.project.ownership import ownership
from tablemigrate.sqlite.introspect import introspect

from .output import document
from .parts import CommandParts


class SchemaCommands(CommandParts):
    """The handlers, mixed into the Command."""

    def handle_generate(self, options: dict[str, Any]) -> None:
        """`generate` for `--database`, or, with a history per alias (TABLEMIGRATE_MIGRATIONS_DIR a dict) and no
        `--database`, for every alias the dict names: `generate --check` in CI must see every alias's models."""
        aliases = conf.history_aliases() if not options.get("database_given") else []
        if len(aliases) < 2:  # one history: the dict's only alias, or --database (default: `default`)
            self._generate_one({**options, "database": aliases[0]} if aliases else options)
            return
        if options["empty"] or options["app"] or options["table"] or options["rename"] or options["default"]:
            raise CommandError("each alias has its own history: say which with --database ALIAS "
                               f"({', '.join(aliases)})", returncode=2)
        failures: list[str] = []
        docs: dict[str, Any] = {}
        for alias in aliases:
            if options["format"] != "json" and self.verbosity > 0:
                self.stdout.write(self.style.MIGRATE_HEADING(f"database {alias!r} ({conf.migrations_dir(alias)}):"))
            try:
                self._generate_one({**options, "database": alias}, into=docs)
            except CommandError as exc:
                if exc.returncode != 1 or not options["check"]:
                    raise
                failures.append(f"{alias}: {exc}")
        if options["format"] == "json":
            reasons = sorted({r for doc in docs.values() if doc for r in doc["reasons"]})
            self._write_json(document("generate", check=True, databases=docs, ok=not failures, reasons=reasons))
        if failures:
            raise CommandError("; ".join(failures), returncode=1)

    def _generate_one(self, options: dict[str, Any], into: dict[str, Any] | None = None) -> None:
        """`generate` for one alias; under --format json its document is written, or put `into` a dict by alias."""
        from tablemigrate.generate.pipeline import Questioner, generate
        from tablemigrate.project.build import foreign_tables, managed_models  # tests patch build.managed_models
        from tablemigrate.sqlite.diff import Renames

        from .interactive import InteractiveQuestioner

        alias = conf.sqlite_alias(options["database"])
        if options["empty"] or options["app"] or options["table"]:
            self._generate_empty(alias, options)
            return
        try:
            renames = Renames.parse(options["rename"])
        except ValueError as exc:
            raise CommandError(str(exc), returncode=2) from None
        as_json = options["format"] == "json"
        if as_json and not options["check"]:
            raise CommandError("--format json is for `generate --check`", returncode=2)
        # Under --format json nothing is asked: a question would land in the document.
        questioner = InteractiveQuestioner(self) if options["interactive"] and not as_json else Questioner()
        if options["default"]:
            from tablemigrate.generate.oneoff import given_values

            questioner.given = given_values(options["default"], managed_models(alias))
        write = not (options["dry_run"] or options["check"])
        adopt = write and not migration_files(conf.migrations_dir(alias)) and self._needs_baseline(options)
        if adopt:
            raise CommandError(f"{adopt} already has tables of your models and no tablemigrate history: adopt it "
                               "with `manage.py tablemigrate baseline` (modules written now would create tables "
                               "that exist there)", returncode=2)
        result = generate(conf.migrations_dir(alias), managed_models(alias), label=options["name"],
                          renames=renames, questioner=questioner, write=write, foreign=foreign_tables(alias))
        if as_json:  # what --check fails on (exit 1), named by the keys that hold it: the document says why
            reasons = [key for key, fails in (("changes", result.changed), ("stale_schema_sql", result.stale_snapshot))
                       if fails]
            doc = document("generate", check=True, changes=[
                {"name": m.name, "kind": m.plan.kind, "tables": [t for t in (m.plan.old_table, m.plan.table) if t],
                 "summary": list(m.plan.summary),
                 "destructive": list(m.plan.destructive), "warnings": list(m.warnings)} for m in result.modules],
                tables=sorted({t for m in result.modules for t in (m.plan.old_table, m.plan.table) if t},
                              key=str.lower),
                stale_schema_sql=result.stale_snapshot, ok=not reasons, reasons=reasons)
            if into is None:
                self._write_json(doc)
            else:
                into[alias] = doc
        if not result.changed:
            if result.stale_snapshot and options["check"]:
                raise CommandError(f"{result.stale_snapshot}: run `manage.py tablemigrate generate` to rewrite "
                                   "it, and commit it with the modules", returncode=1)
            stale = f"; {'rewrote' if write else 'generate would rewrite'} schema.sql: {result.stale_snapshot}"
            if not as_json:
                self._say("No changes detected" + (stale if result.stale_snapshot else ""))
            return
        if options["check"]:
            if self.verbosity > 0 and not as_json:
                self._print_plans(result, sql=False, written=False)
            raise CommandError(
                f"the models differ from the migration history in {len(result.modules)} table(s): "
                "run `manage.py tablemigrate generate`", returncode=1)
        self._print_plans(result, sql=options["dry_run"], written=write)

    def _generate_empty(self, alias: str, options: dict[str, Any]) -> None:
        """`generate --empty NAME [APP | --table TABLE]` (tablemigrate.generate.empty)."""
        from tablemigrate.generate.empty import empty_module
        from tablemigrate.project.build import managed_models

        if not options["empty"]:
            raise CommandError("an app label or --table is given only with --empty", returncode=2)
        if options["check"] or options["rename"]:
            raise CommandError("--empty writes a data module; it takes neither --check nor --rename", returncode=2)
        made = empty_module(conf.migrations_dir(alias), managed_models(alias), label=options["name"], app=options["app"],
                            table=options["table"], write=not options["dry_run"])
        if options["dry_run"]:
            self.stdout.write(f"Would create {made.path}:\n{made.text}")
            return
        note = "" if made.snapshot_updated else " (schema.sql was stale already: run `manage.py tablemigrate generate`)"
        self._say(self.style.SUCCESS(f"Created {made.path}: fill in its forwards() and backwards(){note}"))

    def handle_baseline(self, options: dict[str, Any]) -> None:
        from tablemigrate.generate.baseline import baseline
        from tablemigrate.project.build import foreign_tables, managed_models  # tests patch build.managed_models

        target = self._target(options)
        if migration_files(conf.migrations_dir(target.alias)):
            self._adopt(target, options)
            return
        result, left_alone = baseline(target, conf.migrations_dir(target.alias), managed_models(target.alias),
                                      lock_timeout=conf.busy_timeout(), write=not options["dry_run"],
                                      foreign=foreign_tables(target.alias))
        self._print_plans(result, sql=options["dry_run"], written=not options["dry_run"])
        for line in left_alone:
            self._say(line[0].upper() + line[1:])
        if not options["dry_run"]:
            self._say(self.style.SUCCESS(
                f"Recorded {len(result.modules)} migrations as applied; `generate` now works from this schema."))

    def handle_squash(self, options: dict[str, Any]) -> None:
        from tablemigrate.generate.squash import squash

        directory = conf.existing_migrations_dir(conf.sqlite_alias(options["database"]))
        done = squash(directory, to=options["to"], write=not options["dry_run"])
        if options["dry_run"]:
            self.stdout.write(f"{done.name}.py (would replace {len(done.replaced)} modules):")
            self.stdout.write(done.text)
        for note in done.notes:
            self._say(self.style.WARNING("Note: " + note))
        if not options["dry_run"]:
            self._say(self.style.SUCCESS(
                f"Wrote {done.name}: it replaces {len(done.replaced)} modules ({done.replaced[0].name} ... "
                f"{done.replaced[-1].name}), moved to {done.archive}. Commit both; each database records the "
                "checkpoint at its next `run`."))

    def _adopt(self, target: Any, options: dict[str, Any]) -> None:
        """`baseline` when the modules exist: adopt this database from them (tablemigrate.run.adopt)."""
        from tablemigrate.project.build import managed_models  # tests patch build.managed_models
        from tablemigrate.run.adopt import adopt

        done = adopt(target, conf.migrations_dir(target.alias), managed_models(target.alias), ownership().owned,
                     lock_timeout=conf.busy_timeout(), write=not options["dry_run"])
        if done.nothing:
            self._say(done.nothing[0].upper() + done.nothing[1:] + ".")
            return
        names = [m.name for m in done.recorded]
        if options["dry_run"]:
            self.stdout.write(f"This database is what the modules up to the adoption point ({names[-1]}) build; "
                              f"baseline would record these {len(names)} as applied:")
            for name in names:
                self.stdout.write(f"  {name}")
            return
        self._say(self.style.SUCCESS(
            f"Adopted: the tables are what the modules up to the adoption point ({names[-1]}) build; recorded "
            f"{len(names)} migrations as applied. `manage.py tablemigrate run` applies the later ones."))

    def handle_inspect(self, options: dict[str, Any]) -> None:
        from .report import describe

        target = self._target(options)
        lines = describe(introspect(target.conn), options["table"])
        if not lines and options["table"]:
            raise CommandError(f"no table {options['table']!r} in the database", returncode=2)
        # The schema is read from the first page alone; a damaged table would go unnoticed, so the
        # table shown (or, without one, the whole file) is checked before it is presented as the truth.
        self._quick_check(target, options["table"])
        self.stdout.write("\n".join(lines) if lines else "The database has no tables.")

    def handle_stats(self, options: dict[str, Any]) -> None:
        from tablemigrate.history.status import status

        from .report import aligned, database_facts, table_stats

        target = self._target(options)
        facts = database_facts(target.conn)
        self.stdout.write(f"database  {target.path or ':memory:'}  {facts['size']:,} bytes, page size "
                          f"{facts['page_size']}, {facts['free_pages']} free pages, journal {facts['journal_mode']}, "
                          f"SQLite {facts['sqlite_version']}")
        rows = [[r.name, f"{r.rows:,}", f"{r.bytes:,} B" if r.bytes is not None else "? B"]
                for r in table_stats(target.conn)]
        for line in aligned(["table", "rows", "size"], rows, right={1, 2}):
            self.stdout.write("  " + line)
        st = status(target.conn, conf.existing_migrations_dir(target.alias))
        last = f"{st.applied[-1].name} at {st.applied[-1].applied_at}" if st.applied else "none"
        self.stdout.write(f"migrations  {len(st.applied)} applied, {len(st.pending)} pending; last applied: {last}")
        for line in ownership().describe():
            self.stdout.write(line)
