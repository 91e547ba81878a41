"""`schema.sql` changes only when the schema does: no line of it depends on the package's version, an
older release's file is read as SQL (the full comparison) and rewritten once, and the demo leaves the
checkout as it found it."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import datetime, timezone

import pytest

from tablemigrate.generate import pipeline as gen
from tablemigrate.generate.pipeline import generate
from tablemigrate.history import schemafile
from tablemigrate.sqlite import schema as schema_model
from tablemigrate.sqlite.introspect import introspect

from .helpers import ROOT
from .modelgen import FieldSpec, ProjectSpec, TableSpec, build_models

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def blog(*extra: str) -> list:
    spec = ProjectSpec()
    spec.tables["Author"] = TableSpec("Author", "blog_author", [FieldSpec("name", "char", unique=True)])
    spec.tables["Post"] = TableSpec("Post", "blog_post", [FieldSpec("author", "fk", target="Author"),
                                                          FieldSpec("title", "char", index=True)]
                                    + [FieldSpec(name, "text", null=True) for name in extra])
    return build_models(spec)


def as_release(monkeypatch, version: str) -> None:
    """This process behaves as tablemigrate `version`: every module of the package that holds the
    package's version holds this one."""
    for name, module in list(sys.modules.items()):
        if (name == "tablemigrate" or name.startswith("tablemigrate.")) and hasattr(module, "__version__"):
            monkeypatch.setattr(module, "__version__", version)


def full_comparisons(monkeypatch) -> list[int]:
    runs: list[int] = []
    real = gen._database_a
    monkeypatch.setattr(gen, "_database_a", lambda *a: runs.append(1) or real(*a))
    return runs


def test_the_same_schema_gives_a_byte_identical_schema_sql_under_two_releases(tmp_path, monkeypatch):
    written = []
    for version in ("0.1.0", "7.3.1"):
        as_release(monkeypatch, version)
        d = tmp_path / version
        generate(d, blog(), now=NOW)
        written.append((d / "schema.sql").read_bytes())
    assert written[0] == written[1]
    assert b"0.1.0" not in written[0]


def test_an_upgrade_trusts_and_keeps_the_schema_sql_an_older_release_wrote(tmp_path, monkeypatch):
    d = tmp_path / "m"
    as_release(monkeypatch, "0.1.0")
    generate(d, blog(), now=NOW)
    before = (d / "schema.sql").read_bytes()
    as_release(monkeypatch, "0.2.0")
    runs = full_comparisons(monkeypatch)
    assert generate(d, blog(), now=NOW).modules == []  # `generate` with nothing to do writes the file again
    assert (d / "schema.sql").read_bytes() == before
    (module,) = generate(d, blog("body"), now=NOW).modules
    assert module.plan.summary == ["add column body"]
    assert runs == []  # the markers were trusted: only blog_post (and its parent) compared


def test_a_schema_sql_written_by_tablemigrate_0_1_0_is_read_as_sql_and_then_rewritten(tmp_path, monkeypatch):
    """0.1.0 wrote its own version into the `tables` line (and its `ddl` digest): another release's
    markers, not trusted; the full comparison gives the same result, and the file is rewritten once."""
    d = tmp_path / "m"
    generate(d, blog(), now=NOW)
    current = (d / "schema.sql").read_text()
    old = current.replace(f"-- tables: {schemafile.markers_format()}", "-- tables: 3-0.1.0")
    old = old.replace(f"-- ddl: {schemafile.read_header(d)['ddl']}", "-- ddl: " + "0" * 64)
    assert old != current
    (d / "schema.sql").write_text(old)
    assert schemafile.read_blocks(d, schemafile.read_header(d)) is None
    intact = tmp_path / "intact"
    generate(intact, blog(), now=NOW)
    expected = [m.text for m in generate(intact, blog("body"), now=NOW, write=False).modules]
    runs = full_comparisons(monkeypatch)
    assert [m.text for m in generate(d, blog("body"), now=NOW, write=False).modules] == expected
    assert runs == [1]
    assert generate(d, blog(), now=NOW).modules == []
    assert (d / "schema.sql").read_text() == current  # rewritten in this format, trusted from now on
    assert schemafile.read_blocks(d, schemafile.read_header(d)) is not None


