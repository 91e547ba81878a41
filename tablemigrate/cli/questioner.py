"""Questions to a human at a terminal: renames and one-off values for `generate`, confirmation of data
loss for `run`/`revert` (asked with the runner lock released)."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand

from tablemigrate.generate.pipeline import Questioner

from .base import CommandState


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
        return self._input(f"{question}: ")

    def tell(self, message: str) -> None:
        self.command.stderr.write(message)


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


class Confirming(CommandState):
    """The confirmation callback `run`/`revert` get: None under --noinput (refuse what needs a yes)."""

    def _confirm(self, options: dict[str, Any]):
        if not options["interactive"]:
            return None

        def ask(text: str) -> bool:
            return (_ask(text + ": ") or "").strip().lower() == "yes"
        return ask

    # show / run / revert ----------------------------------------------------------------------
