"""`generate` on the changed tables only (partial.py), from `schema.sql`'s per-table markers
(schemafile.py): the same modules and the same `schema.sql` as the full comparison, for any model
change; and the full comparison whenever a marker cannot be trusted."""

from __future__ import annotations

import os
import shutil
import sqlite3
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tablemigrate.errors import TablemigrateError
from tablemigrate.generate import partial
from tablemigrate.generate import pipeline as gen
from tablemigrate.generate.pipeline import generate
from tablemigrate.history import schemafile
from tablemigrate.sqlite import ddl
from tablemigrate.sqlite.diff import Renames
from tablemigrate.sqlite.introspect import introspect

from .helpers import AutoValue
from .modelgen import FieldSpec, ProjectSpec, TableSpec, build_models
from .strategies import changes, projects

EXAMPLES = int(os.environ.get("TABLEMIGRATE_EXAMPLES", "40"))
NOW = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


def outcome(directory, models, renames: Renames, changed_tables_only: bool):
    """(module names and texts, schema.sql) written by a generate, or the error it raised."""
    try:
        result = generate(directory, models, renames=Renames(dict(renames.tables),
                                                             {k: dict(v) for k, v in renames.columns.items()}),
                          questioner=AutoValue(), now=NOW, markers=changed_tables_only)
    except TablemigrateError as exc:
        return ("error", type(exc).__name__, str(exc))
    return [(m.name, m.text) for m in result.modules], (directory / "schema.sql").read_text()


@pytest.mark.slow
@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_the_changed_tables_give_what_the_whole_schemas_give(data, tmp_path_factory):
    old = data.draw(projects(), label="old")
    new, renames, _done = data.draw(changes(old), label="changes")
    base = tmp_path_factory.mktemp("partial") / "m"
    generate(base, build_models(old), questioner=AutoValue(), now=NOW)
    assert schemafile.read_blocks(base, schemafile.read_header(base)) is not None  # markers were written
    new_models = build_models(new)
    results = []
    for only in (True, False):
        directory = base.parent / f"only-{only}"
        shutil.copytree(base, directory)
        results.append(outcome(directory, new_models, renames, only))
    assert results[0] == results[1]


def blog(*extra: str, author_table: str = "blog_author") -> ProjectSpec:
    spec = ProjectSpec()
    spec.tables["Author"] = TableSpec("Author", author_table, [FieldSpec("name", "char")])
    spec.tables["Post"] = TableSpec("Post", "blog_post", [FieldSpec("author", "fk", target="Author"),
                                                          FieldSpec("title", "char", index=True)]
                                    + [FieldSpec(name, "text", null=True) for name in extra])
    for i in range(5):
        spec.tables[f"Other{i}"] = TableSpec(f"Other{i}", f"blog_other{i}", [FieldSpec("x", "int")])
    return spec


def parsed_tables(monkeypatch) -> list[str]:
    """The tables `generate` parses from now on (lower-case names)."""
    seen: list[str] = []
    real = gen.introspect

    def spy(conn):
        schema = real(conn)
        seen.extend(schema.tables)
        return schema
    monkeypatch.setattr(gen, "introspect", spy)
    monkeypatch.setattr(partial, "introspect", spy)
    from tablemigrate.generate import verify
    monkeypatch.setattr(verify, "introspect", spy)
    return seen


def test_only_the_changed_table_and_its_neighbours_are_built_and_parsed(tmp_path, monkeypatch):
    d = tmp_path / "m"
    generate(d, build_models(blog()))
    monkeypatch.setattr(gen, "_database_a", lambda *a: pytest.fail("built the whole database A"))
    seen = parsed_tables(monkeypatch)
    result = generate(d, build_models(blog("body")))
    assert [m.plan.summary for m in result.modules] == [["add column body"]]
    # the post table on both sides, then its part (itself and its parent) before, after the up and
    # after the down; the five other tables never
    assert set(seen) == {"blog_post", "blog_author"} and "blog_other0" not in seen
    assert not generate(d, build_models(blog("body")), write=False).changed


def test_a_table_renamed_makes_its_children_changed_too(tmp_path):
    d = tmp_path / "m"
    generate(d, build_models(blog()))
    renames = Renames.parse(["blog_author:blog_writer"])
    result = generate(d, build_models(blog(author_table="blog_writer")), renames=renames)
    assert [m.name.split("_", 3)[-1] for m in result.modules] == ["rename_blog_writer"]
    assert not generate(d, build_models(blog(author_table="blog_writer")), write=False).changed
    blocks = schemafile.read_blocks(d, schemafile.read_header(d))
    assert blocks is not None and blocks["blog_post"].refs == ("blog_writer",)


