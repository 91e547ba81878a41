"""generate's verification (verify.py): the new modules run on the part of database A they reach, and
a planner bug still stops generate before anything is written."""

from __future__ import annotations

import sqlite3

import pytest

from tablemigrate.errors import GenerateError
from tablemigrate.generate import pipeline as gen
from tablemigrate.generate import verify as verify_module
from tablemigrate.generate.pipeline import generate
from tablemigrate.generate.verify import groups, part_of, reach
from tablemigrate.history.loader import load_migrations
from tablemigrate.run.apply import apply_migration
from tablemigrate.sqlite.diff import Renames
from tablemigrate.sqlite.introspect import introspect

from .helpers import module
from .modelgen import FieldSpec, ProjectSpec, TableSpec, build_models

TABLES = [
    'CREATE TABLE "author" ("id" integer PRIMARY KEY)',
    'CREATE TABLE "post" ("id" integer PRIMARY KEY, "author_id" integer REFERENCES "author" ("id"), "body" text)',
    'CREATE TABLE "comment" ("id" integer PRIMARY KEY, "post_id" integer REFERENCES "post" ("id"))',
    'CREATE TABLE "tag" ("id" integer PRIMARY KEY, "name" text)',
    'CREATE TABLE "unrelated" ("id" integer PRIMARY KEY, "tag_id" integer REFERENCES "tag" ("id"))',
    'CREATE INDEX "post_body" ON "post" ("body")',
    'CREATE INDEX "unrelated_tag" ON "unrelated" ("tag_id")',
]


def database(*more: str) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    for sql in TABLES + list(more):
        conn.execute(sql)
    return conn


def test_the_part_holds_what_a_change_of_the_tables_can_reach():
    conn = database()
    # post; comment (its foreign key names post: RENAME rewrites it); author (post's parent). Not tag or
    # unrelated, which nothing of post's names.
    assert reach(introspect(conn), {"post"}) == {"post", "comment", "author"}
    part = part_of(conn, introspect(conn), ["post"])
    names = {r[0] for r in part.execute("SELECT name FROM sqlite_master")}
    assert names == {"post", "comment", "author", "post_body"}
    part.execute("ALTER TABLE post RENAME TO article")  # everything it rewrites is there
    assert "article" in part.execute("SELECT sql FROM sqlite_master WHERE name = 'comment'").fetchone()[0]


@pytest.mark.parametrize("extra", [
    'CREATE VIEW "tag_names" AS SELECT name FROM tag',
    'CREATE TRIGGER "tag_audit" AFTER INSERT ON tag BEGIN SELECT 1; END',
])
def test_with_any_view_or_trigger_the_part_is_all_of_a(extra):
    """SQLite re-checks every view and trigger at each RENAME and DROP COLUMN, those that do not name
    the changed table included, and only SQLite knows every way one can name a table."""
    conn = database(extra)
    assert reach(introspect(conn), {"post"}) is None
    part = part_of(conn, introspect(conn), ["post"])
    assert part.execute("SELECT count(*) FROM sqlite_master").fetchone() == \
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()


def posts(*extra: str, table: str = "blog_post", tag: bool = True, title: int = 30) -> list:
    spec = ProjectSpec()
    if tag:
        spec.tables["Tag"] = TableSpec("Tag", "blog_tag", [FieldSpec("name", "char")])
    spec.tables["Post"] = TableSpec("Post", table, [FieldSpec("title", "char", max_length=title)]
                                    + [FieldSpec(n, "text", null=True) for n in extra])
    return build_models(spec)


def replayed(d):
    conn = sqlite3.connect(":memory:", isolation_level=None)
    for m in load_migrations(d):
        apply_migration(conn, m, "up")
    return conn


HAND = {  # hand-written modules a view or trigger of which the part used to miss (found by a review)
    "view on a view": ['CREATE VIEW tag_names AS SELECT name FROM blog_tag',
                       'CREATE VIEW post_and_tags AS SELECT p.title, t.name FROM blog_post p, tag_names t'],
    "trigger reading a view": ['CREATE VIEW tag_names AS SELECT name FROM blog_tag',
                               'CREATE TRIGGER post_audit AFTER INSERT ON blog_post BEGIN SELECT count(*) '
                               'FROM tag_names; END'],
    "INSTEAD OF trigger": ['CREATE VIEW tag_names AS SELECT id, name FROM blog_tag',
                           'CREATE TRIGGER tag_post INSTEAD OF INSERT ON tag_names BEGIN INSERT INTO blog_post '
                           '(title) VALUES (new.name); END'],
}


def hand_module(d, statements):
    up = ", ".join(repr(s) for s in statements)
    module(d, "20990101_000000_01_hand", f'table = "blog_tag"\nup = [{up}]\n')


@pytest.mark.parametrize("kind", list(HAND))
def test_views_and_triggers_that_do_not_name_the_table_do_not_stop_a_correct_module(tmp_path, kind):
    d = tmp_path / "m"
    generate(d, posts())
    hand_module(d, HAND[kind])
    generate(d, posts())
    generate(d, posts("body"))  # a new column: `down` drops it, a DROP COLUMN that re-checks every view
    replayed(d)  # and the real thing runs


