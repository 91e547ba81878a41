"""Changes that move no stored record are made in place (issue 15): the table's stored CREATE text is
rewritten, as SQLite's documentation describes, instead of copying every row."""

from __future__ import annotations

import sqlite3

import pytest

from tablemigrate.errors import MigrationFailed
from tablemigrate.generate.plan import plan_changes
from tablemigrate.history.loader import Migration
from tablemigrate.operations import AlterTableInPlace, RebuildTable
from tablemigrate.run.apply import apply_migration
from tablemigrate.sqlite.diff import diff_schemas
from tablemigrate.sqlite.introspect import introspect

OLD = ('CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY, "name" varchar(30) NOT NULL, "n" integer NULL '
       'DEFAULT 1, "p_id" integer NULL REFERENCES "p" ("id"), CHECK ("n" > 0))')
NEW = ('CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY, "name" varchar(60) NULL, "n" bigint NULL '
       'DEFAULT 1, "p_id" integer NULL)')


def schema(*statements: str):
    conn = sqlite3.connect(":memory:")
    conn.execute('CREATE TABLE "p" ("id" integer PRIMARY KEY)')
    for sql in statements:
        conn.execute(sql)
    return introspect(conn)


def database(create: str = OLD) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute('CREATE TABLE "p" ("id" integer PRIMARY KEY)')
    conn.execute(create)
    conn.execute('CREATE INDEX "t_name" ON "t" ("name")')
    conn.execute("INSERT INTO p VALUES (1)")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", [(i, f"n{i}", i, 1) for i in range(1, 101)])
    return conn


def run(conn: sqlite3.Connection, steps) -> None:
    apply_migration(conn, Migration("m", up=list(steps), down=None, table="t"), "up")


def test_widening_and_loosening_are_planned_in_place_and_keep_every_row():
    [plan] = plan_changes(diff_schemas(schema(OLD), schema(NEW)), {})
    [step] = plan.up
    assert type(step) is AlterTableInPlace
    assert plan.summary[-1] == "change the table's definition in place (no row is copied)"
    conn = database()
    before = conn.execute("SELECT * FROM t ORDER BY id").fetchall()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    run(conn, plan.up)
    assert introspect(conn).tables["t"] == schema(NEW, 'CREATE INDEX "t_name" ON "t" ("name")').tables["t"]
    assert conn.execute("SELECT * FROM t ORDER BY id").fetchall() == before
    assert conn.execute("PRAGMA page_count").fetchone()[0] == pages  # no row was copied
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.execute("INSERT INTO t VALUES (101, NULL, -1, 7)")  # NOT NULL, CHECK and the key are gone
    # `down` puts NOT NULL, the CHECK and the key back, in place too: the rows are proved when it runs.
    *fills, back = plan.down
    assert type(back) is AlterTableInPlace and back.check
    assert fills == ['UPDATE "t" SET "name" = \'\' WHERE "name" IS NULL']  # as the rebuild's COALESCE did


@pytest.mark.parametrize("new", [
    NEW.replace("DEFAULT 1", "DEFAULT 2"),  # rows from before an ADD COLUMN read the default from the schema
    NEW.replace('"n" bigint', '"n" real'),  # another affinity: stored values convert
    NEW.replace('"name" varchar(60) NULL', '"name" varchar(60) NOT NULL COLLATE NOCASE'),  # index order
    NEW.replace('"id" integer NOT NULL PRIMARY KEY', '"id" bigint NOT NULL PRIMARY KEY'),  # no longer the rowid
])
def test_what_could_change_a_stored_value_or_an_index_is_rebuilt(new):
    [plan] = plan_changes(diff_schemas(schema(OLD), schema(new)), {})
    assert not any(isinstance(s, AlterTableInPlace) for s in plan.up)


