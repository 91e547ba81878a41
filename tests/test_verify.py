"""generate's verification (verify.py): the new modules run on the part of database A they reach, and
a planner bug still stops generate before anything is written."""

from __future__ import annotations

import sqlite3

import pytest

from tablemigrate import generate as gen
from tablemigrate.errors import GenerateError
from tablemigrate.generate import generate
from tablemigrate.introspect import introspect
from tablemigrate.verify import part_of, reach

from .modelgen import FieldSpec, ProjectSpec, TableSpec, build_models

SCHEMA = [
    'CREATE TABLE "author" ("id" integer PRIMARY KEY)',
    'CREATE TABLE "post" ("id" integer PRIMARY KEY, "author_id" integer REFERENCES "author" ("id"), "body" text)',
    'CREATE TABLE "comment" ("id" integer PRIMARY KEY, "post_id" integer REFERENCES "post" ("id"))',
    'CREATE TABLE "tag" ("id" integer PRIMARY KEY, "name" text)',
    'CREATE TABLE "unrelated" ("id" integer PRIMARY KEY, "tag_id" integer REFERENCES "tag" ("id"))',
    'CREATE TABLE "audit" ("id" integer PRIMARY KEY, "what" text)',
    'CREATE INDEX "post_body" ON "post" ("body")',
    'CREATE INDEX "unrelated_tag" ON "unrelated" ("tag_id")',
    'CREATE VIRTUAL TABLE "post_fts" USING fts5(body)',
    'CREATE TRIGGER "post_indexed" AFTER INSERT ON "post" BEGIN INSERT INTO post_fts (body) VALUES (new.body); END',
    'CREATE TRIGGER "tag_audited" AFTER INSERT ON "tag" BEGIN INSERT INTO audit (what) VALUES (new.name); END',
    'CREATE VIEW "post_tags" AS SELECT p.id, t.name FROM post p, tag t',
]


def database() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    for sql in SCHEMA:
        conn.execute(sql)
    return conn


def test_the_part_holds_what_a_change_of_the_tables_can_reach():
    conn = database()
    tables, dependents = reach(introspect(conn), {"post"})
    # post; comment (its foreign key names post: RENAME rewrites it); author (post's parent); the FTS
    # table post's trigger writes; the view over post, and tag, which the view reads, with what names
    # tag (its trigger, and the audit table that writes to). Not unrelated, which only refers to tag.
    assert tables == {"post", "comment", "author", "post_fts", "tag", "audit"}
    assert dependents == {"post_indexed", "post_tags", "tag_audited"}
    part = part_of(conn, introspect(conn), ["post"])
    names = {r[0] for r in part.execute("SELECT name FROM sqlite_master")}
    assert {"post", "comment", "author", "tag", "post_fts", "post_body", "post_indexed", "post_tags"} <= names
    assert not names & {"unrelated", "unrelated_tag"}
    part.execute("ALTER TABLE post RENAME TO article")  # everything it rewrites is there
    assert "article" in part.execute("SELECT sql FROM sqlite_master WHERE name = 'comment'").fetchone()[0]


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
def test_a_planner_bug_stops_generate_before_anything_is_written(tmp_path, monkeypatch, bug, message):
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
        generate(d, build_models(blog(body=("text", {"null": True}))))
    assert sorted(p.name for p in d.iterdir()) == before