def test_a_view_naming_its_table_as_a_string_is_checked_as_sqlite_reads_it(tmp_path):
    """`FROM 'blog_post'` reads the table: a rename rewrites it, a dropped column breaks it."""
    d = tmp_path / "m"
    generate(d, posts("body"))
    module(d, "20990101_000000_01_view", "up = [\"CREATE VIEW bodies AS SELECT body, title FROM 'blog_post'\"]\n")
    generate(d, posts("body"))
    with pytest.raises(GenerateError, match="error in view bodies"):  # the real run would fail the same way
        generate(d, posts())
    generate(d, posts("body", table="blog_article"), renames=Renames.parse(["blog_post:blog_article"]))
    recorded = [line for line in (d / "schema.sql").read_text().splitlines() if "VIEW" in line]
    real = replayed(d).execute("SELECT sql FROM sqlite_master WHERE name = 'bodies'").fetchone()[0]
    assert recorded == [real + ";"] and "blog_article" in real
    assert not generate(d, posts("body", table="blog_article"), write=False).changed


def test_a_view_left_broken_by_a_dropped_table_stops_generate_as_it_would_stop_run(tmp_path):
    d = tmp_path / "m"
    generate(d, posts("body"))
    module(d, "20990101_000000_01_view", 'up = ["CREATE VIEW tag_names AS SELECT name FROM blog_tag"]\n')
    generate(d, posts("body"))
    generate(d, posts("body", tag=False))  # drops blog_tag; SQLite keeps the view, broken
    with pytest.raises(GenerateError, match="error in view tag_names"):
        generate(d, posts(tag=False))  # DROP COLUMN re-checks every view: it would fail on the real database
    generate(d, posts("body", tag=False, title=60))  # a change made in place renames nothing: it passes
    replayed(d)


def blog(**extra) -> ProjectSpec:
    spec = ProjectSpec()
    spec.tables["Author"] = TableSpec("Author", "blog_author", [FieldSpec("name", "char")])
    spec.tables["Tag"] = TableSpec("Tag", "blog_tag", [FieldSpec("name", "char")])
    spec.tables["Post"] = TableSpec("Post", "blog_post", [FieldSpec("author", "fk", target="Author"),
                                                          FieldSpec("title", "char")]
                                    + [FieldSpec(k, kind, **kw) for k, (kind, kw) in extra.items()])
    return spec


@pytest.mark.parametrize("bug, message", [
    ("up", "do not reproduce the models' schema"),
    ("down", "do not restore the previous schema"),
    ("outside", "failed on the empty schema"),
])
@pytest.mark.parametrize("changed_tables_only", [True, False])
def test_a_planner_bug_stops_generate_before_anything_is_written(tmp_path, monkeypatch, bug, message,
                                                                 changed_tables_only):
    d = tmp_path / "m"
    generate(d, build_models(blog()))
    before = sorted(p.name for p in d.iterdir())
    real = gen.plan_changes

    def broken(changes, values):
        plans = real(changes, values)
        if bug == "up":
            plans[0].up = plans[0].up[:-1] + ['ALTER TABLE "blog_post" ADD COLUMN "stray" text']
        elif bug == "down":
            plans[0].down = []
        else:  # a step on a table the change cannot reach: it is not in the part
            plans[0].up = plans[0].up + ['DROP TABLE "blog_tag"']
        return plans

    monkeypatch.setattr(gen, "plan_changes", broken)
    with pytest.raises(GenerateError, match=message):
        generate(d, build_models(blog(body=("text", {"null": True}))), markers=changed_tables_only)
    assert sorted(p.name for p in d.iterdir()) == before


@pytest.mark.parametrize("changed_tables_only", [True, False])
def test_modules_that_reach_no_table_in_common_are_verified_apart(tmp_path, monkeypatch, changed_tables_only):
    """Each group of modules runs on a database holding only the tables it reaches (verify.groups):
    SQLite re-reads the whole schema at each RENAME and DROP COLUMN. One part for all held 3 tables."""
    d = tmp_path / "m"
    generate(d, build_models(blog()))
    seen: dict[tuple[str, str], set[str]] = {}

    class Recording(verify_module.Applier):
        def apply(self, migration, direction="up"):
            names = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                                     "AND name NOT LIKE 'sqlite%'")}
            seen[(migration.table, direction)] = names
            return super().apply(migration, direction)

    monkeypatch.setattr(verify_module, "Applier", Recording)
    spec = blog(body=("text", {"null": True}))
    spec.tables["Tag"].fields.append(FieldSpec("label", "text", null=True))
    result = generate(d, build_models(spec), markers=changed_tables_only)
    assert sorted(m.plan.table for m in result.modules) == ["blog_post", "blog_tag"]
    assert seen == {("blog_post", "up"): {"blog_author", "blog_post"}, ("blog_post", "down"): {"blog_author", "blog_post"},
                    ("blog_tag", "up"): {"blog_tag"}, ("blog_tag", "down"): {"blog_tag"}}
    replayed(d)


def test_modules_naming_or_reaching_a_table_in_common_are_verified_together():
    named = [{"post"}, {"tag"}, {"comment"}, {"new"}, {"author", "writer"}]
    reached = {"post": {"post", "comment", "author"}, "tag": {"tag", "unrelated"}, "comment": {"comment", "post"},
               "new": set(), "author": {"author", "post"}, "writer": set()}

    def reach_of(names):
        return set().union(*(reached[n] for n in names))

    assert groups(named, reach_of) == [[0, 2, 4], [1], [3]]
    assert groups(named + [set()], reach_of) == [[0, 1, 2, 3, 4, 5]]  # a module naming no table: all together
    assert groups(named, lambda names: None) == [[0, 1, 2, 3, 4]]  # a view or trigger in A: all of A
