"""Data-dependent checks: counted on the real rows, never changing them."""

import sqlite3

import pytest

from tablemigrate.history.loader import Migration
from tablemigrate.operations import RebuildTable, RunPython
from tablemigrate.run.datacheck import check


@pytest.fixture
def db():
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t (id integer PRIMARY KEY, code text, v text, n text)")
    conn.executemany("INSERT INTO t (code, v, n) VALUES (?, ?, ?)",
                     [("a", None, "007"), ("a", "x", "12"), ("b", None, "abc"), ("c", "y", None)])
    yield conn
    conn.close()


def found(conn, *steps, direction="up"):
    before = list(conn.iterdump())
    findings = check(conn, [Migration("m1", list(steps), None)], direction)
    assert list(conn.iterdump()) == before  # read-only
    return [(f.kind, f.message) for f in findings]


def rebuild(create, copy):
    return RebuildTable("t", create, copy)


ALL = {"id": '"id"', "code": '"code"', "v": '"v"', "n": '"n"'}


def test_not_null_over_nulls_is_a_violation_with_the_count(db):
    out = found(db, rebuild("CREATE TABLE t (id integer PRIMARY KEY, code text, v text NOT NULL, n text)", ALL))
    assert out == [("violation", "2 rows of t would hold NULL in v, which becomes NOT NULL (for example rowid 1, 3)")]


def test_coalesce_fill_is_a_counted_change_not_a_violation(db):
    copy = dict(ALL, v="COALESCE(\"v\", '')")
    out = found(db, rebuild("CREATE TABLE t (id integer PRIMARY KEY, code text, v text NOT NULL, n text)", copy))
    assert out == [("loss", "2 values of t.v would change to COALESCE(\"v\", '') (for example: NULL -> '', NULL -> '')")]


def test_unique_over_duplicates_is_a_violation(db):
    out = found(db, rebuild("CREATE TABLE t (id integer PRIMARY KEY, code text UNIQUE, v text, n text)", ALL))
    assert out == [("violation", "1 duplicated value in t (code) under UNIQUE (for example: 'a')")]


def test_check_constraint_failing_rows(db):
    out = found(db, rebuild("CREATE TABLE t (id integer PRIMARY KEY, code text CHECK (code != 'b'), v text, "
                            "n text)", ALL))
    assert out == [("violation", "1 row of t would fail CHECK (code != 'b') (for example: (3, 'b', NULL, 'abc'))")]


def test_column_not_copied_counts_lost_values(db):
    copy = {k: e for k, e in ALL.items() if k != "v"}
    out = found(db, rebuild("CREATE TABLE t (id integer PRIMARY KEY, code text, n text)", copy))
    assert out == [("loss", "2 values in t.v would be dropped (column not copied) (for example: 'x', 'y')")]


def test_narrowing_type_counts_values_that_read_back_differently(db):
    out = found(db, rebuild("CREATE TABLE t (id integer PRIMARY KEY, code text, v text, n integer)", ALL))
    # '007' becomes 7; '12' becomes 12 (reads back the same); 'abc' stays text.
    assert out == [("loss", "1 value in t.n would be converted to integer and read back differently "
                            "(for example: '007' -> 7)")]
    assert db.execute("SELECT name FROM temp.sqlite_master").fetchall() == []


def test_strict_table_rejecting_values_is_a_violation(db):
    out = found(db, rebuild("CREATE TABLE t (id integer PRIMARY KEY, code text, v text, n integer) STRICT", ALL))
    assert ("violation", "1 value in t.n cannot be stored as integer in a STRICT table") in out


def test_new_not_null_column_without_value(db):
    out = found(db, rebuild("CREATE TABLE t (id integer PRIMARY KEY, code text, v text, n text, "
                            "w int NOT NULL)", ALL))
    assert out == [("violation", "t has 4 rows and the new NOT NULL column w gets no value")]