# The digests of SAMPLE's tables under DIGEST_FORMAT 1. A change of the schema model, the parser or the
# digest that changes one of them changes what schema.sql's markers mean: bump DIGEST_FORMAT (every
# project's schema.sql is then rewritten once by its next `generate`) and record the new digests here.
SAMPLE = """
CREATE TABLE "a" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" varchar(30) NOT NULL UNIQUE,
    "n" integer NULL CHECK ("n" >= 0), "t" text COLLATE NOCASE DEFAULT 'x' NOT NULL);
CREATE TABLE "b" ("id" integer NOT NULL PRIMARY KEY, "a_id" bigint NOT NULL REFERENCES "a" ("id")
    DEFERRABLE INITIALLY DEFERRED, "v" real GENERATED ALWAYS AS ("id" * 2) VIRTUAL,
    CONSTRAINT "b_pos" CHECK ("id" > 0));
CREATE INDEX "b_a_id" ON "b" ("a_id");
CREATE UNIQUE INDEX "b_partial" ON "b" ("a_id") WHERE "id" > 10;
CREATE INDEX "b_expr" ON "b" ((lower("v")), "id" DESC);
"""
DIGESTS = {1: {"a": "58f3dea67ea66a26c4dd5dcfbb27ebe955e3b00a4ecb59e505411aec9cc9ce09",
                "b": "d68d9bd1e443d114a804a55fe32bc9aba83a1a1a1894652697066a1b48e23039"}}


def test_the_digests_schema_sql_holds_mean_what_their_format_says():
    conn = sqlite3.connect(":memory:")
    conn.executescript(SAMPLE)
    schema = introspect(conn)
    digests = {k: schema_model.table_digest(t) for k, t in schema.tables.items()}
    assert digests == DIGESTS[schema_model.DIGEST_FORMAT], (
        "a table's digest changed: bump DIGEST_FORMAT (tablemigrate/sqlite/schema.py) and record the new digests")


@pytest.mark.subprocess
def test_the_demo_shows_a_change_and_leaves_the_checkout_as_it_found_it(tmp_path):
    """scripts/demo on a copy of this checkout (a git repository of its own), its virtualenv this
    interpreter (pip install left out: the copy is on PYTHONPATH, as the editable install puts it)."""
    checkout = tmp_path / "checkout"
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, checkout / name)
    python = checkout / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(f'#!/bin/sh\n[ "$1 $2" = "-m pip" ] && exit 0\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "checkout"]):
        subprocess.run(git + args, cwd=checkout, check=True, capture_output=True)
    (tmp_path / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXAMPLE_", "DJANGO_SETTINGS"))}
    env.update(PYTHONPATH=str(checkout), PYTHONDONTWRITEBYTECODE="1", TMPDIR=str(tmp_path / "tmp"))
    demo = subprocess.run(["sh", "scripts/demo"], cwd=checkout, env=env, capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "add column summary" in demo.stdout and "Applied" in demo.stdout, demo.stdout
    assert "RebuildTable(" in demo.stdout  # the module it wrote, shown
    status = subprocess.run(["git", "status", "--porcelain", "--ignored"], cwd=checkout, capture_output=True,
                            text=True, check=True).stdout
    assert status.splitlines() == ["!! .venv/"], status
    (copy,) = (tmp_path / "tmp").glob("tablemigrate-demo.*")  # the demo's project: its database has the new column
    conn = sqlite3.connect(copy / "example_project" / "db.sqlite3")
    try:
        assert "summary" in {r[1] for r in conn.execute("PRAGMA table_info(posts_post)")}
    finally:
        conn.close()
