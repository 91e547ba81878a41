"""The typed per-table changes (changes.py): the diff's output, their reverses, their own words, and
modules rendered from the operations' own deconstruct()."""

from __future__ import annotations

import sqlite3
from collections import Counter

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tablemigrate.errors import ConfigurationError
from tablemigrate.generate.pipeline import generate
from tablemigrate.generate.plan import REBUILD, path, plan_changes, values_for_down
from tablemigrate.generate.writer import render_module
from tablemigrate.history.loader import load_migrations
from tablemigrate.operations import FillColumn, Operation, RebuildTable
from tablemigrate.sqlite import changes as ch
from tablemigrate.sqlite.diff import Renames, diff_schemas, rename_candidates
from tablemigrate.sqlite.introspect import introspect
from tablemigrate.sqlite.schema import Schema

from .modelgen import FieldSpec, ProjectSpec, TableSpec, build_models


def schema(*statements: str) -> Schema:
    conn = sqlite3.connect(":memory:")
    for sql in statements:
        conn.execute(sql)
    return introspect(conn)


# A column: (name, declared type, NOT NULL, default, own CHECK); tables are made of a few of them, plus
# table constraints and indexes, so both sides of a diff can differ in every way a table can.
COLUMN = st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.sampled_from(["integer", "varchar(30)", "text", "real"]),
                   st.booleans(), st.sampled_from([None, "0", "'x'"]), st.booleans())


@st.composite
def tables(draw, name: str = "t") -> list[str]:
    columns = draw(st.lists(COLUMN, min_size=1, max_size=4, unique_by=lambda c: c[0]))
    parts = ['"id" integer NOT NULL PRIMARY KEY']
    for col, kind, notnull, default, check in columns:
        parts.append(f'"{col}" {kind}{" NOT NULL" if notnull else ""}'
                     f'{f" DEFAULT {default}" if default else ""}{f" CHECK ({col} IS NOT 7)" if check else ""}')
    names = [c[0] for c in columns]
    if draw(st.booleans()):
        parts.append('"p_id" integer NULL REFERENCES "p" ("id")')
    if draw(st.booleans()):
        parts.append(f'UNIQUE ("{names[0]}")')
    statements = [f'CREATE TABLE "{name}" ({", ".join(parts)})']
    for col in draw(st.lists(st.sampled_from(names), max_size=2, unique=True)):
        statements.append(f'CREATE INDEX "{name}_{col}_ix" ON "{name}" ("{col}")')
    return statements


PARENT = 'CREATE TABLE "p" ("id" integer NOT NULL PRIMARY KEY)'


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(old=tables(), new=tables(), rename=st.one_of(st.none(), st.tuples(st.sampled_from("abcd"), st.sampled_from("abcd"))),
       rename_table=st.booleans())
@example(old=['CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY, "a" integer NOT NULL)'],  # the down fills
         new=['CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY, "a" integer)'], rename=None, rename_table=False)
def test_the_reversed_changes_are_the_changes_of_the_reverse_diff(old, new, rename, rename_table):
    """`down` is planned from the reversed changes: they must be exactly what diffing the other way
    finds (as a multiset), and plan to the same steps, or a module's `down` would not undo its `up`."""
    if rename_table:
        new = [s.replace('"t"', '"u"') for s in new]
    a, b = schema(PARENT, *old), schema(PARENT, *new)
    forward, backward = Renames(), Renames()
    new_table = "u" if rename_table else "t"
    if rename_table:
        forward.add_table("t", "u")
        backward.add_table("u", "t")
    if rename and rename[0] in a.tables["t"].columns and rename[1] in b.tables[new_table].columns \
            and rename[0] != rename[1] and rename[1] not in a.tables["t"].columns \
            and rename[0] not in b.tables[new_table].columns:
        forward.add_column(new_table, *rename)
        backward.add_column("t", rename[1], rename[0])
    there = [c for c in diff_schemas(a, b, forward) if c.table.key != "p"]
    back = [c for c in diff_schemas(b, a, backward) if c.table.key != "p"]
    assert len(there) == len(back) <= 1
    if not there:
        assert a.tables["t"] == b.tables["t"]
        return
    undo = ch.reverse_all(there[0].ops)
    assert Counter(undo) == Counter(back[0].ops)
    assert all(op.reverse().reverse() == op for op in there[0].ops)
    down_from_reverse = plan_changes(there, {})[0].down
    # the down fills what it makes NOT NULL again with the type's zero: the reverse diff is given the same
    values = {(back[0].new.key, k): v for k, v in values_for_down(a.tables["t"], tuple(undo)).items()}
    down_from_diff = plan_changes(back, values)[0].up
    assert [repr(s) if not isinstance(s, str) else s for s in down_from_reverse] == \
           [repr(s) if not isinstance(s, str) else s for s in down_from_diff]


