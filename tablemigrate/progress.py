"""A one-line progress display for long work (pages of a backup, rows of a rebuild).

The library reports through `current()`, which is a disabled reporter unless a caller installed one
with `reporting(...)`. The management command installs an enabled one only when stderr is a terminal
and prompts are allowed; otherwise nothing but log lines is written.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TextIO


class Progress:
    """Redraws one status line (at most ten times a second) on `stream`; does nothing when disabled."""

    def __init__(self, stream: TextIO | None = None, enabled: bool = False, interval: float = 0.1):
        self.stream = stream
        self.enabled = enabled and stream is not None
        self.interval = interval
        self._last = 0.0
        self._width = 0

    def show(self, text: str, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        assert self.stream is not None
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def clear(self) -> None:
        """Erase the status line (before a log line, and when the work is done)."""
        if self.enabled and self._width:
            assert self.stream is not None
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0


_current: ContextVar[Progress] = ContextVar("tablemigrate_progress", default=Progress())


def current() -> Progress:
    return _current.get()


@contextlib.contextmanager
def reporting(progress: Progress) -> Iterator[Progress]:
    token = _current.set(progress)
    try:
        yield progress
    finally:
        progress.clear()
        _current.reset(token)
