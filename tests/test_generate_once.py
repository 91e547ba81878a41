"""Issue 24: one `generate` does each piece of work once: the diff (and the rename checks inside it),
each module's rendering and loading, the build of database A, the read of each module file."""

from __future__ import annotations

import collections
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tablemigrate.generate import pipeline as gen
from tablemigrate.generate import writer
from tablemigrate.generate.pipeline import generate
from tablemigrate.history import loader
from tablemigrate.project import build
from tablemigrate.sqlite import diff

from .helpers import AutoValue
from .modelgen import FieldSpec, ProjectSpec, TableSpec, build_models

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)


def shop(*extra: str) -> list:
    spec = ProjectSpec()
    spec.tables["Author"] = TableSpec("Author", "shop_author", [FieldSpec("name", "char")])
    spec.tables["Post"] = TableSpec("Post", "shop_post", [FieldSpec("author", "fk", target="Author"),
                                                          FieldSpec("title", "char")]
                                    + [FieldSpec(name, "text", null=True) for name in extra])
    spec.tables["Other"] = TableSpec("Other", "shop_other", [FieldSpec("x", "char")])
    return build_models(spec)


def counted(monkeypatch, counts: collections.Counter, module, name: str, key: str | None = None) -> None:
    """`module.name` wrapped to count its calls under `key` (nothing when the module has no such name)."""
    real = getattr(module, name, None)
    if real is None:
        return

    def wrapper(*args, **kwargs):
        counts[key or name] += 1
        return real(*args, **kwargs)
    monkeypatch.setattr(module, name, wrapper)


def count_work(monkeypatch, directory: Path, models: list = ()) -> collections.Counter:
    """Counts, from now on: diffs, rename checks, module renders, module loads (the `exec` of a module's
    text), runs of a CREATE statement of an unchanged table (`shop_other`) other than the models' own
    (database B's): a build of database A from text, the whole of it; and reads of module files."""
    b_statements = {s.strip() for s in build.model_sql(build.unconnected_wrapper(), models)}
    counts: collections.Counter = collections.Counter()
    for module in (gen, diff):  # the name in each module that calls it
        counted(monkeypatch, counts, module, "diff_schemas")
        counted(monkeypatch, counts, module, "check_renames")
    counted(monkeypatch, counts, gen, "render_module", "render")
    counted(monkeypatch, counts, gen, "render_parts", "render")

    def exec_counted(code, namespace, *rest):
        counts["exec"] += namespace.get("__name__", "").startswith("tablemigrations.")
        return exec(code, namespace, *rest)
    monkeypatch.setattr(loader, "exec", exec_counted, raising=False)

    real_read = Path.read_bytes

    def read_bytes(path):
        if path.parent == directory and path.suffix == ".py":
            counts["file reads"] += 1
        return real_read(path)
    monkeypatch.setattr(Path, "read_bytes", read_bytes)

    real_connect = sqlite3.connect

    def connect(*args, **kwargs):
        conn = real_connect(*args, **kwargs)

        def trace(sql: str) -> None:
            words = " ".join(line for line in sql.splitlines() if not line.lstrip().startswith("--")).split()
            if words[:3] == ["CREATE", "TABLE", '"shop_other"'] and sql.strip() not in b_statements:
                counts["A builds"] += 1
        conn.set_trace_callback(trace)
        return conn
    monkeypatch.setattr(sqlite3, "connect", connect)
    monkeypatch.setattr(sqlite3.dbapi2, "connect", connect)
    return counts


@pytest.mark.parametrize("markers", [True, False], ids=["changed-tables", "whole-schemas"])
def test_one_generate_diffs_renders_and_loads_once(tmp_path, monkeypatch, markers):
    d = tmp_path / "m"
    generate(d, shop())
    generate(d, shop("body"))
    models = shop("body", "note")
    counts = count_work(monkeypatch, d, models)
    result = generate(d, models, questioner=AutoValue(), write=False, **({} if markers else {"markers": False}))
    assert [m.plan.summary for m in result.modules] == [["add column note"]]
    assert counts["diff_schemas"] == 1  # BASE: 4 (the rename questions, the plan, the candidates not asked)
    assert counts["check_renames"] == 1  # BASE: 5
    assert counts["render"] == 1  # BASE: 2 (before the shapes were known, and after)
    assert counts["exec"] == 1  # BASE: 2
    # Database A: its part (changed tables) from the markers, or all of it from schema.sql, once.
    assert counts["A builds"] == (0 if markers else 1)
    assert counts["file reads"] == len(list(d.glob("*.py")))  # each module file once (`recorded_files`)


def test_the_module_rendered_once_is_the_one_render_module_gives(tmp_path):
    """The shapes, known only after the module ran, go between the parts rendered before."""
    d = tmp_path / "m"
    generate(d, shop())
    result = generate(d, shop("body"), questioner=AutoValue(), write=False, now=NOW)
    [module] = result.modules
    assert module.plan.before is not None and module.plan.after is not None
    assert module.text == writer.render_module(module.plan, "", NOW)


def test_a_rename_accepted_computes_the_diff_again_and_only_then(tmp_path, monkeypatch):
    """The diff is read again only when the renames changed: after a table rename is accepted (and the
    renames that go with it are carried)."""
    from tablemigrate.generate.pipeline import Questioner

    class Yes(Questioner):
        interactive = True

        def confirm(self, question: str) -> bool:
            return True

    d = tmp_path / "m"
    generate(d, shop())
    spec = ProjectSpec()
    spec.tables["Author"] = TableSpec("Author", "shop_writer", [FieldSpec("name", "char")])
    spec.tables["Post"] = TableSpec("Post", "shop_post", [FieldSpec("author", "fk", target="Author"),
                                                          FieldSpec("title", "char")])
    spec.tables["Other"] = TableSpec("Other", "shop_other", [FieldSpec("x", "char")])
    counts = count_work(monkeypatch, d)
    result = generate(d, build_models(spec), questioner=Yes(), write=False)
    assert [m.plan.verb for m in result.modules if m.plan.table == "shop_writer"] == ["rename"]
    assert counts["diff_schemas"] == 2  # before the question, and after the rename it accepted
    assert counts["check_renames"] == 2
