"""Issue 22, property: whatever the application writes while an online rebuild copies its table (every
conflict clause, REPLACE, UPSERT, transactions that an OR ROLLBACK ends), the rebuilt table holds
exactly the rows of a reference database that received the same statements without any rebuild, and
no statement fails that does not fail on the reference."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tablemigrate.run.apply import apply_migration

from .test_online import Application, database, module, run_both, small_chunks  # noqa: F401 (a fixture)

EXAMPLES = int(os.environ.get("TABLEMIGRATE_EXAMPLES", "15"))

# A few ids and codes, so that statements collide often: early rows (copied by the first chunks), rows
# near the end (copied last, or at the swap), rows the application inserts; codes in two cases (the
# extra UNIQUE index on lower(code) makes 'C5' collide with 'c5').
IDS = st.sampled_from([1, 2, 3, 40, 41, 150, 151, 2990, 2999, 3000, 3001, 3002, 3003, 3010])
CODES = st.sampled_from(["c0", "c1", "C2", "c39", "c40", "c150", "C2989", "c2998", "n1", "n2", "N1"])
OWNERS = st.integers(1, 10)
AMOUNTS = st.integers(0, 9)
CLAUSE = st.sampled_from(["", "OR ROLLBACK ", "OR ABORT ", "OR FAIL ", "OR IGNORE ", "OR REPLACE "])
UPSERT = st.sampled_from([
    " ON CONFLICT DO NOTHING", " ON CONFLICT (code) DO NOTHING", " ON CONFLICT (id) DO NOTHING",
    " ON CONFLICT (code) DO UPDATE SET amount = excluded.amount", " ON CONFLICT DO UPDATE SET amount = 7",
    " ON CONFLICT (id) DO UPDATE SET code = excluded.code, owner_id = excluded.owner_id",
    " ON CONFLICT (code) DO UPDATE SET id = excluded.id"])


TEMPLATES = [
    "INSERT {clause}INTO item (owner_id, code, amount) VALUES ({owner}, '{code}', {amount})",
    "INSERT {clause}INTO item (id, owner_id, code, amount) VALUES ({n}, {owner}, '{code}', {amount})",
    "REPLACE INTO item (owner_id, code, amount) VALUES ({owner}, '{code}', {amount})",
    "UPDATE {clause}item SET code = '{code}' WHERE id = {n}",
    "UPDATE {clause}item SET amount = {amount}, owner_id = {owner} WHERE id = {n}",
    "UPDATE {clause}item SET id = {m} WHERE id = {n}",
    # several rows: OR FAIL keeps the ones before the conflict
    "UPDATE {clause}item SET code = '{code}' || (id % 3) WHERE id BETWEEN {n} AND {n} + 4",
    "DELETE FROM item WHERE id = {n}",
    "INSERT INTO item (id, owner_id, code, amount) VALUES ({n}, {owner}, '{code}', {amount}){upsert}",
]


@st.composite
def statements(draw) -> str:
    return draw(st.sampled_from(TEMPLATES)).format(clause=draw(CLAUSE), n=draw(IDS), m=draw(IDS), code=draw(CODES),
                                                   owner=draw(OWNERS), amount=draw(AMOUNTS), upsert=draw(UPSERT))


@pytest.mark.slow
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(turns=st.lists(st.lists(statements(), max_size=4), min_size=1, max_size=14))
def test_the_rebuilt_table_is_the_reference_whatever_the_application_writes_during_the_copy(small_chunks, turns):
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as monkeypatch:
        path = Path(tmp) / "db.sqlite3"
        conn = database(path)
        app = Application(path, monkeypatch)
        for c in (conn, app.reference):
            c.execute('CREATE UNIQUE INDEX "item_lower_code" ON "item" (lower("code"))')
        failures: list = []

        def write() -> None:  # one transaction a turn, between the rebuild's transactions, until the swap
            app.turn += 1
            if app.turn <= len(turns) and "note" in {r[1] for r in app.conn.execute("PRAGMA table_info(item)")}:
                run_both(app, turns[app.turn - 1], failures)
        app.write = write  # type: ignore[method-assign]
        assert apply_migration(conn, module(), "up", online=True)
        assert failures == []  # no statement failed that does not fail on the reference
        assert conn.execute("SELECT id, owner_id, code, amount FROM item ORDER BY id").fetchall() == app.expected()
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        app.conn.close()
        app.reference.close()
        conn.close()
