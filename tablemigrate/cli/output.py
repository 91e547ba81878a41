"""Everything the command prints besides errors: log lines, progress, status lines, SQL.

The one place that prints SQL (`_write_sql`) is used by `show`, `generate --dry-run` and
`baseline --dry-run`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
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


class Output(CommandState):
    """Printing, mixed into the Command."""

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
    def _timing(self) -> Iterator[Callable[[str], str]]:
        """Each migration's duration, from the post_migration signal, for its one line on stdout (the
        log record "migration X applied (N ms)" goes to the project's logging, not to our stderr)."""
        from tablemigrate import signals

        seconds: dict[str, float] = {}

        def receiver(sender: object, name: str, duration: float, **kwargs: Any) -> None:  # noqa: ARG001 (a signal receiver)
            seconds[name] = duration

        uid = f"tablemigrate-command-{id(self)}"
        signals.post_migration.connect(receiver, weak=False, dispatch_uid=uid)
        try:
            yield lambda name: f" ({seconds[name] * 1000:.0f} ms)" if name in seconds else ""
        finally:
            signals.post_migration.disconnect(dispatch_uid=uid)
