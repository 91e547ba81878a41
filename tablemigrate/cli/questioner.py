"""Questions to a human at a terminal: the confirmation `run` and `revert` ask, and the answers read.

`run`/`revert` confirm data loss with the runner lock released; `generate`'s questions (renames, one-off
values) are `interactive.py`'s.
"""

from __future__ import annotations

import sys
from typing import Any

from .base import CommandState


def read_answer(prompt: str) -> str | None:
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
            return (read_answer(text + ": ") or "").strip().lower() == "yes"
        return ask

    # show / run / revert ----------------------------------------------------------------------