def test_columns_in_another_order_on_the_live_table_are_rebuilt_not_rewritten():
    """The record layout is the column order: rewriting the text over another order would read every
    row wrongly. The operation checks the live table when it runs and rebuilds instead."""
    live = OLD.replace('"n" integer NULL DEFAULT 1, "p_id" integer NULL REFERENCES "p" ("id")',
                       '"p_id" integer NULL REFERENCES "p" ("id"), "n" integer NULL DEFAULT 1')
    conn = database(live)
    before = {r[0]: r for r in conn.execute("SELECT id, name, n, p_id FROM t")}
    run(conn, [AlterTableInPlace("t", NEW, {"id": '"id"', "name": '"name"', "n": '"n"', "p_id": '"p_id"'})])
    assert [r[1] for r in conn.execute("PRAGMA table_info(t)")] == ["id", "name", "n", "p_id"]
    assert {r[0]: r for r in conn.execute("SELECT id, name, n, p_id FROM t")} == before


def test_where_sqlite_refuses_to_write_the_schema_the_table_is_rebuilt():
    """A connection in defensive mode cannot write `sqlite_schema` (`writable_schema` is ignored).
    Python 3.12+ can set that mode; before, an authorizer ignores the pragma the same way."""
    conn = database()
    before = conn.execute("SELECT * FROM t ORDER BY id").fetchall()
    if hasattr(conn, "setconfig"):
        conn.setconfig(sqlite3.SQLITE_DBCONFIG_DEFENSIVE, True)
    else:
        conn.set_authorizer(lambda action, arg1, *_: sqlite3.SQLITE_IGNORE
                            if action == sqlite3.SQLITE_PRAGMA and arg1 == "writable_schema" else sqlite3.SQLITE_OK)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    run(conn, [AlterTableInPlace("t", NEW, {"id": '"id"', "name": '"name"', "n": '"n"', "p_id": '"p_id"'})])
    conn.set_authorizer(lambda *_: sqlite3.SQLITE_OK)  # (Python 3.10 cannot remove one with None)
    assert introspect(conn).tables["t"] == schema(NEW, 'CREATE INDEX "t_name" ON "t" ("name")').tables["t"]
    assert conn.execute("SELECT * FROM t ORDER BY id").fetchall() == before
    assert conn.execute("PRAGMA page_count").fetchone()[0] > pages  # copied: the rebuild ran


LAYOUTS = {  # definitions whose stored layout differs although the diff may see no structural change
    "rowid alias lost": ('CREATE TABLE t (id integer PRIMARY KEY, n int NOT NULL)',
                         'CREATE TABLE t (id bigint PRIMARY KEY, n int)'),
    "hidden UNIQUE indexes renumbered": ('CREATE TABLE t (id integer PRIMARY KEY, a text UNIQUE, b text UNIQUE)',
                                         'CREATE TABLE t (id integer PRIMARY KEY, a text, b varchar(10), '
                                         'UNIQUE (b), UNIQUE (a))'),
    "text key moved beside a UNIQUE": ('CREATE TABLE t (code text PRIMARY KEY, x text UNIQUE, n int NOT NULL)',
                                       'CREATE TABLE t (code text, x text UNIQUE, n int, PRIMARY KEY (code))'),
    "PRIMARY KEY DESC on the column is not the rowid": ('CREATE TABLE t (id integer, n int NOT NULL, '
                                                        'PRIMARY KEY (id DESC))',
                                                        'CREATE TABLE t (id integer PRIMARY KEY DESC, n int)'),
}