def test_plain_sql_drops_and_unique_index(db):
    assert found(db, 'ALTER TABLE "t" DROP COLUMN "v"') == [("loss", "2 values in t.v would be dropped (for example: 'x', 'y')")]
    assert found(db, 'DROP TABLE "t"') == [("loss", "dropping t deletes 4 rows")]
    assert found(db, 'CREATE UNIQUE INDEX u ON t (code DESC)') == [
        ("violation", "1 duplicated value in t (code) under a new unique index (for example: 'a')")]
    assert found(db, "CREATE UNIQUE INDEX u ON t (code) WHERE code != 'a'") == []


def test_renames_earlier_in_the_migration_are_followed(db):
    out = found(db, 'ALTER TABLE "t" RENAME TO "t2"', 'ALTER TABLE "t2" RENAME COLUMN "v" TO "w"',
                'ALTER TABLE "t2" DROP COLUMN "w"')
    assert out == [("loss", "2 values in t2.w would be dropped (for example: 'x', 'y')")]
    copy = {"id": '"id"', "code": '"code"', "w": '"w"', "n": '"n"'}
    out = found(db, 'ALTER TABLE "t" RENAME COLUMN "v" TO "w"',
                rebuild("CREATE TABLE t (id integer PRIMARY KEY, code text, w text NOT NULL, n text)", copy))
    assert out == [("violation", "2 rows of t would hold NULL in w, which becomes NOT NULL")]


def test_a_drop_after_copying_from_the_table_is_still_a_loss_to_confirm(db):
    # Whether the copy kept the rows is known only by running it: `WHERE 0` keeps none.
    for where in ("", " WHERE 0"):
        assert found(db, "CREATE TABLE t_new (id integer PRIMARY KEY, code text)",
                     f"INSERT INTO t_new SELECT id, code FROM t{where}", "DROP TABLE t") == [
            ("loss", "dropping t deletes 4 rows (an earlier statement copies from it: confirm the copy keeps "
                     "what you need)")]


def test_objects_made_by_earlier_pending_migrations_are_skipped(db):
    assert found(db, "CREATE TABLE later (x, y)", 'ALTER TABLE "later" DROP COLUMN "x"',
                 'DROP TABLE "later"') == []


def test_empty_table_and_down_direction(db):
    db.execute("DELETE FROM t")
    assert found(db, rebuild("CREATE TABLE t (id integer PRIMARY KEY, code text UNIQUE, v text NOT NULL, "
                             "n text)", ALL)) == []
    db.execute("INSERT INTO t (code) VALUES ('z')")
    m = Migration("m1", [], ['DROP TABLE "t"'])
    assert [str(f) for f in check(db, [m], "down")] == ["m1: dropping t deletes 1 row"]


NOT_NULL_V = "CREATE TABLE t (id integer PRIMARY KEY, code text, v text NOT NULL, n text)"


def test_rows_fixed_by_earlier_steps_are_not_judged_by_the_live_rows(db):
    # the same migration fixes the NULLs first
    assert found(db, "UPDATE t SET v = 'z' WHERE v IS NULL", rebuild(NOT_NULL_V, ALL)) == []
    # an earlier pending migration does (or a Python step might)
    fix = Migration("m0", ["DELETE FROM t WHERE v IS NULL"], None)
    assert check(db, [fix, Migration("m1", [rebuild(NOT_NULL_V, ALL)], None)]) == []
    python = Migration("m0", [RunPython(lambda conn: None)], None)
    # ...but a loss is never hidden by an earlier write: it is counted on the rows as they are now
    assert [f.message for f in check(db, [python, Migration("m1", ['DROP TABLE "t"'], None)])] == [
        "dropping t deletes 4 rows (counted before earlier steps of this run change its rows)"]
    # an unrelated table's change does not hide t's problem
    other = Migration("m0", ["CREATE TABLE o (x)", "INSERT INTO o VALUES (1)"], None)
    assert [f.kind for f in check(db, [other, Migration("m1", [rebuild(NOT_NULL_V, ALL)], None)])] == ["violation"]


