"""Issue 25, values for existing rows as Django users give them: a callable default computed for each row
where the column is unique, `generate --default COLUMN=VALUE` and the prompt taking a Python value as
makemigrations does, `Meta.order_with_respect_to` filling `_order` with 0."""

from __future__ import annotations

import datetime
import io
import itertools
import sqlite3
import sys
import uuid
from pathlib import Path
from unittest import mock

import django
import pytest
from django.apps.registry import Apps
from django.core.management import CommandError, call_command
from django.db import connection, models
from django.db.models import Q
from django.test import override_settings

from tablemigrate.errors import GenerateError
from tablemigrate.generate.pipeline import generate
from tablemigrate.history.loader import load_migrations
from tablemigrate.operations import FillColumn, RebuildTable
from tablemigrate.run.datacheck import check

from .helpers import apply_new

UTC = datetime.timezone.utc
RUN_AT = datetime.datetime(2031, 6, 7, 8, 9, 10, 222222, tzinfo=UTC)
_labels = itertools.count()


def token() -> str:
    """A callable default a module can import by path."""
    return uuid.uuid4().hex


def post_model(meta: dict | None = None, **fields: models.Field) -> type[models.Model]:
    """A `blog_post` model (name + `fields`, Meta options `meta`) in a registry of its own, app `oneoffN`."""
    registry = Apps()
    attrs: dict = {"__module__": __name__, "name": models.CharField(max_length=100)}
    attrs.update(fields)
    attrs["Meta"] = type("Meta", (), {"app_label": f"oneoff{next(_labels)}", "apps": registry,
                                      "db_table": "blog_post", **(meta or {})})
    return type("Post", (models.Model,), attrs)