@pytest.mark.parametrize("case", list(LAYOUTS))
def test_a_definition_with_another_stored_layout_is_rebuilt_whatever_planned_it(case):
    """Found by an independent review: the rowid alias and the hidden indexes of PRIMARY KEY and UNIQUE
    constraints (numbered in the order they are written) are part of how the rows are stored. The
    operation compares them, as SQLite reports them on a scratch copy of each definition, and rebuilds
    when they differ, so a hand-written or mis-planned module cannot corrupt the table."""
    old, new = LAYOUTS[case]
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute(old)
    columns = [r[1] for r in conn.execute("PRAGMA table_info(t)")]
    values = {"id": lambda i: i, "n": lambda i: i, "a": lambda i: f"a{i}", "b": lambda i: f"b{9 - i}",
              "code": lambda i: f"c{i}", "x": lambda i: f"x{9 - i}"}
    conn.executemany(f"INSERT INTO t ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
                     [tuple(values[c](i) for c in columns) for i in range(1, 6)])
    before = sorted(conn.execute(f"SELECT {', '.join(columns)} FROM t").fetchall())
    run(conn, [AlterTableInPlace("t", new, {c: f'"{c}"' for c in columns})])
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert sorted(conn.execute(f"SELECT {', '.join(columns)} FROM t").fetchall()) == before
    for column in columns:  # every indexed lookup finds its row
        for row in before:
            value = row[columns.index(column)]
            assert conn.execute(f"SELECT count(*) FROM t WHERE {column} = ?", (value,)).fetchone()[0] >= 1


TIGHT = OLD.replace('"name" varchar(30) NOT NULL', '"name" varchar(30) NULL')
TIGHTER = OLD.replace('CHECK ("n" > 0))', 'CHECK ("n" > 0), CHECK ("n" < 1000))')
RULES = {  # rule -> (definition without it, with it, an UPDATE that makes a row break it)
    "not null": (TIGHT, OLD, "UPDATE t SET name = NULL WHERE id = 5"),
    "check": (OLD, TIGHTER, "UPDATE t SET n = 5000 WHERE id = 5"),
    "foreign key": (OLD.replace(' REFERENCES "p" ("id")', ''), OLD, "UPDATE t SET p_id = 99 WHERE id = 5"),
}
COPY = {"id": '"id"', "name": '"name"', "n": '"n"', "p_id": '"p_id"'}


@pytest.mark.parametrize("change", ["not null", "check", "foreign key"])
def test_rules_added_are_proved_on_the_rows_and_made_in_place(change):
    """Adding NOT NULL, a CHECK or a foreign key moves no record either: the text is rewritten in place
    once every row is proved to satisfy the new rule (issue 15); a row that breaks it fails the
    migration, and nothing is changed."""
    old, new, breaks = RULES[change]
    [plan] = plan_changes(diff_schemas(schema(old), schema(new)), {})
    [step] = plan.up
    assert type(step) is AlterTableInPlace and step.check
    conn = database(old)
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    run(conn, plan.up)
    assert introspect(conn).tables["t"] == schema(new, 'CREATE INDEX "t_name" ON "t" ("name")').tables["t"]
    assert conn.execute("PRAGMA page_count").fetchone()[0] == pages  # no row was copied
    bad = database(old)
    bad.execute(breaks)
    before = list(bad.iterdump())
    with pytest.raises(MigrationFailed):
        run(bad, plan.up)
    assert list(bad.iterdump()) == before


def test_existing_nulls_take_their_value_before_not_null_is_added_in_place():
    [plan] = plan_changes(diff_schemas(schema(TIGHT), schema(OLD)), {("t", "name"): "'?'"})
    assert plan.up[0] == '''UPDATE "t" SET "name" = '?' WHERE "name" IS NULL'''
    conn = database(TIGHT)
    conn.execute("UPDATE t SET name = NULL WHERE id <= 3")
    run(conn, plan.up)
    assert [r[0] for r in conn.execute("SELECT name FROM t WHERE id <= 4 ORDER BY id")] == ["?", "?", "?", "n4"]