def test_unique_is_judged_with_the_new_columns_collation(db):
    db.execute("CREATE TABLE c (id integer PRIMARY KEY, name text COLLATE NOCASE)")
    db.execute("INSERT INTO c (name) VALUES ('Ann'), ('ann')")
    binary = RebuildTable("c", "CREATE TABLE c (id integer PRIMARY KEY, name text UNIQUE)", {"id": '"id"', "name": '"name"'})
    assert found(db, binary) == []
    nocase = RebuildTable("c", "CREATE TABLE c (id integer PRIMARY KEY, name text COLLATE NOCASE UNIQUE)",
                          {"id": '"id"', "name": '"name"'})
    assert [k for k, _m in found(db, nocase)] == ["violation"]


def test_a_rowid_key_that_is_not_copied_fills_itself(db):
    copy = {k: e for k, e in ALL.items() if k != "id"}
    out = found(db, rebuild("CREATE TABLE t (id integer NOT NULL PRIMARY KEY, code text, v text, n text)", copy))
    assert out == [("loss", "4 values in t.id would be dropped (column not copied) (for example: 1, 2, 3)")]  # renumbered, not refused


def test_what_the_live_table_already_enforces_is_not_scanned_again(db):
    db.execute("CREATE TABLE e (id integer PRIMARY KEY, a text NOT NULL UNIQUE, b int CHECK (b > 0))")
    db.execute("INSERT INTO e (a, b) VALUES ('x', 1), ('y', 2)")
    statements = []
    db.set_trace_callback(statements.append)
    widen = RebuildTable("e", "CREATE TABLE e (id integer PRIMARY KEY, a varchar(40) NOT NULL UNIQUE, "
                              "b int CHECK (b > 0))", {"id": '"id"', "a": '"a"', "b": '"b"'})
    assert found(db, widen) == []
    scans = [s for s in statements if "IS NULL" in s or "GROUP BY" in s or "WHERE NOT" in s]
    assert scans == []
    statements.clear()
    tighten = RebuildTable("e", "CREATE TABLE e (id integer PRIMARY KEY, a text NOT NULL UNIQUE, "
                                "b int NOT NULL CHECK (b > 1))", {"id": '"id"', "a": '"a"', "b": '"b"'})
    assert [k for k, _m in found(db, tighten)] == ["violation"]  # b > 1 fails for one row
    assert any("IS NULL" in s for s in statements) and any("WHERE NOT" in s for s in statements)


def test_a_check_is_scanned_again_when_its_column_compares_differently(db):
    db.execute("CREATE TABLE k (id integer PRIMARY KEY, name text COLLATE NOCASE CHECK (name = 'A'))")
    db.execute("INSERT INTO k (name) VALUES ('a')")  # passes under NOCASE
    binary = RebuildTable("k", "CREATE TABLE k (id integer PRIMARY KEY, name text CHECK (name = 'A'))",
                          {"id": '"id"', "name": '"name"'})
    assert [k for k, _m in found(db, binary)] == ["violation"]


def test_a_fill_changes_only_its_own_table_and_counts_values_it_replaces(db):
    from django.db import models

    from tablemigrate.operations import FillColumn

    db.execute("CREATE TABLE o (x)")
    db.execute("INSERT INTO o VALUES (1)")
    fill = FillColumn("t", "v", models.TextField(default="z"))
    # the fill overwrites 2 values of t.v, and does not hide the loss in another table that follows it
    out = found(db, fill, 'DROP TABLE "o"')
    assert out == [("loss", "2 values in t.v would be replaced by TextField default 'z' (for example: 'x', 'y')"),
                   ("loss", "dropping o deletes 1 row")]
    # a fill of the NULLs: counted, with the rows it fills (the module's flag asks; the count says how many)
    assert found(db, FillColumn("t", "v", models.TextField(default="z"), only_null=True)) == [
        ("loss", "2 rows of t hold NULL in v, which becomes TextField default 'z' (for example rowid 1, 3)")]


