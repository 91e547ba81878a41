"""The one cache module (cache.py): keyed by content, private, and never trusted when it is not ours."""

from __future__ import annotations

import os
import pickle
import sqlite3
import stat
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings

from tablemigrate.generate.pipeline import generate
from tablemigrate.sqlite import cache, introspect

from .modelgen import FieldSpec, ProjectSpec, TableSpec, build_models
from .test_changes import tables


def blog(*extra: str) -> list:
    spec = ProjectSpec()
    spec.tables["Post"] = TableSpec("Post", "blog_post", [FieldSpec("title", "char")]
                                    + [FieldSpec(name, "text", null=True) for name in extra])
    return build_models(spec)


@pytest.fixture
def tmpdir_cache(tmp_path, monkeypatch):
    """A TMPDIR of the test's own, and a process that has parsed nothing yet."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(cache, "_TABLES", {})
    return tmp_path / "tmp"


def parses(monkeypatch) -> list[str]:
    seen: list[str] = []
    real = introspect._introspect_table
    monkeypatch.setattr(introspect, "_introspect_table",
                        lambda conn, name, sql, *a: seen.append(sql) or real(conn, name, sql, *a))
    return seen


def test_parsed_tables_are_kept_for_the_next_run_in_a_private_file(tmp_path, tmpdir_cache, monkeypatch):
    d = tmp_path / "m"
    generate(d, blog())
    file = cache.path(d, ".pickle")
    assert stat.S_IMODE(file.parent.stat().st_mode) == 0o700 and stat.S_IMODE(file.stat().st_mode) == 0o600
    monkeypatch.setattr(cache, "_TABLES", {})  # the next process
    seen = parses(monkeypatch)
    assert not generate(d, blog(), write=False).changed
    cache._TABLES.clear()  # and the next
    generate(d, blog("body"), write=False)
    # Only the new texts are parsed: B's changed table and A's after the new module. The A it started
    # from is in the cache, though the run before (a --check with nothing to do) never built A.
    assert len(seen) == 2 and all('"body"' in sql for sql in seen)


def test_a_cache_of_another_format_or_not_private_is_not_read(tmp_path, tmpdir_cache, monkeypatch):
    d = tmp_path / "m"
    generate(d, blog())
    file = cache.path(d, ".pickle")
    stamp, tables = pickle.loads(file.read_bytes())
    file.write_bytes(pickle.dumps(((cache.FORMAT - 1,) + stamp[1:], tables)))
    monkeypatch.setattr(cache, "_TABLES", {})
    seen = parses(monkeypatch)
    generate(d, blog("body"), write=False)
    assert len(seen) == 3  # another format: parsed again, A before the change too
    assert pickle.loads(file.read_bytes())[0] == stamp  # and rewritten in this one
    os.chmod(file.parent, 0o755)  # someone else could have written it now
    monkeypatch.setattr(cache, "_TABLES", {})
    seen.clear()
    a_files = list(file.parent.glob("*-A-*.sqlite3"))
    before = {p: p.stat().st_mtime_ns for p in [file, *a_files]}
    generate(d, blog("body", "rank"), write=False)
    assert len(seen) == 3
    assert {p: p.stat().st_mtime_ns for p in [file, *a_files]} == before  # nothing read is trusted, nothing written
    assert not cache.load_database_a(d, (d / "schema.sql").read_bytes(), __import__("sqlite3").connect(":memory:"))


def test_derived_values_are_computed_once_per_value():
    from tablemigrate.sqlite.schema import Column

    col = Column("a", "text", False, None, 0, None)
    calls: list[int] = []
    before = cache.computed
    assert cache.derived(col, "_probe", lambda c: calls.append(1) or c.name.upper()) == "A"
    assert cache.derived(col, "_probe", lambda c: calls.append(1) or "other") == "A"
    assert calls == [1] and cache.computed == before + 1


def test_a_run_that_parses_nothing_never_reads_the_pickle(tmp_path, tmpdir_cache, monkeypatch):
    d = tmp_path / "m"
    generate(d, blog())
    monkeypatch.setattr(cache, "_TABLES", {})  # the next process: a --check with nothing to do
    monkeypatch.setattr(pickle, "load", lambda fh: pytest.fail("read the pickle"))
    assert not generate(d, blog(), write=False).changed
    monkeypatch.undo()
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir_cache))
    monkeypatch.setattr(cache, "_TABLES", {})
    loads = []
    real = pickle.load
    monkeypatch.setattr(pickle, "load", lambda fh: loads.append(1) or real(fh))
    generate(d, blog("body"), write=False)  # tables to parse: read once, at the first
    assert loads == [1]


HOSTILE = [
    'CREATE TABLE "we""ird ""t""" ("i""d" integer PRIMARY KEY, "v""al" text  NOT   NULL /* a comment, (with) "quotes" */)',
    'CREATE TABLE "sp ace" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "a" varchar(10) COLLATE NOCASE '
    "DEFAULT 'x,\n y', \"b\" integer CHECK (\"b\" > 0 AND \"a\" <> ')'), \"c\" integer GENERATED ALWAYS AS "
    '("b" * 2) VIRTUAL, CONSTRAINT "u1" UNIQUE ("a", "b"), CHECK (length("a") < 5))',
    'CREATE TABLE kid (id INTEGER PRIMARY KEY, p INTEGER REFERENCES "sp ace" (id) ON DELETE CASCADE DEFERRABLE '
    'INITIALLY DEFERRED, q text, FOREIGN KEY (q) REFERENCES "we""ird ""t""" ("i""d")) WITHOUT ROWID',
    'CREATE TABLE s (a INT PRIMARY KEY, b TEXT) STRICT',
    'CREATE TABLE "t" ("id" integer NOT NULL PRIMARY KEY, "n" bigint NULL -- trailing\n, "m" text)',
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(extra=tables())
def test_a_table_laid_out_one_column_per_line_is_the_same_table(extra, monkeypatch):
    """What database A is made of (the statement laid out by `pretty_create_table`) is read from the
    parse of database B's one-line text: every field, the text-only ones included, must be what parsing
    the laid-out text itself gives."""
    from tablemigrate.sqlite import sqltext

    monkeypatch.setattr(cache, "_TABLES", {})
    monkeypatch.setattr(cache, "_SAME_NAME", {})
    for sql in HOSTILE + [s for s in extra if s.startswith("CREATE TABLE")]:
        one_line, laid_out = sqlite3.connect(":memory:"), sqlite3.connect(":memory:")
        one_line.execute(sql)
        laid_out.execute(sqltext.pretty_create_table(sql))
        first = introspect.introspect(one_line)
        [name] = first.tables
        parse = introspect._introspect_table
        with monkeypatch.context() as m:
            m.setattr(introspect, "_introspect_table", lambda *a: pytest.fail("parsed the laid-out text"))
            twin = introspect.introspect(laid_out).tables[name]  # from the cache: first's parse, laid out
        real = parse(laid_out, first.tables[name].name,
                                            laid_out.execute("SELECT sql FROM sqlite_master").fetchone()[0], [])
        assert repr(twin) == repr(real) and twin == real
        assert twin is not first.tables[name] and twin.sql == real.sql
