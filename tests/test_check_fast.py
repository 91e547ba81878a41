"""`generate --check` on a fresh checkout with nothing to do: known from the models' DDL and the
`ddl` line of `schema.sql`, without building either database."""

from __future__ import annotations

import pytest

from tablemigrate.generate import pipeline as gen
from tablemigrate.generate.pipeline import generate
from tablemigrate.history.schemafile import read_header
from tablemigrate.project import build

from .helpers import module
from .modelgen import FieldSpec, ProjectSpec, TableSpec, build_models


def blog(*extra: str) -> list:
    spec = ProjectSpec()
    spec.tables["Author"] = TableSpec("Author", "blog_author", [FieldSpec("name", "char")])
    spec.tables["Post"] = TableSpec("Post", "blog_post", [FieldSpec("author", "fk", target="Author"),
                                                          FieldSpec("title", "char")]
                                    + [FieldSpec(name, "text", null=True) for name in extra])
    return build_models(spec)


def forbid_building(monkeypatch) -> None:
    from tablemigrate.generate import partial

    monkeypatch.setattr(gen, "build_from_models", lambda *a, **k: pytest.fail("built database B"))
    monkeypatch.setattr(partial, "build_from_models", lambda *a, **k: pytest.fail("built database B"))
    monkeypatch.setattr(gen, "_database_a", lambda *a, **k: pytest.fail("built database A"))


def test_check_with_nothing_to_do_builds_neither_database(tmp_path, monkeypatch):
    d = tmp_path / "m"
    generate(d, blog())
    header = read_header(d)
    assert header["ddl"] == build.model_sql_digest(build.model_sql(build.unconnected_wrapper(), blog()))
    with monkeypatch.context() as m:
        forbid_building(m)
        assert not generate(d, blog(), write=False).changed
        # Another model: other DDL, so the databases are built and the change is found.
        with pytest.raises(BaseException, match="built database B"):
            generate(d, blog("body"), write=False)
    assert [m.plan.summary for m in generate(d, blog("body"), write=False).modules] == [["add column body"]]
    # After the change is generated, the line is that of the new models.
    generate(d, blog("body"))
    assert read_header(d)["ddl"] != header["ddl"]
    forbid_building(monkeypatch)
    assert not generate(d, blog("body"), write=False).changed


def test_no_ddl_line_when_the_history_is_more_than_the_models(tmp_path, monkeypatch):
    """A hand-written trigger is in the history's schema and in no model's DDL: the DDL does not build
    the schema `schema.sql` records, so it gets no `ddl` line, and `--check` compares databases."""
    d = tmp_path / "m"
    generate(d, blog())
    module(d, "20990101_000000_01_trigger", 'table = "blog_post"\nup = ["CREATE TRIGGER t AFTER INSERT ON '
           'blog_post BEGIN SELECT 1; END"]\ndown = ["DROP TRIGGER t"]\n')
    generate(d, blog())  # rewrites schema.sql for the new history
    assert "ddl" not in read_header(d)
    built = []
    real = gen.build_from_models
    monkeypatch.setattr(gen, "build_from_models", lambda *a, **k: built.append(1) or real(*a, **k))
    assert not generate(d, blog(), write=False).changed and built == [1]


def test_a_ddl_line_for_other_models_is_not_trusted(tmp_path, monkeypatch):
    """The line counts only with the header's `models` and `history` lines: a `ddl` line copied from
    another project's header (or edited) to match the current models, while the `models` line still
    records the models the history was generated for, sends `--check` down the full comparison."""
    d = tmp_path / "m"
    generate(d, blog("body"))
    generate(tmp_path / "other", blog())
    other = read_header(tmp_path / "other")["ddl"]
    text = (d / "schema.sql").read_text()
    (d / "schema.sql").write_text(text.replace(read_header(d)["ddl"], other))
    result = generate(d, blog(), write=False)  # the models lost `body`; the forged line says "blog()"
    assert [m.plan.summary for m in result.modules] == [["drop column body"]]