# Nothing to lose (issue 23, item 2): a flag says what a migration can lose, these what it would -------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tablemigrate.operations import FillColumn  # noqa: E402
from tablemigrate.run.datacheck import assess  # noqa: E402


@pytest.fixture
def two():
    """`full` holds rows, `empty` none."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE full (id integer PRIMARY KEY, v text)")
    conn.execute("CREATE TABLE empty (id integer PRIMARY KEY, v text)")
    conn.executemany("INSERT INTO full (v) VALUES (?)", [("a",), ("b",)])
    yield conn
    conn.close()


def write_full(db):
    db.execute("INSERT INTO empty (v) VALUES ('x')")


NOTHING_TO_LOSE = {
    "drop an empty table": [["DROP TABLE empty"]],
    "drop a column of an empty table": [["ALTER TABLE empty DROP COLUMN v"]],
    "rebuild an empty table": [[RebuildTable("empty", "CREATE TABLE empty (id integer PRIMARY KEY)", {"id": '"id"'})]],
    "create, rename and drop": [["CREATE TABLE n (x)", "ALTER TABLE n RENAME TO n2"], ["DROP TABLE n2"]],
    "a table created after a data step": [[RunPython(write_full)], ["CREATE TABLE n (x)"], ["DROP TABLE n"]],
    "a live table dropped, made again, dropped": [["DROP TABLE full", "CREATE TABLE full (x)"], ["DROP TABLE full"]],
    "insert into a new table": [["CREATE TABLE n (x)"], ["INSERT INTO n VALUES (1)"]],
    # the rehearsal's own reads after a schema change once made the next CREATE TABLE look like one filled
    # by a SELECT (found by the team scenario: Django's AUTOINCREMENT tables, one after another)
    "tables created one after another": [["CREATE TABLE a (id integer PRIMARY KEY AUTOINCREMENT)"],
                                         ["CREATE TABLE n (id integer PRIMARY KEY AUTOINCREMENT)"], ["DROP TABLE n"]],
}
MAY_LOSE = {
    "drop a table with rows": [["DROP TABLE full"]],
    "delete rows": [["DELETE FROM full"]],
    "a data step": [[RunPython(write_full), "DROP TABLE empty"]],
    "rows written before the drop": [["INSERT INTO empty (v) VALUES ('x')"], ["DROP TABLE empty"]],
    "rows written into a new table": [["CREATE TABLE n (x)", "INSERT INTO n VALUES (1)"], ["DROP TABLE n"]],
    "create table as select": [["CREATE TABLE n AS SELECT v FROM full"], ["DROP TABLE n"]],
    "if not exists keeps the live table": [["CREATE TABLE IF NOT EXISTS full (x)"], ["DROP TABLE full"]],
    "a trigger writes it": [["CREATE TABLE n (x)", "CREATE TABLE log (x)",
                             "CREATE TRIGGER t AFTER INSERT ON log BEGIN INSERT INTO n VALUES (1); END"],
                            ["INSERT INTO log VALUES (1)"], ["DROP TABLE n"]],
    "a fill": [[FillColumn("empty", "v", "'x'")], ["DROP TABLE empty"]],
}


# Empty now, but a step the check cannot read (or the run's Django migrations) may write rows first: the
# migration loses nothing provided its transaction finds them still empty (StillEmpty).
PROVED_WHEN_IT_RUNS = {
    "a data step before the drop of a new table": ([["CREATE TABLE n (x)"], [RunPython(write_full)],
                                                    ["DROP TABLE n"]], {}, ["n"]),
    "a data step before the drop of an empty live table": ([[RunPython(write_full)], ["DROP TABLE empty"]], {},
                                                           ["empty"]),
    "django migrations before the drop of an empty live table": ([["DROP TABLE empty"]],
                                                                 {"others_write_first": True}, ["empty"]),
}


def _assessed(conn, steps_of_each, **kwargs):
    migrations = [Migration(f"m{i}", list(steps), None) for i, steps in enumerate(steps_of_each, 1)]
    return migrations[-1].name, assess(conn, migrations, **kwargs)


def _last_loses_nothing(conn, steps_of_each, **kwargs) -> bool:
    name, assessed = _assessed(conn, steps_of_each, **kwargs)
    return name in assessed.lose_nothing


@pytest.mark.parametrize("case", sorted(NOTHING_TO_LOSE))
def test_a_migration_whose_tables_are_certainly_empty_loses_nothing(two, case):
    assert _last_loses_nothing(two, NOTHING_TO_LOSE[case])


@pytest.mark.parametrize("case", sorted(MAY_LOSE))
def test_a_migration_that_may_meet_rows_or_cannot_be_read_may_lose_them(two, case):
    assert not _last_loses_nothing(two, MAY_LOSE[case])


@pytest.mark.parametrize("case", sorted(PROVED_WHEN_IT_RUNS))
def test_a_table_only_unreadable_steps_may_write_is_proved_empty_when_the_migration_runs(two, case):
    """Issue 23: a history with a data step (a carried Django data migration) before a drop asked for
    --allow-destructive on every new database. The table is empty now or was made by the run; whether a
    Python step wrote into it is known when the migration runs, whose transaction proves it (StillEmpty)."""
    steps, kwargs, proved = PROVED_WHEN_IT_RUNS[case]
    name, assessed = _assessed(two, steps, **kwargs)
    assert name in assessed.lose_nothing and assessed.still_empty[name] == proved
    assert not [f for f in assessed.findings if f.kind == "loss"]


def test_an_empty_live_table_is_proved_again_when_django_migrations_run_first(two):
    assert _last_loses_nothing(two, [["CREATE TABLE n (x)"], ["DROP TABLE n"]], others_write_first=True)
    assert _assessed(two, [["CREATE TABLE n (x)"], ["DROP TABLE n"]], others_write_first=True)[1].still_empty == {
        "m1": [], "m2": []}


def test_dropping_a_table_the_run_created_and_wrote_is_a_loss(two):
    migrations = [Migration("m1", ["CREATE TABLE n (x)", "INSERT INTO n VALUES (1)"], None),
                  Migration("m2", ["DROP TABLE n"], None)]
    assert [(f.migration, f.kind, f.message) for f in check(two, migrations)] == [
        ("m2", "loss", "dropping n deletes the rows earlier steps of this run write into it")]


def test_a_live_table_dropped_and_made_again_is_not_judged_by_its_old_rows(two):
    migrations = [Migration("m1", ["DROP TABLE full", "CREATE TABLE full (id integer PRIMARY KEY, v text)"], None),
                  Migration("m2", [RebuildTable("full", "CREATE TABLE full (id integer PRIMARY KEY, v text NOT NULL)",
                                                {"id": '"id"', "v": '"v"'}), "DROP TABLE full"], None)]
    assert [(f.migration, f.message) for f in check(two, migrations)] == [("m1", "dropping full deletes 2 rows")]


# Property: what the check says loses nothing loses no row when it runs -----------------------------------

TABLES = ("a", "b", "c")


@st.composite
def histories(draw):
    """Live tables with distinct rows, and pending migrations of valid statements over them (a model
    of which tables exist keeps every statement valid)."""
    exists = {t: draw(st.integers(0, 2)) for t in draw(st.sets(st.sampled_from(TABLES)))}  # table -> rows
    setup = [f"CREATE TABLE {t} (v)" for t in exists]
    setup += [f"INSERT INTO {t} VALUES ({ord(t) * 100 + i})" for t, n in exists.items() for i in range(n)]
    live = set(exists)
    migrations = []
    for number in range(1, draw(st.integers(1, 4)) + 1):
        steps: list = []
        for _ in range(draw(st.integers(1, 3))):
            there, absent = sorted(live), [t for t in TABLES if t not in live]
            kinds = (["create", "create as"] if absent else []) + (
                ["drop", "insert", "delete", "update", "rename", "python", "drop column"] if there else [])
            kind = draw(st.sampled_from(kinds or ["create"]))
            if kind == "create" or (kind == "create as" and not there):
                new = draw(st.sampled_from(absent))
                steps.append(f"CREATE TABLE {new} (v, w)")
                live.add(new)
            elif kind == "create as":
                new, src = draw(st.sampled_from(absent)), draw(st.sampled_from(there))
                steps.append(f"CREATE TABLE {new} AS SELECT v, 0 AS w FROM {src}")
                live.add(new)
            else:
                t = draw(st.sampled_from(there))
                value = draw(st.integers(1, 9))
                if kind == "drop":
                    steps.append(f"DROP TABLE {t}")
                    live.discard(t)
                elif kind == "insert":
                    steps.append(f"INSERT INTO {t} (v) VALUES ({value})")
                elif kind == "delete":
                    steps.append(f"DELETE FROM {t}")
                elif kind == "update":
                    steps.append(f"UPDATE {t} SET v = {value}")
                elif kind == "drop column":
                    steps.append(f"ALTER TABLE {t} ADD COLUMN z")
                    steps.append(f"ALTER TABLE {t} DROP COLUMN v")
                    steps.append(f"ALTER TABLE {t} RENAME COLUMN z TO v")
                elif kind == "rename" and absent:
                    new = draw(st.sampled_from(absent))
                    steps.append(f"ALTER TABLE {t} RENAME TO {new}")
                    live.discard(t)
                    live.add(new)
                else:  # a data step: what it writes is unknown to the check
                    steps.append(RunPython(lambda db, t=t, value=value: db.execute(f"INSERT INTO {t} (v) VALUES ({value})")))
        migrations.append(Migration(f"m{number}", steps, None))
    return setup, migrations


def _values(conn) -> list:
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    return sorted((v for n in names for (v,) in conn.execute(f"SELECT v FROM {n}")), key=repr)


@settings(max_examples=80, deadline=None)
@given(histories())
def test_what_the_check_says_loses_nothing_loses_no_value_when_applied(history):
    setup, migrations = history
    conn = sqlite3.connect(":memory:", isolation_level=None)
    for sql in setup:
        conn.execute(sql)
    assessed = assess(conn, migrations)
    safe = assessed.lose_nothing
    for m in migrations:
        if m.name in safe and any(conn.execute(f"SELECT EXISTS (SELECT 1 FROM {t})").fetchone()[0]
                                  for t in assessed.still_empty[m.name]):
            break  # what `run` does: its first step (StillEmpty) refuses it, and the run stops there
        before = _values(conn)
        for step in m.up:
            step.apply(conn) if isinstance(step, RunPython) else conn.execute(step)
        if m.name in safe:  # every value there before is still there (values move, none goes)
            after = _values(conn)
            for v in before:
                assert v in after, (m.name, v)
                after.remove(v)


def test_a_fill_of_nulls_where_there_is_none_then_not_null_loses_nothing(two):
    """Issue 25: NOT NULL with a callable default (a fill of the NULLs, then the rebuild) right after the
    project's own step filled them: the counts find nothing to lose, so the flag is not asked; the counts
    are made again when the migration runs (still_lossless)."""
    from django.db import models

    fill = FillColumn("full", "v", models.TextField(default="z"), only_null=True)
    tighten = RebuildTable("full", "CREATE TABLE full (id integer PRIMARY KEY, v text NOT NULL)",
                           {"id": '"id"', "v": '"v"'})
    name, assessed = _assessed(two, [[fill, tighten]])
    assert name in assessed.lose_nothing and not assessed.findings
    assert [r.where for r in assessed.still_lossless[name]] == ['"v" IS NULL']
    two.execute("INSERT INTO full (v) VALUES (NULL)")
    name, assessed = _assessed(two, [[fill, tighten]])
    assert name not in assessed.lose_nothing
    assert [f.message for f in assessed.findings] == [
        "1 row of full holds NULL in v, which becomes TextField default 'z' (for example rowid 3)"]