def live(tmp_path: Path, model: type[models.Model], rows: list[dict]) -> tuple[sqlite3.Connection, set[str]]:
    """`model`'s history generated into tmp_path/m and applied to tmp_path/live.sqlite3, holding `rows`."""
    d = tmp_path / "m"
    generate(d, [model])
    conn = sqlite3.connect(tmp_path / "live.sqlite3", isolation_level=None)
    apply_new(conn, d, set())
    for row in rows:
        conn.execute(f"INSERT INTO blog_post ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                     list(row.values()))
    return conn, {m.name for m in load_migrations(d)}


THREE = [{"id": i, "name": f"n{i}"} for i in (1, 2, 3)]


# item 1: a callable default on a unique column, for each row ---------------------------------------------

def test_a_new_unique_uuid_column_gives_every_existing_row_a_value_of_its_own(tmp_path):
    conn, applied = live(tmp_path, post_model(), THREE)
    new = post_model(key=models.UUIDField(default=uuid.uuid4, unique=True))
    (module,) = generate(tmp_path / "m", [new]).modules
    pending = [m for m in load_migrations(tmp_path / "m") if m.name not in applied]
    assert [f.message for f in check(conn, pending) if f.kind == "violation"] == []  # `run` would not refuse
    apply_new(conn, tmp_path / "m", applied)
    keys = [k for (k,) in conn.execute("SELECT key FROM blog_post ORDER BY id")]
    assert len(set(keys)) == 3 and all(uuid.UUID(k).hex == k for k in keys)  # stored as Django stores a UUID
    assert "fill={" in module.text and "per_row" not in module.text  # computed in the rebuild's copy, per row
    assert any("uuid.uuid4() called for each row when the migration runs" in line for line in module.plan.summary)


def test_run_adds_a_unique_uuid_column_to_a_table_with_rows(tmp_path):
    """The whole command, on the project's database: `run`'s check of the rows refuses nothing."""
    current: list = []
    try:
        with override_settings(TABLEMIGRATE_MIGRATIONS_DIR=tmp_path / "m"), \
                mock.patch("tablemigrate.project.build.managed_models", lambda alias="default": list(current)):
            def generate_and_run(model: type[models.Model]) -> None:
                current[:] = [model]
                call_command("tablemigrate", "generate", "--noinput", verbosity=0)
                call_command("tablemigrate", "run", "--noinput", "--no-backup", verbosity=0)

            generate_and_run(post_model())
            with connection.cursor() as cursor:
                cursor.executemany("INSERT INTO blog_post (name) VALUES (%s)", [("a",), ("b",), ("c",)])
            generate_and_run(post_model(key=models.UUIDField(default=uuid.uuid4, unique=True)))
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(DISTINCT key) FROM blog_post")
                assert cursor.fetchone() == (3,)
    finally:
        with connection.cursor() as cursor:
            for table in ("blog_post", "tablemigrate_history"):
                cursor.execute(f'DROP TABLE IF EXISTS "{table}"')


def test_a_column_in_a_unique_constraint_is_filled_for_each_row(tmp_path):
    rows = [{"id": i, "name": "same"} for i in (1, 2, 3)]
    conn, applied = live(tmp_path, post_model(), rows)
    new = post_model({"constraints": [models.UniqueConstraint(fields=["name", "code"], name="name_code")]},
                     code=models.CharField(max_length=32, default=token))
    generate(tmp_path / "m", [new])
    apply_new(conn, tmp_path / "m", applied)
    assert len({c for (c,) in conn.execute("SELECT code FROM blog_post")}) == 3


def test_nulls_of_a_unique_column_made_not_null_take_a_value_each(tmp_path):
    kept = uuid.uuid4().hex
    rows = [{"id": 1, "name": "a"}, {"id": 2, "name": "b", "key": kept}, {"id": 3, "name": "c"}]
    conn, applied = live(tmp_path, post_model(key=models.UUIDField(null=True, unique=True)), rows)
    (module,) = generate(tmp_path / "m", [post_model(key=models.UUIDField(default=uuid.uuid4, unique=True))]).modules
    apply_new(conn, tmp_path / "m", applied)
    keys = dict(conn.execute("SELECT id, key FROM blog_post"))
    assert keys[2] == kept and len(set(keys.values())) == 3 and None not in keys.values()
    assert any(isinstance(s, FillColumn) and s.only_null and s.per_row for s in module.plan.up)


def test_a_callable_default_on_a_column_that_is_not_unique_is_called_once_for_all_rows(tmp_path):
    conn, applied = live(tmp_path, post_model(), THREE)
    (module,) = generate(tmp_path / "m", [post_model(code=models.CharField(max_length=32, default=token))]).modules
    assert "per_row" not in module.text
    apply_new(conn, tmp_path / "m", applied)
    assert len({c for (c,) in conn.execute("SELECT code FROM blog_post")}) == 1  # as Django's AddField


# item 2: one-off values as Python, from --default or the prompt ------------------------------------------

@pytest.fixture
def command(tmp_path):
    """`manage.py tablemigrate ARGS` in process on the models given (as the apps tablemigrate owns),
    with the modules in tmp_path/m; generate's history starts from `post_model()` holding 3 rows."""
    current: list = []

    def tablemigrate(model: type[models.Model], *args: str, **options) -> None:
        current[:] = [model]
        call_command("tablemigrate", *args, verbosity=0, **options)

    first = post_model()
    tablemigrate.conn, tablemigrate.applied = live(tmp_path, first, THREE)
    tablemigrate.directory = tmp_path / "m"
    with override_settings(TABLEMIGRATE_MIGRATIONS_DIR=tmp_path / "m"), \
            mock.patch("tablemigrate.project.build.managed_models", lambda alias="default": list(current)):
        yield tablemigrate


def applied_rows(command, column: str) -> list:
    with mock.patch("django.utils.timezone.now", return_value=RUN_AT):
        apply_new(command.conn, command.directory, command.applied)
    return [v for (v,) in command.conn.execute(f"SELECT {column} FROM blog_post ORDER BY id")]


def test_default_gives_the_one_off_value_under_noinput(command):
    command(post_model(rank=models.IntegerField()), "generate", "--noinput", "--default", "blog_post.rank=7")
    assert applied_rows(command, "rank") == [7, 7, 7]


def test_default_takes_django_field_names_and_a_callable_computed_when_the_migration_runs(command):
    new = post_model(season=models.CharField(max_length=10), seen=models.DateTimeField())
    app = new._meta.app_label
    command(new, "generate", "--noinput", "--default", f"{app}.Post.season='spring'",
            "--default", f"{app}.post.seen=timezone.now")
    (module,) = [m for m in load_migrations(command.directory) if m.name not in command.applied]
    assert any(isinstance(s, FillColumn) and s.column == "seen" for s in module.up)
    assert applied_rows(command, "season") == ["spring"] * 3
    assert {v for (v,) in command.conn.execute("SELECT seen FROM blog_post")} == {"2031-06-07 08:09:10.222222"}


@pytest.mark.parametrize("spec, said", [
    ("blog_post.rank='spring'", "is not a value for blog_post.rank (IntegerField)"),
    ("blog_post.rank=spring", "NameError"),
    ("blog_post.rank=None", "NOT NULL"),
    ("blog_post.rank=lambda:3", "cannot be written into a module"),
    ("blog_post.nothere=1", "no model of the apps tablemigrate owns stores such a column"),
    ("blog_post.rank", "TABLE.COLUMN=VALUE"),
    ("blog_post.rank=7 blog_post.name=1", "need no one-off value"),
    ("blog_post.rank=7 blog_post.RANK=8", "given twice"),
])
def test_a_one_off_value_the_column_cannot_take_is_refused_with_one_line(command, spec, said):
    with pytest.raises(CommandError) as caught:
        command(post_model(rank=models.IntegerField()), "generate", "--noinput",
                *(arg for one in spec.split(" ") for arg in ("--default", one)))
    assert said in str(caught.value) and "\n" not in str(caught.value)
    assert caught.value.returncode == 2
    assert [m.name for m in load_migrations(command.directory)] == sorted(command.applied)  # nothing written


def test_the_refusal_under_noinput_names_the_option(tmp_path):
    conn, _ = live(tmp_path, post_model(), THREE)
    with pytest.raises(GenerateError, match=r"--default blog_post\.rank=VALUE"):
        generate(tmp_path / "m", [post_model(rank=models.IntegerField())])


def test_the_prompt_takes_a_python_value_and_asks_again_after_a_wrong_one(command, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("spring\n'spring'\ntimezone.now\n"))
    err = io.StringIO()
    command(post_model(seen=models.DateTimeField()), "generate", stderr=err, stdout=io.StringIO())
    assert "NameError" in err.getvalue() and "is not a value for blog_post.seen (DateTimeField)" in err.getvalue()
    assert set(applied_rows(command, "seen")) == {"2031-06-07 08:09:10.222222"}


# item 3: Meta.order_with_respect_to ----------------------------------------------------------------------

def test_order_with_respect_to_fills_order_with_zero_under_noinput(tmp_path):
    def blog(order: bool) -> list[type[models.Model]]:
        label, registry = f"oneoff{next(_labels)}", Apps()
        cat = type("Category", (models.Model,), {"__module__": __name__, "Meta": type("Meta", (), {
            "app_label": label, "apps": registry, "db_table": "blog_category"})})
        post = type("Post", (models.Model,), {
            "__module__": __name__, "category": models.ForeignKey(cat, models.CASCADE),
            "Meta": type("Meta", (), {"app_label": label, "apps": registry, "db_table": "blog_post",
                                      **({"order_with_respect_to": "category"} if order else {})})})
        return [cat, post]

    d = tmp_path / "m"
    generate(d, blog(False))
    conn = sqlite3.connect(tmp_path / "live.sqlite3", isolation_level=None)
    applied = {m.name for m in apply_new(conn, d, set())}
    conn.execute("INSERT INTO blog_category (id) VALUES (1)")
    conn.executemany("INSERT INTO blog_post (id, category_id) VALUES (?, 1)", [(1,), (2,)])
    (module,) = generate(d, blog(True)).modules  # the default Questioner: --noinput
    assert "add column _order (existing rows: 0)" in module.plan.summary
    apply_new(conn, d, applied)
    assert conn.execute("SELECT _order FROM blog_post").fetchall() == [(0,), (0,)]


def test_a_module_that_fills_row_by_row_is_a_format_an_older_tablemigrate_refuses(tmp_path):
    """`per_row` is new in format 3: the module says so, so a tablemigrate that cannot load the keyword refuses
    the module with "upgrade tablemigrate" instead of failing on a TypeError."""
    from tablemigrate.errors import MigrationFileError
    from tablemigrate.generate.plan import PlannedMigration
    from tablemigrate.generate.writer import render_module
    from tablemigrate.history import loader

    fill = FillColumn("t", "key", models.UUIDField(default=uuid.uuid4, unique=True), per_row=True)
    text = render_module(PlannedMigration("alter", "t", [fill], []), "x", datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))
    assert "module_format = 3\n" in text
    path = tmp_path / "0001_t.py"
    path.write_text(text)
    assert loader.load_migration(path).module_format == 3
    path.write_text(text.replace("module_format = 3", "module_format = 5"))
    with pytest.raises(MigrationFileError, match="newer than this tablemigrate reads .up to 4.: upgrade"):
        loader.load_migration(path)


