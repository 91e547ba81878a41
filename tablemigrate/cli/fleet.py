"""`run`, `show`, `revert` and `stats` with `--all-databases`: one command over every database.

Through tablemigrate.fleet: one line per database as it ends, one summary and one exit code."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from typing import Any

from django.core.management.base import CommandError

from .output import document
from .parts import CommandParts

#: The options that only mean something with --all-databases, with their defaults.
FLEET_OPTIONS = {"only": None, "jobs": 1, "canary": 0, "max_failures": None, "keep_going": False}
READ_ONLY = ("show", "stats")


def add_fleet_options(parser: Any) -> None:
    """--all-databases and what goes with it, for `run`, `show`, `revert` and `stats`."""
    parser.add_argument("--all-databases", action="store_true",
                        help="every SQLite database of the project: each file alias in DATABASES, and the files "
                             "TABLEMIGRATE_FLEET names for an alias (migrated as that alias); each database as "
                             "the command alone would, never prompting; one line per database and a summary. "
                             "Refused before any database is opened (exit 2): a TABLEMIGRATE_FLEET glob that "
                             "matches no file, a file two fleet aliases name, an alias without a history. Never "
                             "members: an alias's own NAME, side files (-wal, -journal, locks), backups")
    parser.add_argument("--only", metavar="GLOB", help="with --all-databases: only the databases whose name "
                        "matches (an alias, or ALIAS:PATH for a TABLEMIGRATE_FLEET file)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="with --all-databases: N databases at a time in worker processes (0: one per CPU; "
                             "default 1: one at a time, in this process)")
    parser.add_argument("--canary", type=int, default=0, metavar="K",
                        help="with --all-databases: the first K databases first; if any of them does not end as "
                             "asked, the others are not started")
    stop = parser.add_mutually_exclusive_group()
    stop.add_argument("--max-failures", type=int, metavar="N",
                      help="with --all-databases: start no database after N did not end as asked (default 1 for "
                           "run and revert; show and stats go on)")
    stop.add_argument("--keep-going", action="store_true",
                      help="with --all-databases: go on whatever fails (each database is still safe alone; a "
                           "worker that dies is replaced)")


class FleetCommands(CommandParts):
    """The --all-databases handler, mixed into the Command."""

    @staticmethod
    def single_database(options: dict[str, Any]) -> None:
        """Without --all-databases, its companions are a mistake: refused (exit 2), not ignored."""
        given = [name for name, default in FLEET_OPTIONS.items() if options.get(name, default) != default]
        if given:
            raise CommandError(f"--{given[0].replace('_', '-')} works with --all-databases only", returncode=2)

    @staticmethod
    @contextlib.contextmanager
    def fleet_file_as_its_alias(options: dict[str, Any]) -> Iterator[None]:
        """`--database ALIAS` where ALIAS stands for a TABLEMIGRATE_FLEET file (registered at run time by the
        application, without a history of its own): the command works on the fleet alias pointed at that
        file, as `--all-databases` would (tablemigrate.fleet.members.member_for)."""
        from django.conf import settings

        if not getattr(settings, "TABLEMIGRATE_FLEET", None):  # no fleet: nothing to import at every start
            yield
            return
        from tablemigrate.fleet.members import as_its_fleet_alias

        with as_its_fleet_alias(options["database"]) as alias:
            options["database"] = alias
            yield

    def handle_fleet(self, options: dict[str, Any]) -> None:
        from tablemigrate.fleet.dispatch import STATUSES, Fleet
        from tablemigrate.fleet.members import members

        action = options["action"]
        as_json = options.get("format") == "json"
        if action == "revert" and not options["to"]:  # each database's own last one is not the same migration
            raise CommandError("revert --all-databases needs --to NAME: every database goes back to the same point "
                               "(without it each would revert its own last migration, which after a partial "
                               "rollout is not the same one); --only picks the databases of one history",
                               returncode=2)
        found = members(options["only"])
        if not found:
            raise CommandError("no database to work on: no SQLite file alias in DATABASES and no TABLEMIGRATE_FLEET "
                               "file" + (f" matches --only {options['only']!r}" if options["only"] else ""), returncode=2)
        for name in ("jobs", "canary"):
            if options[name] < 0:
                raise CommandError(f"--{name} must be 0 or more", returncode=2)
        if options["max_failures"] is not None and options["max_failures"] < 1:
            raise CommandError("--max-failures must be 1 or more", returncode=2)
        limit = None if options["keep_going"] or action in READ_ONLY else (options["max_failures"] or 1)
        fleet = Fleet(action, self._member_args(options), jobs=options["jobs"] or os.cpu_count() or 1,
                      canary=options["canary"], max_failures=limit)
        results = fleet.run(found, lambda r: None if as_json else self._report_member(r, action))
        counts = {s: n for s in STATUSES if (n := sum(r.status == s for r in results))}
        code, why = self._fleet_exit(results, fleet.stopped_by, options)
        if as_json:
            self._write_json(document(action, fleet=True, exit_code=code, counts=counts, databases=[
                {"name": r.member.name, "alias": r.member.alias, "path": r.member.path, "status": r.status,
                 "exit_code": r.exit_code, "line": r.line or None, "seconds": round(r.seconds, 6),
                 "document": r.document} for r in results]))
        else:
            self._say(f"{len(results)} database{'s' * (len(results) != 1)}: "
                      + ", ".join(f"{n} {_LABELS.get(s, s)}" for s, n in counts.items()))
        if code:
            raise CommandError(why, returncode=code)

    @staticmethod
    def _member_args(options: dict[str, Any]) -> list[str]:
        """The single command each database runs: never prompting, its document parsed for its status."""
        action = options["action"]
        # `revert` says what it reverted at -v 1 only: its status is read from that ("current" when nothing).
        args = ["-v", str(max(options["verbosity"], 1) if action == "revert" else options["verbosity"])]
        if action in ("run", "revert"):
            args.append("--noinput")
            args += ["--allow-destructive"] if options["allow_destructive"] else []
            args += [] if options["backup"] else ["--no-backup"]
        if action == "revert" and options["to"]:
            args += ["--to", options["to"]]
        if action == "run":
            args += ["--dry-run"] if options["dry_run"] else ["--format", "json"]
            args += ["--check"] if options["check"] else []
        if action == "show":
            args += ["--format", "json"] + (["--check"] if options["check"] else [])
        return args

    def _report_member(self, result: Any, action: str) -> None:
        """One line per database as it ends (at -v 0 only those that did not end as asked)."""
        if result.done and self.verbosity == 0:
            return
        doc = result.document or {}
        detail = ""
        if result.status == "migrated":
            detail = ", ".join(m["name"] for m in doc.get("applied", []))
        elif result.status == "pending":
            detail = ", ".join(m["name"] for m in doc.get("pending", []))
        elif not result.done:
            detail = result.line
        took = f" ({result.seconds * 1000:.0f} ms)" if action in ("run", "revert") else ""
        line = f"{result.status:<11} {result.member.name}" + (f": {detail}" if detail else "") + took
        style = self.style.SUCCESS if result.status in ("migrated", "reverted") else (
            (lambda text: text) if result.done else self.style.ERROR)
        self.stdout.write(style(line))
        if action == "stats" or (result.output.strip() and self.verbosity >= 2):
            for text in result.output.rstrip().splitlines():
                self.stdout.write("    " + text)

    @staticmethod
    def _fleet_exit(results: list[Any], stopped_by: str | None, options: dict[str, Any]) -> tuple[int, str]:
        """The fleet's exit code and its one line: 128 + the signal after a stop; 0 when every database
        ended as asked; 4 (--check) when the only difference is pending migrations; 6 when every one that
        did not is a LiteFS replica; 5 otherwise."""
        check = options.get("check")
        left = [r for r in results if not r.done or (check and r.status == "pending")]
        named = "; ".join(f"{r.member.name} ({r.status}{': ' + r.line if r.line else ''})" for r in left[:3])
        more = f"; and {len(left) - 3} more (the summary above lists them)" if len(left) > 3 else ""
        if stopped_by is not None:
            return 128 + signal.Signals[stopped_by], (f"interrupted by {stopped_by}: each database is either done "
                                                      f"or as it was; {len(left)} did not end as asked: {named}{more}")
        if not left:
            return 0, ""
        statuses = {r.status for r in left}
        if statuses == {"pending"}:
            return 4, f"migrations are pending on {len(left)} of {len(results)} databases: {named}{more}"
        if statuses == {"replica"}:
            return 6, f"{len(left)} of {len(results)} databases are LiteFS replicas here: {named}{more}"
        return 5, f"{len(left)} of {len(results)} databases did not end as asked: {named}{more}"


_LABELS = {"current": "already current"}  # "failed" says no more: its line says what state each is in
