"""The round-trip property: any model change, generated and applied to a database holding rows,
leaves exactly the schema built from the new models, keeps every preserved value, is reported clean by
a second generate, and its `down`s restore the old schema."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tablemigrate.errors import MigrationFailed
from tablemigrate.generate.pipeline import generate, models_schema
from tablemigrate.history.loader import load_migrations
from tablemigrate.project.build import private_database, raw
from tablemigrate.run.apply import apply_migration
from tablemigrate.sqlite.diff import Renames
from tablemigrate.sqlite.introspect import introspect
from tablemigrate.sqlite.schema import affinity

from .helpers import AutoValue, apply_new, dump_rows, fill
from .modelgen import ProjectSpec, build_models
from .strategies import changes, projects

EXAMPLES = int(os.environ.get("TABLEMIGRATE_EXAMPLES", "40"))
AFFINITY = {"char": "TEXT", "text": "TEXT", "email": "TEXT", "int": "INTEGER", "bigint": "INTEGER",
            "smallint": "INTEGER"}


def assert_rows_preserved(before, after, old: ProjectSpec, new: ProjectSpec, renames: Renames) -> None:
    for key, old_t in old.tables.items():
        new_t = new.tables.get(key)
        if new_t is None:
            continue
        old_rows, new_rows = before[old_t.db_table], after[new_t.db_table]
        assert set(new_rows) == set(old_rows), f"rows of {old_t.db_table} lost or added"
        col_map = renames.columns.get(new_t.db_table, {})
        for f_old in old_t.fields:
            new_col = col_map.get(f_old.column, f_old.column)
            f_new = next((f for f in new_t.fields if f.column == new_col), None)
            if f_new is None:
                continue
            same = f_old.kind == f_new.kind or AFFINITY.get(f_old.kind, f_old.kind) == AFFINITY.get(f_new.kind)
            if not same:
                continue
            for rid, row in old_rows.items():
                value = row[f_old.column.lower()]
                if value is None and not f_new.null:
                    continue  # became NOT NULL: NULLs took the default, by design
                assert new_rows[rid][new_col.lower()] == value, f"{new_t.db_table}.{new_col} row {rid}"
        for name, target in old_t.m2m:  # every link kept, its ids in their columns (renamed or not)
            if (name, target) in new_t.m2m:
                links = {table: {i: tuple(r.values()) for i, r in rows[f"{t.db_table}_{name}"].items()}
                         for table, rows, t in (("old", before, old_t), ("new", after, new_t))}
                assert links["new"] == links["old"], f"links of {old_t.db_table}.{name}"


def check_roundtrip(old: ProjectSpec, new: ProjectSpec, renames: Renames, tmp) -> None:
    directory = tmp / "tablemigrations"
    old_models, new_models = build_models(old), build_models(new)
    generate(directory, old_models, questioner=AutoValue())
    applied: set[str] = set()
    with private_database(str(tmp / "live.sqlite3")) as live:
        conn = raw(live)
        apply_new(conn, directory, applied)
        fill(conn, old)
        before = dump_rows(conn)
        generate(directory, new_models, renames=renames, questioner=AutoValue())
        second = apply_new(conn, directory, applied)
        # (a) exactly the schema built from the new models
        assert introspect(conn).tables == models_schema(new_models).tables
        # (b) every preserved row and value intact, foreign keys consistent
        assert_rows_preserved(before, dump_rows(conn), old, new, renames)
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        # (c) nothing left to generate
        assert not generate(directory, new_models, write=False).changed
        # (d) the downs, in reverse, return the old schema with the old rows -- unless a down needs
        # values that up destroyed; then it must fail cleanly and say so in the module.
        reverted = True
        for m in reversed(second):
            state = dump_rows(conn)
            try:
                apply_migration(conn, m, "down")
            except MigrationFailed:
                assert any("restores column" in r for r in m.down_destructive), m.name
                assert dump_rows(conn) == state  # rolled back
                reverted = False
                break
        if reverted:
            assert introspect(conn).tables == models_schema(old_models).tables
            back = dump_rows(conn)
            for t in old.tables.values():
                if t.key in new.tables:
                    assert len(back[t.db_table]) == len(before[t.db_table])
    # (d) on an empty database: the downs always restore the old schema exactly
    with private_database() as empty:
        conn = raw(empty)
        for m in load_migrations(directory):
            apply_migration(conn, m, "up")
        for m in reversed(second):
            apply_migration(conn, m, "down")
        assert introspect(conn).tables == models_schema(old_models).tables


@pytest.mark.slow
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_any_model_change_round_trips(data, tmp_path_factory):
    old = data.draw(projects(), label="old")
    new, renames, done = data.draw(changes(old), label="changes")
    for what in done:
        event(what.split()[0])
    check_roundtrip(old, new, renames, tmp_path_factory.mktemp("rt"))


def test_affinity_rules():
    assert [affinity(t) for t in ("varchar(30)", "bigint", "real", "", "decimal", "blob", "CLOB")] == [
        "TEXT", "INTEGER", "REAL", "BLOB", "NUMERIC", "BLOB", "TEXT"]