def full_comparison_runs(monkeypatch) -> list[int]:
    runs: list[int] = []
    real = gen._database_a
    monkeypatch.setattr(gen, "_database_a", lambda *a: runs.append(1) or real(*a))
    return runs


@pytest.mark.parametrize("tamper", ["body", "marker", "drop block", "version", "old format"])
def test_a_snapshot_whose_markers_cannot_be_trusted_takes_the_full_comparison(tmp_path, monkeypatch, tamper):
    d = tmp_path / "m"
    generate(d, build_models(blog()))
    intact = generate(d, build_models(blog("body")), write=False, now=NOW)
    snapshot = d / "schema.sql"
    text = snapshot.read_text()
    if tamper == "body":  # a hand edit: the table's text no longer matches its marker
        text = text.replace('"name" varchar(30) NOT NULL', '"name" varchar(31) NOT NULL')
    elif tamper == "marker":  # the marker claims other statements
        text = text.replace('"ddl": ["', '"ddl": ["0', 1)
    elif tamper == "drop block":  # a table's block removed: the blocks no longer give the header's schema
        start = text.index('-- table {"name": "blog_other3"')
        text = text[:start] + text[text.index("-- table ", start + 1):]
    elif tamper == "version":  # markers written by another tablemigrate
        text = text.replace(f"-- tables: {schemafile.markers_format()}", "-- tables: 0-0.0.1")
    else:  # schema.sql written before markers existed
        text = "\n".join(line for line in text.splitlines() if not line.startswith("-- table")) + "\n"
    assert text != snapshot.read_text()
    snapshot.write_text(text)
    assert schemafile.read_blocks(d, schemafile.read_header(d)) is None
    runs = full_comparison_runs(monkeypatch)
    again = generate(d, build_models(blog("body")), write=False, now=NOW)
    assert runs == [1]
    assert [m.text for m in again.modules] == [m.text for m in intact.modules]
    generate(d, build_models(blog("body")))  # writes trusted markers again
    assert schemafile.read_blocks(d, schemafile.read_header(d)) is not None


def test_a_marker_like_line_inside_a_literal_is_never_taken_for_a_marker(tmp_path):
    """A table's text can hold anything in a string literal, a line that looks like a marker included:
    the block it would split fails its check, and the file is read as SQL."""
    conn = sqlite3.connect(":memory:")
    fake = schemafile.MARKER + '{"name": "t2", "digest": "x", "ddl": [], "refs": [], "check": "y"}'
    conn.execute(f"CREATE TABLE t (x text CHECK (x <> '\n{fake}\n'))")
    conn.execute("CREATE TABLE u (y int)")
    schema = introspect(conn)
    d = tmp_path / "m"
    d.mkdir()
    (d / "schema.sql").write_text(schemafile.render(schema, "h", ddl_of={}))
    assert schemafile.read_blocks(d, schemafile.read_header(d)) is None
    conn.execute("DROP TABLE t")
    (d / "schema.sql").write_text(schemafile.render(introspect(conn), "h", ddl_of={}))
    assert set(schemafile.read_blocks(d, schemafile.read_header(d))) == {"u"}


def test_no_markers_for_a_schema_with_views_or_triggers(tmp_path):
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (x int)")
    conn.execute("CREATE VIEW v AS SELECT x FROM t")
    d = tmp_path / "m"
    d.mkdir()
    (d / "schema.sql").write_text(schemafile.render(introspect(conn), "h", ddl_of={}))
    assert schemafile.MARKER not in (d / "schema.sql").read_text()
    assert schemafile.read_blocks(d, schemafile.read_header(d)) is None


def test_statement_table_reads_djangos_statements_and_nothing_else():
    assert ddl.statement_table('CREATE TABLE "a ""b" ("id" integer)') == 'a "b'
    assert ddl.statement_table('CREATE UNIQUE INDEX "i" ON "t x" ("c")') == "t x"
    assert ddl.statement_table('CREATE INDEX "i" ON "main"."t" ("c")') is None
    assert ddl.statement_table("ALTER TABLE t ADD COLUMN c") is None


