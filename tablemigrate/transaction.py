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


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection, begin: Callable[[], None] | None = None) -> Iterator[None]:
    """`begin()` (default: BEGIN IMMEDIATE), the block, COMMIT; on any exception, from BEGIN's return
    on, ROLLBACK when a transaction is open."""
    try:
        if begin is None:
            conn.execute("BEGIN IMMEDIATE")
        else:
            begin()
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