def test_a_run_that_would_break_an_added_rule_is_refused_before_anything_is_written(tmp_path):
    """The pre-run data check reads an in-place change as it reads a rebuild: NULLs that would stay in
    a column made NOT NULL refuse the run, with their count, and nothing is written."""
    from tablemigrate.errors import TablemigrateError
    from tablemigrate.history.status import Target
    from tablemigrate.project.build import private_database, raw
    from tablemigrate.run import runner

    from .helpers import module

    d = tmp_path / "m"
    module(d, "0001_create", "table = 't'\nup = " + repr([
        "CREATE TABLE t (id integer PRIMARY KEY, name varchar(30) NULL)",
        "INSERT INTO t (name) VALUES ('a'), (NULL), (NULL)"]) + "\ndown = ['DROP TABLE t']\n")
    path = tmp_path / "db.sqlite3"
    with private_database(str(path)) as db:
        runner.run(Target("default", raw(db), path), d, django=False)
    step = AlterTableInPlace("t", 'CREATE TABLE "t" (id integer PRIMARY KEY, name varchar(30) NOT NULL)',
                             {"id": '"id"', "name": '"name"'}, check=True)
    args, kwargs = step.deconstruct()
    module(d, "0002_not_null", "from tablemigrate.operations import AlterTableInPlace\ntable = 't'\n"
           f"up = [AlterTableInPlace(*{args!r}, **{kwargs!r})]\ndown = None\n")
    with private_database(str(path)) as db:
        conn = raw(db)
        before = list(conn.iterdump())
        with pytest.raises(TablemigrateError, match="2 rows of t would hold NULL in name") as refused:
            runner.run(Target("default", conn, path), d, django=False, allow_destructive=True)
        assert "nothing was changed" in str(refused.value)
        assert list(conn.iterdump()) == before


def test_an_in_place_change_that_adds_no_rule_reads_no_row(monkeypatch):
    """The applier's foreign key check reads every row of the table and of those referencing it: after a
    change that moved no row and added no rule it has nothing to find, and is skipped (O(1) at any size);
    after a rule is added, or the table was rebuilt, it runs."""
    from tablemigrate.run import apply

    checked = []
    real = apply.foreign_key_violations
    monkeypatch.setattr(apply, "foreign_key_violations", lambda conn, t: checked.append(t) or real(conn, t))
    [loosen] = plan_changes(diff_schemas(schema(OLD), schema(NEW)), {})
    run(database(), loosen.up)
    assert checked == []
    [tighten] = plan_changes(diff_schemas(schema(OLD.replace(' REFERENCES "p" ("id")', '')), schema(OLD)), {})
    run(database(OLD.replace(' REFERENCES "p" ("id")', '')), tighten.up)
    assert checked == ["t"]
    conn = database()
    conn.setconfig(sqlite3.SQLITE_DBCONFIG_DEFENSIVE, True) if hasattr(conn, "setconfig") else conn.set_authorizer(
        lambda action, arg1, *_: sqlite3.SQLITE_IGNORE if action == sqlite3.SQLITE_PRAGMA and arg1 == "writable_schema"
        else sqlite3.SQLITE_OK)
    run(conn, loosen.up)  # SQLite refuses to write the schema: rebuilt, so checked
    assert checked == ["t", "t"]