def test_a_new_index_on_a_table_whose_other_statements_are_unchanged_is_found(tmp_path):
    """`db_index` adds a statement and changes no other: the table's marker still finds every statement
    it lists, but the new one names the table, so it is compared."""
    d = tmp_path / "m"
    generate(d, build_models(blog("body")))
    indexed = blog("body")
    indexed.tables["Post"].field("body").index = True
    result = generate(d, build_models(indexed))
    assert [m.plan.summary for m in result.modules] == [[next(
        s for s in result.modules[0].plan.summary if s.startswith("add index"))]]
    assert not generate(d, build_models(indexed), write=False).changed


# Found by an independent review: each case runs both ways on copies of one directory.

def _make(author_table="blog_author", post=True, author_meta=None, other_meta=None):
    from django.apps.registry import Apps
    from django.db import models

    global _made
    _made = globals().get("_made", 0) + 1
    reg, label = Apps(), f"review{_made}"

    def model(name, table, fields, meta=None):
        attrs = {"__module__": "x", **fields,
                 "Meta": type("Meta", (), {"app_label": label, "apps": reg, "db_table": table, **(meta or {})})}
        return type(name, (models.Model,), attrs)
    author = model("Author", author_table, {"name": models.CharField(max_length=30)}, author_meta)
    out = [author, model("Other", "blog_other", {"x": models.IntegerField()}, other_meta)]
    if post:
        out.append(model("Post", "blog_post", {
            "author": models.ForeignKey(author, on_delete=models.CASCADE, related_name="+"),
            "title": models.CharField(max_length=30, db_index=True)}))
    return out


def _both_ways(d, models_, **kw):
    out = []
    for only in (True, False):
        copy = d.parent / f"{d.name}-{only}"
        shutil.copytree(d, copy)
        try:
            result = generate(copy, models_, questioner=AutoValue(), markers=only, **kw)
            out.append(([x.name for x in result.modules], (copy / "schema.sql").read_text()))
        except (TablemigrateError, sqlite3.Error) as exc:
            out.append(("error", type(exc).__name__, str(exc)))
    return out


def test_a_table_handed_to_its_django_migrations_keeps_no_statement_keys(tmp_path, monkeypatch):
    """Its app keeps its own migrations, so no model of tablemigrate's builds it: SQLite's RENAME of the
    table it references rewrote it, and when the app is handed back it must be compared, not taken as
    unchanged by the keys it had before."""
    d = tmp_path / "m"
    generate(d, _make(), now=NOW)
    generate(d, _make(author_table="blog_writer", post=False), renames=Renames.parse(["blog_author:blog_writer"]),
             foreign=frozenset({"blog_post"}), questioner=AutoValue(), now=NOW.replace(hour=13))
    blocks = schemafile.read_blocks(d, schemafile.read_header(d))
    assert blocks is not None and blocks["blog_post"].ddl == ()
    partial_result, full_result = _both_ways(d, _make(), now=NOW.replace(hour=14))
    assert partial_result == full_result
    assert any("update_blog_post" in name for name in partial_result[0])


def test_an_index_text_ending_in_a_comment_is_written_so_that_it_runs(tmp_path, monkeypatch):
    from django.db import models

    d = tmp_path / "m"
    generate(d, _make(), now=NOW)
    (d / "20260501_130000_hand_index.py").write_text(
        'up = ["CREATE INDEX hand_idx ON blog_other (x) -- reports"]\ndown = ["DROP INDEX hand_idx"]\n')
    one = {"indexes": [models.Index(fields=["x"], name="hand_idx")]}
    generate(d, _make(other_meta=one), now=NOW.replace(hour=14))
    assert "-- reports\n;" in (d / "schema.sql").read_text()
    two = {"indexes": [models.Index(fields=["x"], name="hand_idx"), models.Index(fields=["id", "x"], name="ix2")]}
    partial_result, full_result = _both_ways(d, _make(other_meta=two), now=NOW.replace(hour=15))
    assert partial_result == full_result and partial_result[0] != "error"


def test_a_new_index_named_like_an_unchanged_tables_is_refused_as_the_full_build_refuses_it(tmp_path, monkeypatch):
    from django.db import models

    d = tmp_path / "m"
    shared = {"indexes": [models.Index(fields=["x"], name="shared_ix")]}
    generate(d, _make(other_meta=shared), now=NOW)
    clash = _make(other_meta=shared, author_meta={"indexes": [models.Index(fields=["name"], name="shared_ix")]})
    partial_result, full_result = _both_ways(d, clash, now=NOW.replace(hour=13))
    assert partial_result == full_result and partial_result[0] == "error"