# A NOT NULL unique column is computed per row in the rebuild's copy itself (no stand-in value) ------------

CHECK = "condition" if django.VERSION >= (5, 1) else "check"


def small() -> int:
    """A callable default that gives each row its own number below 1000."""
    small.n = getattr(small, "n", 0) + 1  # type: ignore[attr-defined]
    return small.n  # type: ignore[attr-defined]


def big() -> int:
    """A callable default whose values a CHECK (rank < 1000) refuses."""
    return 5000 + small()


def code() -> str:
    return "C" + uuid.uuid4().hex[:7]


@pytest.mark.parametrize("field, rule", [
    (models.IntegerField(default=small, unique=True), Q(rank__lt=1000)),
    (models.CharField(max_length=8, default=code, unique=True), Q(rank__startswith="C")),
])
def test_a_unique_not_null_column_with_a_check_is_filled_per_row_in_the_copy(tmp_path, field, rule):
    """NOT NULL + unique + a CHECK that every value the callable gives satisfies: the copy computes each
    row's value, so no stand-in (a random number, a hex text) trips the CHECK first; `run`'s data check
    does not evaluate what Python computes when the copy runs, so it refuses nothing."""
    conn, applied = live(tmp_path, post_model(), THREE)
    new = post_model({"constraints": [models.CheckConstraint(**{CHECK: rule}, name="rank_ok")]}, rank=field)
    (module,) = generate(tmp_path / "m", [new]).modules
    (rebuild,) = [s for s in module.plan.up if isinstance(s, RebuildTable)]
    assert list(getattr(rebuild, "fill", {})) == ["rank"] and not any(isinstance(s, FillColumn) for s in module.plan.up)
    assert "module_format = 3" in module.text and "fill={" in module.text
    pending = [m for m in load_migrations(tmp_path / "m") if m.name not in applied]
    assert [f.message for f in check(conn, pending) if f.kind == "violation"] == []
    assert any("rank: " in line and "computed by tablemigrate_fill_value('rank')" in line
               for s in pending[0].up if isinstance(s, RebuildTable) for line in s.sql_preview())
    apply_new(conn, tmp_path / "m", applied)
    assert len({r for (r,) in conn.execute("SELECT rank FROM blog_post")}) == 3
    assert conn.execute("PRAGMA quick_check").fetchall() == [("ok",)]  # NOT NULL and the CHECK hold