# Issue 22: a hand-written (or hand-edited) AlterTableInPlace whose new text would read the stored
# records or an index differently is rebuilt, whatever its author believed. Each case: the old
# definition, rows and indexes made on it, the new definition, and the query whose answer must be the
# same as on a table built fresh with the new definition (and filled by the same copy).
UNSAFE = {
    "collation of an indexed column": (
        "CREATE TABLE t (id integer PRIMARY KEY, name text)", ["CREATE INDEX t_name ON t (name)"],
        "CREATE TABLE t (id integer PRIMARY KEY, name text COLLATE NOCASE)", "SELECT id FROM t WHERE name = 'ABC'"),
    "collation of a comparison an expression index stores": (
        "CREATE TABLE t (id integer PRIMARY KEY, name text)", ["CREATE INDEX t_name ON t ((name = 'abc'))"],
        "CREATE TABLE t (id integer PRIMARY KEY, name text COLLATE NOCASE)",
        "SELECT id FROM t WHERE (name = 'abc') = 1"),
    "collation of a column a partial index filters on": (
        "CREATE TABLE t (id integer PRIMARY KEY, name text, n int)", ["CREATE INDEX t_n ON t (n) WHERE name = 'abc'"],
        "CREATE TABLE t (id integer PRIMARY KEY, name text COLLATE NOCASE, n int)",
        "SELECT id FROM t WHERE name = 'abc' AND n >= 0"),
    "affinity": (
        "CREATE TABLE t (id integer PRIMARY KEY, n text)", ["CREATE INDEX t_n ON t (n)"],
        "CREATE TABLE t (id integer PRIMARY KEY, n integer)", "SELECT id FROM t WHERE n = 12"),
    "STRICT declared type": (
        "CREATE TABLE t (id integer PRIMARY KEY, n any) STRICT", ["CREATE INDEX t_n ON t (n)"],
        "CREATE TABLE t (id integer PRIMARY KEY, n integer) STRICT", "SELECT id FROM t WHERE n = 12"),
    "STRICT dropped": (
        "CREATE TABLE t (id integer PRIMARY KEY, n any) STRICT", ["CREATE INDEX t_n ON t (n)"],
        "CREATE TABLE t (id integer PRIMARY KEY, n any)", "SELECT id FROM t WHERE n = 12"),
    "DEFAULT of a column added by ADD COLUMN": (
        "CREATE TABLE t (id integer PRIMARY KEY, name text)", ["ALTER TABLE t ADD COLUMN flag integer DEFAULT 1"],
        "CREATE TABLE t (id integer PRIMARY KEY, name text, flag integer DEFAULT 2)", "SELECT id, flag FROM t"),
    "expression of a STORED generated column": (
        "CREATE TABLE t (id integer PRIMARY KEY, n int, g int GENERATED ALWAYS AS (n * 2) STORED)", [],
        "CREATE TABLE t (id integer PRIMARY KEY, n int, g int GENERATED ALWAYS AS (n * 3) STORED)",
        "SELECT id, g FROM t"),
    "expression of an indexed VIRTUAL generated column": (
        "CREATE TABLE t (id integer PRIMARY KEY, n int, g int GENERATED ALWAYS AS (n * 2))",
        ["CREATE INDEX t_g ON t (g)"],
        "CREATE TABLE t (id integer PRIMARY KEY, n int, g int GENERATED ALWAYS AS (n * 3))",
        "SELECT id FROM t WHERE g = 36"),
    "AUTOINCREMENT added": (  # in place, the next INSERT finds no sqlite_sequence: "malformed"
        "CREATE TABLE t (id integer PRIMARY KEY, n int)", [],
        "CREATE TABLE t (id integer PRIMARY KEY AUTOINCREMENT, n int)", "SELECT name, seq FROM sqlite_sequence"),
}
ROWS = [(1, "abc", 12), (2, "ABC", "12"), (3, "x", 5), (4, "Abc", 12.0)]


