"""Operations are copied or changed through one path, `Operation.replaced`, built on `deconstruct()`:
a copy cannot drop an argument (issue 22: a parent's rename in the same `generate` lost the child's
`check=True`, and `revert` put a CHECK back without reading a row)."""

from __future__ import annotations

import inspect

import pytest
from django.db import models

from tablemigrate.errors import MigrationFailed, TablemigrateError
from tablemigrate.generate.pipeline import generate
from tablemigrate.history.loader import load_migrations
from tablemigrate.history.status import Target
from tablemigrate.operations import AlterTableInPlace, Operation
from tablemigrate.project.build import private_database, raw
from tablemigrate.run import runner
from tablemigrate.run.apply import apply_migration
from tablemigrate.sqlite.diff import Renames

from .modelgen import FieldSpec, ProjectSpec, TableSpec, build_models


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def _sample(name: str, parameter: inspect.Parameter, n: int) -> object:
    """A value for `parameter` that differs from its default (so a copy that drops it shows)."""
    if parameter.default is not inspect.Parameter.empty and isinstance(parameter.default, bool):
        return not parameter.default
    if name == "copy":
        return {f"c{n}": f'"c{n}"'}
    if name == "field":
        return models.IntegerField(default=n)
    if name == "fill":
        return {f"f{n}": models.IntegerField(default=n)}
    if name == "function":
        return lambda db: None
    return f"{name}_{n}"


def _instance(cls: type) -> Operation:
    params = inspect.signature(cls).parameters
    args = {name: _sample(name, p, n) for n, (name, p) in enumerate(params.items())}
    positional = [args.pop(name) for name, p in params.items() if p.kind is p.POSITIONAL_OR_KEYWORD
                  and p.default is p.empty]
    return cls(*positional, **args)


@pytest.mark.parametrize("cls", _subclasses(Operation), ids=lambda c: c.__name__)
def test_every_operation_survives_the_copy_path_with_all_its_arguments(cls):
    """Every Operation subclass, present and future: `replaced()` makes the same operation again (every
    attribute its constructor set), `replaced(x=...)` changes that argument alone, and an operation that
    cannot be written into a module cannot be copied either (TypeError, never a partial copy)."""
    original = _instance(cls)
    try:
        original.deconstruct()
    except TypeError:
        with pytest.raises(TypeError):
            original.replaced()
        return
    same = original.replaced()
    assert type(same) is cls and same is not original
    assert vars(same) == vars(original)
    assert same.deconstruct() == original.deconstruct()
    for name in inspect.signature(cls).parameters:
        changed = original.replaced(**{name: getattr(original, name)})
        assert vars(changed) == vars(original)
    if "create" in inspect.signature(cls).parameters:
        changed = original.replaced(create="CREATE TABLE other (x)")
        assert changed.create == "CREATE TABLE other (x)"
        assert {k: v for k, v in vars(changed).items() if k != "create"} == \
               {k: v for k, v in vars(original).items() if k != "create"}
    with pytest.raises(TypeError):
        original.replaced(no_such_argument=1)


def test_a_subclass_that_adds_an_argument_without_deconstructing_it_is_found():
    """The check above would catch the defect class on a new operation: a copy built from three
    attributes, or a `deconstruct()` that forgets an argument, loses it."""

    class Forgetful(AlterTableInPlace):
        def __init__(self, table, create, copy, *, check=False, extra="x"):
            super().__init__(table, create, copy, check=check)
            self.extra = extra

    op = Forgetful("t", "CREATE TABLE t (a)", {"a": '"a"'}, check=True, extra="kept")
    assert vars(op.replaced()) != vars(op)  # deconstruct() does not carry `extra`: the test sees it


def _blog(rule: str, kept: bool) -> ProjectSpec:
    """Author and Post; Post has the `rule` ("check": n >= 0; "foreign key": author_id references
    Author) when `kept`."""
    spec = ProjectSpec()
    spec.tables["Author"] = TableSpec("Author", "blog_author", [FieldSpec("name", "char")])
    author = (FieldSpec("author", "fk", target="Author") if kept or rule != "foreign key"
              else FieldSpec("author", "bigint", db_column="author_id"))
    post = TableSpec("Post", "blog_post", [author, FieldSpec("n", "int")])
    if kept and rule == "check":
        post.checks.append(("post_n_gte_0", "n"))
    spec.tables["Post"] = post
    return spec


@pytest.mark.parametrize("rule", ["check", "foreign key"])
def test_revert_of_a_child_changed_in_place_beside_its_parents_rename_proves_the_rule(tmp_path, rule):
    """Issue 22: one `generate` renames the parent table and drops the child's CHECK (or foreign key)
    in place. The child's `down` puts the rule back and must prove it on every row (`check=True`): a row
    that breaks it fails the revert, non-zero, and the database is left as it was. (The pre-run data
    check also counts a CHECK's violations; the applier is tried on its own too.)"""
    d = tmp_path / "m"
    generate(d, build_models(_blog(rule, kept=True)))
    spec = _blog(rule, kept=False)
    spec.tables["Author"].db_table = "blog_writer"
    renames = Renames()
    renames.add_table("blog_author", "blog_writer")
    generate(d, build_models(spec), renames=renames)
    last = load_migrations(d)[-1]
    [down] = [s for s in last.down if isinstance(s, AlterTableInPlace)]
    assert last.table == "blog_post" and 'REFERENCES "blog_writer"' in down.create
    assert down.check  # the parents' names changed, the check kept
    path = tmp_path / "db.sqlite3"
    with private_database(str(path)) as db:
        conn = raw(db)
        runner.run(Target("default", conn, path), d, django=False)
        conn.execute("INSERT INTO blog_writer VALUES (1, 'a')")
        bad = "(2, 1, -1)" if rule == "check" else "(2, 99, 1)"  # allowed now: no CHECK, no key
        conn.execute(f"INSERT INTO blog_post (id, author_id, n) VALUES (1, 1, 5), {bad}")
        before = list(conn.iterdump())
        with pytest.raises(MigrationFailed):
            apply_migration(conn, last, "down")
        assert list(conn.iterdump()) == before
        with pytest.raises(TablemigrateError):
            runner.revert(Target("default", conn, path), d, allow_destructive=True)
        assert list(conn.iterdump()) == before
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
