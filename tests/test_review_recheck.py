"""Review probe: counted refusals (StillEmpty / Recheck). Expected to FAIL on main."""

from __future__ import annotations

import sqlite3

from tablemigrate.errors import TablemigrateError
from tablemigrate.run import runner
from tablemigrate.run.preflight import StillEmpty

from .helpers import module

CREATE = "table = 't'\nup = ['CREATE TABLE \"t\" (\"id\" integer PRIMARY KEY, \"c\" text)']\ndown = ['DROP TABLE \"t\"']\n"
#: `atomic = False`: each statement in autocommit. The table is empty when the data check counts it, so the
#: flag is not asked about and StillEmpty is inserted as the first step, which then runs in a transaction
#: of its own: a write between it and the DROP is lost with exit 0.
DROP = ("table = 't'\natomic = False\ndestructive = ['drops t.c']\n"
        "up = ['ALTER TABLE \"t\" DROP COLUMN \"c\"']\ndown = None\n")


def test_the_recheck_of_a_non_atomic_module_is_not_in_the_transaction_of_its_steps(project, monkeypatch):
    target, d = project
    module(d, "0001_create", CREATE)
    runner.run(target, d, take_backup=False, django=False)
    module(d, "0002_drop", DROP)
    real = StillEmpty.apply
    called = []

    def then_the_application_writes(self, conn):
        real(self, conn)
        called.append(conn.in_transaction)
        other = sqlite3.connect(target.path, isolation_level=None)
        other.execute("INSERT INTO t (id, c) VALUES (1, 'precious')")  # right after the recheck
        other.close()

    monkeypatch.setattr(StillEmpty, "apply", then_the_application_writes)
    try:
        runner.run(target, d, take_backup=False, django=False)  # --noinput, no --allow-destructive
    except TablemigrateError:
        pass  # refused: what should happen (the value must not be dropped unconfirmed)
    assert called == [False]  # the recheck ran, outside any transaction
    columns = [c[1] for c in target.conn.execute("PRAGMA table_info(t)")]
    assert "c" in columns, "the value 'precious' was dropped without a confirmation, and the run exited 0"