def _filled(create: str, after: list[str]) -> sqlite3.Connection:
    """A table made by `create` with ROWS in it, then the statements `after` (indexes, an ADD COLUMN),
    then ROWS again with other ids: rows written before and after each of them."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute(create)
    columns = [r[1] for r in conn.execute("PRAGMA table_info(t)")]

    def insert(offset: int) -> None:
        for row in ROWS:
            values = {"id": row[0] + offset, "name": row[1], "n": row[2]}
            names = [c for c in columns if c in values]
            conn.execute(f"INSERT INTO t ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
                         [values[c] for c in names])

    insert(0)
    for sql in after:
        conn.execute(sql)
    columns = [r[1] for r in conn.execute("PRAGMA table_info(t)")]
    insert(10)
    return conn


def _contents(conn: sqlite3.Connection, query: str) -> tuple:
    columns = [r[1] for r in conn.execute("PRAGMA table_xinfo(t)")]
    every = ", ".join(f"typeof({c}), {c}" for c in columns)
    return (conn.execute(f"SELECT {every} FROM t ORDER BY id").fetchall(),
            sorted(conn.execute(query).fetchall()))


@pytest.mark.parametrize("case", list(UNSAFE))
def test_a_change_in_place_would_read_differently_is_rebuilt(case):
    """Issue 22: a collation under an index, an affinity or STRICT type, the DEFAULT of a column added by
    ADD COLUMN (rows written before it are short and read it from the schema), a generated expression or
    AUTOINCREMENT, changed by a hand-written AlterTableInPlace: the table ends exactly as one built fresh
    with the new definition and filled by the same copy (integrity_check ok, every lookup and value, new
    rows taken), because it was rebuilt, not rewritten."""
    old, after, new, query = UNSAFE[case]
    conn = _filled(old, after)
    copy = {r[1]: f'"{r[1]}"' for r in conn.execute("PRAGMA table_xinfo(t)") if r[6] in (0, 1)}
    expected = _filled(old, after)
    run(expected, [RebuildTable("t", new, copy)])
    step = AlterTableInPlace("t", new, copy)
    run(conn, [step])
    for db in (conn, expected):
        db.execute("INSERT INTO t DEFAULT VALUES")  # and the table takes new rows
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    assert _contents(conn, query) == _contents(expected, query)
    assert step.moved_rows is True


NAME, N = '"name" varchar(30) COLLATE NOCASE', '"n" integer NULL'
SAFE = {  # what `generate` makes in place, with an index, a collation and an ADD COLUMN'd default around
    "varchar(30) -> varchar(60)": ((NAME, N), ('"name" varchar(60) COLLATE NOCASE', N)),
    "NOT NULL added": ((NAME, N), (NAME, '"n" integer NOT NULL')),
    "NOT NULL dropped": ((NAME + " NOT NULL", N), (NAME, N)),
    "CHECK added": ((NAME, N), (NAME, N + ' CHECK ("n" > 0)')),
    "CHECK dropped": ((NAME, N + ' CHECK ("n" > 0)'), (NAME, N)),
}


@pytest.mark.parametrize("case", list(SAFE))
def test_what_generate_makes_in_place_stays_in_place(case):
    """The guard refuses only what would read differently: a type of the same affinity, NOT NULL or a
    CHECK added or dropped still change the text alone (the table's root page and every row are kept),
    with the rules added proved on the rows."""
    table = 'CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY, {}, {}, "flag" integer NULL DEFAULT 7)'
    before, after = SAFE[case]
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute(table.format(*before).replace(', "flag" integer NULL DEFAULT 7', ''))
    conn.execute('CREATE INDEX "t_name" ON "t" ("name")')
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, f"N{i}", i) for i in range(1, 51)])
    conn.execute('ALTER TABLE "t" ADD COLUMN "flag" integer NULL DEFAULT 7')  # rows above are short
    root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 't'").fetchone()
    rows = conn.execute("SELECT * FROM t ORDER BY id").fetchall()
    step = AlterTableInPlace("t", table.format(*after), {c: f'"{c}"' for c in ("id", "name", "n", "flag")})
    run(conn, [step])
    assert step.moved_rows is False
    assert conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 't'").fetchone() == root
    assert introspect(conn).tables["t"] == schema(table.format(*after), 'CREATE INDEX "t_name" ON "t" ("name")'
                                                  ).tables["t"]
    assert conn.execute("SELECT * FROM t ORDER BY id").fetchall() == rows
    assert conn.execute("SELECT id FROM t WHERE name = 'n7'").fetchall() == [(7,)]
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


@pytest.mark.parametrize("rule", ["not null", "check", "foreign key"])
def test_a_rule_added_in_place_is_proved_even_when_the_module_does_not_say_so(rule):
    """The rows are proved against what the new definition adds as SQLite reads it (NOT NULL, foreign
    keys from the PRAGMAs; CHECKs from the text), not only when the module passes `check=True`: a
    hand-written module, or a copy that lost the argument, cannot add a rule that rows break."""
    old, new, breaks = RULES[rule]
    bad = database(old)
    bad.execute(breaks)
    before = list(bad.iterdump())
    with pytest.raises(MigrationFailed):
        run(bad, [AlterTableInPlace("t", new, COPY)])
    assert list(bad.iterdump()) == before
    good = database(old)
    step = AlterTableInPlace("t", new, COPY)
    run(good, [step])
    assert step.moved_rows is False and not step.kept_every_row_and_key()
