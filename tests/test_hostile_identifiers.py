"""Tables and columns named with SQL keywords, quotes, spaces, unicode and mixed case survive
generate -> run -> revert with their data (every identifier is quoted, everywhere)."""

import sqlite3

from tablemigrate.generate.pipeline import generate, models_schema
from tablemigrate.history.loader import load_migrations
from tablemigrate.run.apply import apply_migration
from tablemigrate.run.drift import drift
from tablemigrate.sqlite.diff import Renames
from tablemigrate.sqlite.introspect import introspect

from .helpers import dump_rows, fill
from .modelgen import FieldSpec, ProjectSpec, TableSpec, build_models

PARENT = "select from ü"  # Django cannot quote a model name holding '"'; hand-written SQL can (below)
CHILD = "Order Details; DROP TABLE x --"


def spec(version: int) -> ProjectSpec:
    p = ProjectSpec()
    parent = TableSpec("Parent", PARENT, [
        FieldSpec("name", "char", db_column="from"),
        FieldSpec("grp", "int", db_column="group by", index=True),
        FieldSpec("quoted", "text", null=True, db_column='q [x] `y`'),
        FieldSpec("uni", "char", unique=True, db_column="naïve 名前"),
        FieldSpec("mixed", "int", db_column="MiXeD CaSe"),
    ])
    child = TableSpec("Child", CHILD, [
        FieldSpec("parent", "fk", target="Parent", db_column="where"),
        FieldSpec("apostrophe", "char", db_column="it's"),
    ])
    child.indexes.append(("child_it_s_idx", ("apostrophe",)))
    if version == 2:
        parent.field("quoted").null = False  # NULL -> NOT NULL with a default: a table rebuild
        parent.field("quoted").has_default = True
        parent.fields.append(FieldSpec("added", "int", null=True, db_column="index"))
        child.db_table = "Renamed 'child' table"
        child.field("apostrophe").db_column = "it''s renamed"
    p.tables = {"Parent": parent, "Child": child}
    return p


def test_hostile_identifiers_survive_generate_run_and_revert(tmp_path):
    directory = tmp_path / "m"
    v1, v2 = spec(1), spec(2)
    generate(directory, build_models(v1))
    conn = sqlite3.connect(":memory:", isolation_level=None)
    first = load_migrations(directory)
    for m in first:
        apply_migration(conn, m, "up")
    fill(conn, v1)
    conn.execute(f'UPDATE "{PARENT}" SET "q [x] `y`" = \'kept\' WHERE id = 1')
    before = dump_rows(conn)

    renames = Renames()
    renames.add_table(CHILD, v2.tables["Child"].db_table)
    renames.add_column(v2.tables["Child"].db_table, "it's", "it''s renamed")
    generate(directory, build_models(v2), renames=renames)
    second = [m for m in load_migrations(directory) if m.name not in {f.name for f in first}]
    assert second
    for m in second:
        apply_migration(conn, m, "up")
    assert introspect(conn).tables == models_schema(build_models(v2)).tables
    after = dump_rows(conn)
    assert len(after[PARENT.lower()]) == len(before[PARENT.lower()]) == 4
    for i, row in before[PARENT.lower()].items():
        new = after[PARENT.lower()][i]
        assert {k: new[k] for k in ("from", "group by", "naïve 名前", "mixed case")} == \
               {k: row[k] for k in ("from", "group by", "naïve 名前", "mixed case")}
        assert new['q [x] `y`'] == (row['q [x] `y`'] if row['q [x] `y`'] is not None else "dflt")
    child = v2.tables["Child"].db_table.lower()
    assert [r["it''s renamed"] for r in after[child].values()] == [r["it's"] for r in before[CHILD.lower()].values()]

    for m in reversed(second):
        apply_migration(conn, m, "down")
    assert introspect(conn).tables == models_schema(build_models(v1)).tables
    back = dump_rows(conn)
    assert back[CHILD.lower()] == before[CHILD.lower()]
    assert {i: {k: v for k, v in r.items() if k != 'q [x] `y`'} for i, r in back[PARENT.lower()].items()} == \
           {i: {k: v for k, v in r.items() if k != 'q [x] `y`'} for i, r in before[PARENT.lower()].items()}
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_identifiers_with_double_quotes_in_hand_written_migrations(tmp_path):
    """Names Django cannot produce but SQLite allows: the rebuild, the data checks and the runner quote
    them correctly."""
    from tablemigrate.history.status import Target
    from tablemigrate.project.build import private_database, raw
    from tablemigrate.run import runner

    d = tmp_path / "m"
    d.mkdir()
    (d / "0001.py").write_text('''up = [\'CREATE TABLE "we""ird ""t""" ("i""d" integer PRIMARY KEY, "v""al" text)\',
      \'INSERT INTO "we""ird ""t""" ("v""al") VALUES (\\\'a"b\\\'), (NULL)\']
down = [\'DROP TABLE "we""ird ""t"""\']
''')
    (d / "0002.py").write_text('''from tablemigrate.operations import RebuildTable
up = [RebuildTable(\'we"ird "t"\', \'CREATE TABLE "we""ird ""t""" ("i""d" integer PRIMARY KEY, "v""al" text NOT NULL)\',
                   {\'i"d\': \'"i""d"\', \'v"al\': \'COALESCE("v""al", \\\'\\\')\'})]
down = [RebuildTable(\'we"ird "t"\', \'CREATE TABLE "we""ird ""t""" ("i""d" integer PRIMARY KEY, "v""al" text)\',
                     {\'i"d\': \'"i""d"\', \'v"al\': \'"v""al"\'})]
destructive = ["NULLs become \'\'"]
''')
    with private_database(str(tmp_path / "db.sqlite3")) as db:
        target = Target("default", raw(db), tmp_path / "db.sqlite3")
        assert [m.name for m in runner.run(target, d, allow_destructive=True)] == ["0001", "0002"]
        rows = target.conn.execute('SELECT "i""d", "v""al" FROM "we""ird ""t""" ORDER BY 1').fetchall()
        assert rows == [(1, 'a"b'), (2, "")]
        assert [m.name for m in runner.revert(target, d, allow_destructive=True)] == ["0002"]
        assert drift(target, d) == []