def test_each_change_says_what_it_does_and_the_constraint_lines_are_specific():
    a = schema(PARENT, 'CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY, "a" integer NOT NULL, '
                       '"b" text, UNIQUE ("a"))', 'CREATE INDEX "t_b" ON "t" ("b")')
    b = schema(PARENT, 'CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY, "a" bigint NULL, "c" text, '
                       '"p_id" integer REFERENCES "p" ("id"), CHECK ("a" > 0))')
    [change] = diff_schemas(a, b)
    kinds = [type(op).__name__ for op in change.ops]
    assert kinds == ["DropColumn", "AddColumn", "AddColumn", "DropConstraint", "AddConstraint", "AddConstraint",
                     "AlterColumn", "DropIndex"]
    assert ch.summary(change.ops) == [
        "drop column b", "add column c", "add column p_id", "drop unique (a)", "add check (a > 0)",
        "alter column a: integer → bigint, NOT NULL dropped", "drop index t_b"]
    [plan] = plan_changes([change], {})
    assert plan.summary[-2:] == ["drop index t_b", "rebuild table (SQLite cannot ALTER this change)"]
    assert path(change.old, change.new, change.ops, {}) == REBUILD
    assert plan.destructive == ["drops column t.b and the values in it"]
    # The foreign key lives in its added column's definition, so it needs no line of its own and does
    # not by itself force a rebuild.
    [fk] = [op for op in change.ops if isinstance(op, ch.AddConstraint) and op.column]
    assert fk.column == "p_id" and fk.describe() == "" and not any("foreign key" in line for line in plan.summary)


def test_a_foreign_key_column_is_added_natively_and_a_table_fact_forces_a_rebuild():
    a = schema(PARENT, 'CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY)')
    b = schema(PARENT, 'CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY, "p_id" integer REFERENCES "p" ("id"))')
    [change] = diff_schemas(a, b)
    assert [type(op).__name__ for op in change.ops] == ["AddColumn", "AddConstraint"]
    assert change.ops[1].column == "p_id" and ch.summary(change.ops) == ["add column p_id"]
    [plan] = plan_changes([change], {})
    assert plan.up == ['ALTER TABLE "t" ADD COLUMN "p_id" integer REFERENCES "p" ("id")']
    strict = schema(PARENT, 'CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY) STRICT')
    [change] = diff_schemas(a, strict)
    assert change.ops == (ch.AlterTable("strict", False, True),)
    assert ch.summary(change.ops) == ["strict added"] and isinstance(plan_changes([change], {})[0].up[0], RebuildTable)


def test_rename_candidates_come_from_the_changes():
    a = schema('CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY, "title" text NOT NULL)',
               'CREATE TABLE "gone" ("id" integer NOT NULL PRIMARY KEY, "x" text)')
    b = schema('CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY, "headline" text NOT NULL, "other" integer)',
               'CREATE TABLE "came" ("id" integer NOT NULL PRIMARY KEY, "x" text)')
    found = {(c.kind, c.old, c.new) for c in rename_candidates(a, b, Renames())}
    assert found == {("table", "gone", "came"), ("column", "title", "headline")}
    renames = Renames.parse(["t.title:headline", "gone:came"])
    assert rename_candidates(a, b, renames) == []
    [change] = [c for c in diff_schemas(a, b, renames) if c.table.key == "t"]
    assert change.column_renames == {"title": "headline"}


def test_a_rename_of_a_column_pair_that_does_not_exist_is_refused(tmp_path):
    spec = ProjectSpec()
    spec.tables["Post"] = TableSpec("Post", "blog_post", [FieldSpec("title", "char")])
    d = tmp_path / "m"
    generate(d, build_models(spec))
    spec.tables["Note"] = TableSpec("Note", "blog_note", [FieldSpec("body", "char")])
    # blog_note is new: there is no old column to rename, and before the typed changes this was ignored.
    with pytest.raises(ConfigurationError, match=r"rename blog_note\.text -> body: no such column pair"):
        generate(d, build_models(spec), write=False, renames=Renames.parse(["blog_note.text:body"]))


class Stamp(Operation):
    """A hand-written operation: the writer knows nothing about it but its deconstruct()."""

    def __init__(self, table: str, note: str, *, loud: bool = False):
        self.table, self.note, self.loud = table, note, loud

    def deconstruct(self):
        return [self.table, self.note], {"loud": self.loud}

    def comment(self):
        return "a stamp"


