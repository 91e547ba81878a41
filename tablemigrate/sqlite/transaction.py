"""One write transaction, with no window between BEGIN and the code that rolls it back.

A signal the command turns into an exception (SIGTERM, Ctrl-C) can land between any two bytecodes,
right after `BEGIN IMMEDIATE` returns included: a BEGIN outside the `try` that rolls back leaked an open
transaction, after which the restore failed ("still inside a transaction") and migrations the run had
committed stayed applied (issue 22). Every write transaction of the package opens here; the rollback
asks SQLite whether a transaction is open instead of assuming it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator


class Ending:
    """What `write_transaction` gives its block: how the transaction ends when the block ends normally."""

    def __init__(self) -> None:
        self.commit = True

    def roll_back(self) -> None:
        """End in ROLLBACK instead of COMMIT (the block found nothing to do)."""
        self.commit = False


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection, begin: Callable[[], None] | None = None) -> Iterator[Ending]:
    """`begin()` (default: BEGIN IMMEDIATE), the block, COMMIT (ROLLBACK if the block called
    `roll_back()` on what it was given); on any exception, from BEGIN's return on, ROLLBACK when a
    transaction is open."""
    ending = Ending()
    try:
        if begin is None:
            conn.execute("BEGIN IMMEDIATE")
        else:
            begin()
        yield ending
        conn.execute("COMMIT" if ending.commit else "ROLLBACK")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
