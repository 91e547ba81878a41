"""What every part of the command shares: Django's BaseCommand and the state `handle` sets."""

from __future__ import annotations

import sqlite3

from django.core.management.base import BaseCommand


class CommandState(BaseCommand):
    """The attributes `Command.handle` sets before dispatching (declared once, for every part)."""

    verbosity: int
    whole_process: bool
    _database: str
    _history_before: list[str] | None
    _history_conn: sqlite3.Connection
