"""Everything the command prints besides errors: log lines, progress, status lines, SQL.

The one place that prints SQL (`_write_sql`) is used by `show`, `generate --dry-run` and
`baseline --dry-run`.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from django.core.management.base import BaseCommand

from tablemigrate import progress
from tablemigrate.run.apply import statements_of

from .base import CommandState

if TYPE_CHECKING:  # an annotation only: `run` and `show` never import generate's pipeline (~70 ms)
    from tablemigrate.generate.pipeline import GenerateResult


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
def reporting(command: BaseCommand, options: dict[str, Any]) -> Iterator[None]:
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


@contextlib.contextmanager
def document_only(command: BaseCommand, options: dict[str, Any]) -> Iterator[None]:
    """Under `--format json`, stdout holds only the document: what anything else prints with print()
    (Django's contenttypes and auth post_migrate receivers, a data step) goes to the command's stderr.
    The document is written through `command.stdout`, which keeps the stream it was made with."""
    if options.get("format") != "json":
        yield
        return
    with contextlib.redirect_stdout(command.stderr._out):
        yield


#: The version of the `--format json` document (`show`, `run`, `generate --check`). Keys are only ever
#: added; a removed or retyped key makes a new version.
JSON_FORMAT = 1


def document(command: str, **parts: Any) -> dict[str, Any]:
    """The `--format json` document of `command`: `format`, `command`, then `parts` (README)."""
    return {"format": JSON_FORMAT, "command": command, **parts}


def migration_entry(migration: Any, seconds: float | None = None, applied: bool = False) -> dict[str, Any]:
    """One migration in a `--format json` document: a tablemigrate module (its tables, its `destructive`
    flags) or a Django migration of an app tablemigrate does not own (its name only: its tables and flags
    are not known, null). `applied`: with `seconds`, how long it took (null when not measured)."""
    took = {"seconds": None if seconds is None else round(seconds, 6)} if applied else {}
    if not hasattr(migration, "up"):
        return {"name": getattr(migration, "name", migration), "kind": "django", "tables": None,
                "destructive": None, **took}
    shapes = [s["table"] for s in (migration.before, migration.after) if s]
    steps = [getattr(step, "table", None) for step in migration.up]
    tables = [t for t in [migration.table, *shapes, *steps] if isinstance(t, str)]
    return {"name": migration.name, "kind": "tablemigrate", "tables": sorted(set(tables), key=str.lower),
            "destructive": list(migration.destructive), **took}


class Durations:
    """Each migration's duration in seconds (`seconds`, by name); called, its " (N ms)" for a line."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def __call__(self, name: str) -> str:
        return f" ({self.seconds[name] * 1000:.0f} ms)" if name in self.seconds else ""


class Output(CommandState):
    """Printing, mixed into the Command."""

    def _write_json(self, doc: dict[str, Any]) -> None:
        """A `--format json` document: the whole of stdout (log lines and progress go to stderr)."""
        self.stdout.write(json.dumps(doc, indent=2, sort_keys=False))

    def _say(self, text: str) -> None:
        """A success or status line: silent at -v 0 (only errors are printed then)."""
        if self.verbosity > 0:
            self.stdout.write(text)

    def _write_sql(self, statements: Iterable[str], indent: str = "      ") -> None:
        """The one place that prints SQL: each statement (keywords upper-cased), comments as they are."""
        import sqlparse

        for statement in statements:
            if statement.startswith("--"):
                self.stdout.write(indent + statement.replace("\n", "\n" + indent))
                continue
            formatted = sqlparse.format(statement, keyword_case="upper", strip_whitespace=False)
            self.stdout.write(indent + formatted.replace("\n", "\n" + indent).rstrip(";") + ";")

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
            for line in module.warnings:
                self.stdout.write(self.style.WARNING(f"  ! warning: {line}"))
            if sql:
                self._write_sql((s for step in module.plan.up for s in statements_of(step)), indent="    ")

    @contextlib.contextmanager
    def _timing(self) -> Iterator[Durations]:
        """Each migration's duration, from the post_migration signal, for its one line on stdout (the
        log record "migration X applied (N ms)" goes to the project's logging, not to our stderr)."""
        from tablemigrate import signals

        took = Durations()

        def receiver(sender: object, name: str, duration: float, **kwargs: Any) -> None:  # noqa: ARG001 (a signal receiver)
            took.seconds[name] = duration

        uid = f"tablemigrate-command-{id(self)}"
        signals.post_migration.connect(receiver, weak=False, dispatch_uid=uid)
        try:
            yield took
        finally:
            signals.post_migration.disconnect(dispatch_uid=uid)
