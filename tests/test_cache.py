"""The one cache module (cache.py): keyed by content, private, and never trusted when it is not ours."""

from __future__ import annotations

import os
import pickle
import stat
import tempfile

import pytest

from tablemigrate import cache, introspect
from tablemigrate.generate import generate

from .modelgen import FieldSpec, ProjectSpec, TableSpec, build_models


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
    from tablemigrate.schema import Column

    col = Column("a", "text", False, None, 0, None)
    calls: list[int] = []
    before = cache.computed
    assert cache.derived(col, "_probe", lambda c: calls.append(1) or c.name.upper()) == "A"
    assert cache.derived(col, "_probe", lambda c: calls.append(1) or "other") == "A"
    assert calls == [1] and cache.computed == before + 1