def test_modules_render_operations_from_their_own_deconstruct(tmp_path):
    from datetime import datetime, timezone

    from django.db import models

    from tablemigrate.generate.plan import PlannedMigration

    when = datetime(2026, 1, 1, tzinfo=timezone.utc)
    field = models.DateTimeField(auto_now_add=True, null=True)
    plan = PlannedMigration("alter", "t", [
        "ALTER TABLE t ADD COLUMN c text",
        FillColumn("t", "made", field, only_null=True),
        RebuildTable("t", 'CREATE TABLE "t" (\n    "id" integer\n)', {"id": '"id"'}),
    ], [])
    text = render_module(plan, "", when)
    assert "from django.db import models\nfrom tablemigrate.operations import FillColumn, RebuildTable\n" in text
    assert ("    FillColumn('t', 'made', models.DateTimeField(auto_now_add=True, null=True), only_null=True),"
            "  # DateTimeField auto_now_add: the time when the migration runs\n") in text
    # The generated operations load back as they were written.
    d = tmp_path / "m"
    d.mkdir()
    (d / "20260101_000000_01_update_t.py").write_text(text, encoding="utf-8")
    [module] = load_migrations(d)
    fill, rebuild = module.up[1], module.up[2]
    assert fill.deconstruct()[0][:2] == ["t", "made"] and fill.deconstruct()[1] == {"only_null": True}
    assert rebuild.deconstruct() == (["t"], {"create": 'CREATE TABLE "t" (\n    "id" integer\n)',
                                             "copy": {"id": '"id"'}})
    # An operation the writer has never heard of is written from its deconstruct() too: one argument per
    # line once one of them spans lines.
    stamped = render_module(PlannedMigration("alter", "t", [Stamp("t", "two\nlines")], []), "", when)
    assert 'up = [\n    Stamp(\n        \'t\',\n        """two\nlines""",\n        loud=False,\n    ),  # a stamp\n]' in stamped
    assert "from tablemigrate.operations import Stamp\n" in stamped


def test_an_operation_that_cannot_describe_itself_is_not_written():
    from datetime import datetime, timezone

    from tablemigrate.generate.plan import PlannedMigration
    from tablemigrate.operations import RunPython

    plan = PlannedMigration("alter", "t", [RunPython(print)], [])
    with pytest.raises(TypeError, match="cannot be written"):
        render_module(plan, "", datetime(2026, 1, 1, tzinfo=timezone.utc))


def test_column_renames_that_reuse_a_name_run_in_an_order_sqlite_can_follow_or_are_refused():
    old = 'CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY, "b" text, "x" integer)'
    new = 'CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY, "b" integer, "c" text)'
    a, b = schema(old), schema(new)
    # A chain: b frees its name for x. SQLite renames one column at a time, so b goes first in `up`
    # and, undone, second in `down`.
    [plan] = plan_changes(diff_schemas(a, b, Renames.parse(["t.x:b", "t.b:c"])), {})
    assert plan.up == ['ALTER TABLE "t" RENAME COLUMN "b" TO "c"', 'ALTER TABLE "t" RENAME COLUMN "x" TO "b"']
    assert plan.down == ['ALTER TABLE "t" RENAME COLUMN "b" TO "x"', 'ALTER TABLE "t" RENAME COLUMN "c" TO "b"']
    conn = sqlite3.connect(":memory:")
    conn.execute(old)
    conn.execute("INSERT INTO t VALUES (1, 'text', 7)")
    for step in plan.up:
        conn.execute(step)
    assert conn.execute("SELECT b, c FROM t").fetchall() == [(7, "text")]
    for step in plan.down:
        conn.execute(step)
    assert conn.execute("SELECT b, x FROM t").fetchall() == [("text", 7)]
    # A name left by one column and taken by another in the same step, or a swap: refused, with the way out.
    with pytest.raises(ValueError, match="t still has a column b; drop or rename it first"):
        diff_schemas(a, b, Renames.parse(["t.x:b"]))
    with pytest.raises(ValueError, match="the models also have a new column b"):
        diff_schemas(a, schema('CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY, "b" text, "y" text, "x" integer)'),
                     Renames.parse(["t.b:y"]))
    swapped = schema('CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY, "x" text, "b" integer)')
    with pytest.raises(ValueError, match="form a cycle"):
        diff_schemas(a, swapped, Renames.parse(["t.b:x", "t.x:b"]))