def test_a_per_row_value_the_check_refuses_fails_the_migration_and_keeps_the_rows(tmp_path):
    from tablemigrate.errors import MigrationFailed

    conn, applied = live(tmp_path, post_model(), THREE)
    new = post_model({"constraints": [models.CheckConstraint(**{CHECK: Q(rank__lt=1000)}, name="rank_small")]},
                     rank=models.IntegerField(default=big, unique=True))
    generate(tmp_path / "m", [new])
    before = conn.execute("SELECT * FROM blog_post ORDER BY id").fetchall()
    with pytest.raises(MigrationFailed, match="CHECK constraint failed: rank_small"):
        apply_new(conn, tmp_path / "m", applied)
    assert conn.execute("SELECT * FROM blog_post ORDER BY id").fetchall() == before


def test_a_column_only_in_a_partial_index_condition_is_computed_once(tmp_path):
    """A column that only a partial unique index's WHERE reads is not unique: Django's AddField computes
    its callable default once for all rows; per row is for the index's key columns."""
    conn, applied = live(tmp_path, post_model(), THREE)
    new = post_model({"constraints": [models.UniqueConstraint(fields=["name"], condition=Q(tag__gt=""),
                                                              name="name_if_tag")]},
                     tag=models.CharField(max_length=32, default=code))
    (module,) = generate(tmp_path / "m", [new]).modules
    assert not any((isinstance(s, FillColumn) and s.per_row) or (isinstance(s, RebuildTable) and getattr(s, "fill", None))
                   for s in module.plan.up)
    apply_new(conn, tmp_path / "m", applied)
    assert len({r for (r,) in conn.execute("SELECT tag FROM blog_post")}) == 1  # as Django's AddField
