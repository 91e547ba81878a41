"""The questioner `generate` asks at a terminal: which tables were renamed, one-off values for rows.

Apart from `questioner.py` (which every command loads) so that only `generate` imports generate's pipeline.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from tablemigrate.generate.pipeline import Questioner

from .questioner import read_answer


class InteractiveQuestioner(Questioner):
    interactive = True

    def __init__(self, command: BaseCommand):
        self.command = command

    def _input(self, prompt: str) -> str | None:
        return read_answer(prompt)

    def confirm(self, question: str) -> bool:
        answer = self._input(f"{question} [y/N] ")
        return (answer or "").strip().lower() in ("y", "yes")

    def value(self, question: str) -> str | None:
        return self._input(f"{question}: ")

    def tell(self, message: str) -> None:
        self.command.stderr.write(message)
