"""Models whose DDL calls Django's SQLite functions (an expression index, a regex CHECK) or holds a
literal `%` (a partial index or conditional unique constraint on `__startswith="a%"`): generate, run (a
backup checked, a rebuild that evaluates the expressions on every row), a later generate, revert."""

import itertools
import logging
import shutil
import sqlite3

import django
import pytest
from django.apps.registry import Apps
from django.db import models
from django.db.models import Q
from django.db.models.functions import ExtractYear, Lower

from tablemigrate.backups.backup import automatic_backups
from tablemigrate.errors import NotConfirmed
from tablemigrate.generate import pipeline
from tablemigrate.generate.pipeline import generate
from tablemigrate.history.loader import load_migrations
from tablemigrate.operations import AlterTableInPlace, RebuildTable
from tablemigrate.project.build import model_sql, private_database
from tablemigrate.run import online as online_rebuild
from tablemigrate.run import runner
from tablemigrate.sqlite import cache

from .helpers import copy_example_project, tablemigrate

_labels = itertools.count()
CONDITION = "condition" if django.VERSION >= (5, 1) else "check"  # CheckConstraint's argument


def event_models(*, float_kind=False, nullable_day=False, percent=False):
    """ev_event: an index on ExtractYear("day") (django_datetime_extract) and a CHECK on `code__regex`
    (REGEXP); with `percent` instead a partial index and a conditional unique constraint whose SQL holds a
    literal `%`."""
    meta = {"app_label": f"fn{next(_labels)}", "apps": Apps(), "db_table": "ev_event"}
    if percent:
        meta["indexes"] = [models.Index(fields=["kind"], condition=Q(code__contains="%"), name="ev_pct")]
        meta["constraints"] = [models.UniqueConstraint(fields=["kind"], condition=Q(code__startswith="a%"),
                                                       name="ev_one_a_pct_per_kind")]
    else:
        meta["indexes"] = [models.Index(ExtractYear("day"), name="ev_year"), models.Index(Lower("code"), name="ev_lower_code")]
        meta["constraints"] = [models.CheckConstraint(**{CONDITION: Q(code__regex=r"^[a-z]+$")}, name="ev_code_re")]
    attrs = {"__module__": "tests.generated", "day": models.DateTimeField(null=nullable_day),
             "code": models.CharField(max_length=20), "kind": models.FloatField(default=0) if float_kind else models.IntegerField(default=0),
             "Meta": type("Meta", (), meta)}
    return [type("Event", (models.Model,), attrs)]


def insert(conn, *rows):
    conn.executemany("INSERT INTO ev_event (day, code, kind) VALUES (?, ?, ?)", rows)
    conn.commit()


@pytest.mark.parametrize("online", [False, True], ids=["in-one-transaction", "online"])
def test_expression_index_and_regex_check_through_generate_run_rebuild_and_revert(project, settings, monkeypatch,
                                                                                    caplog, online):
    target, d = project
    generate(d, event_models())  # verified on a part of database A
    assert cache.database_a_path(d, (d / "schema.sql").read_bytes()).is_file()  # A kept for the next generate
    runner.run(target, d)
    insert(target.conn, ("2024-05-01 10:00:00", "abc", 1), ("2023-01-02 03:04:05", "xyz", 2))

    full = []
    real_a = pipeline._database_a
    monkeypatch.setattr(pipeline, "_database_a", lambda *a: full.append(1) or real_a(*a))
    (module,) = generate(d, event_models(float_kind=True)).modules  # integer to real: a rebuild
    assert full == []  # schema.sql's markers: only ev_event built and compared
    assert [type(op) for op in load_migrations(d)[-1].up] == [RebuildTable], module.text
    with pytest.raises(NotConfirmed, match=r"2 values in ev_event.kind would be converted to real"):
        runner.run(target, d)  # the data checks count on the rows what the new definition does to them
    copies = []
    if online:  # the rebuild copies the rows in short transactions (online.plan's scratch decides it may)
        target.conn.execute("PRAGMA journal_mode = WAL")
        settings.TABLEMIGRATE_ONLINE_REBUILD_ROWS = 1
        real_run = online_rebuild.run
        monkeypatch.setattr(online_rebuild, "run", lambda *args: copies.append(1) or real_run(*args))
    runner.run(target, d, allow_destructive=True)  # the copy into the new table evaluates both on each row
    assert copies == ([1] if online else [])
    assert automatic_backups(target.backups_dir, target.path)
    assert target.conn.execute("SELECT code FROM ev_event WHERE strftime('%Y', day) = '2023'").fetchall() == [("xyz",)]
    assert {r[0] for r in target.conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")} >= \
        {"ev_year", "ev_lower_code"}
    with pytest.raises(sqlite3.IntegrityError, match="ev_code_re"):
        insert(target.conn, ("2024-05-01 10:00:00", "NOT-lower", 3))

    (module,) = generate(d, event_models(float_kind=True, nullable_day=True)).modules  # NOT NULL dropped
    assert [type(op) for op in load_migrations(d)[-1].up] == [AlterTableInPlace], module.text
    with caplog.at_level(logging.DEBUG, logger="tablemigrate"):
        runner.run(target, d)
    assert "changed the definition of ev_event in place" in caplog.text  # not rebuilt: asked of a scratch copy
    assert generate(d, event_models(float_kind=True, nullable_day=True)).modules == []  # the indexes in history
    for _ in range(3):
        runner.revert(target, d, allow_destructive=True)
    assert target.conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'ev_event'").fetchone() == (0,)


def test_a_literal_percent_in_a_condition_is_collected_as_written():
    """Django 4.2's schema editor %-formats deferred statements with no parameters: TypeError."""
    with private_database() as wrapper:
        statements = model_sql(wrapper, event_models(percent=True))
    (unique,) = [s for s in statements if "ev_one_a_pct_per_kind" in s]
    (partial,) = [s for s in statements if '"ev_pct"' in s]
    assert r"'a\%%'" in unique and r"'%\%%'" in partial, statements


def test_percent_conditions_mean_what_the_model_says_after_generate_and_run(project):
    target, d = project
    generate(d, event_models(percent=True))
    runner.run(target, d)
    day = "2024-05-01 10:00:00"
    insert(target.conn, (day, "a%x", 1), (day, "abc", 1), (day, "abd", 1), (day, "a%y", 2))
    with pytest.raises(sqlite3.IntegrityError, match="kind"):  # a second code starting with "a%" in kind 1
        insert(target.conn, (day, "a%z", 1))
    plan = target.conn.execute("EXPLAIN QUERY PLAN SELECT * FROM ev_event WHERE code LIKE '%\\%%' ESCAPE '\\' "
                               "AND kind = 1").fetchall()
    assert "ev_pct" in str(plan)  # the partial index serves the model's condition
    assert generate(d, event_models(percent=True)).modules == []


def test_a_rebuilds_preview_reads_a_definition_that_calls_djangos_functions():
    """`show --sql`'s text of a rebuild asks SQLite for the new table's layout on a scratch database."""
    create = ('CREATE TABLE "ev_tag" ("code" varchar(20) NOT NULL PRIMARY KEY, '
              'CONSTRAINT "ev_tag_re" CHECK ("code" REGEXP \'^[a-z]+$\'))')
    preview = "\n".join(RebuildTable("ev_tag", create, {"code": '"code"'}).sql_preview())
    assert "each row keeps its rowid" in preview  # no INTEGER PRIMARY KEY: the copy carries the rowid


@pytest.mark.subprocess
def test_a_project_with_a_regex_check_and_an_expression_index_generates_and_runs_from_the_command_line(tmp_path):
    """The whole history generated again, and a first run (the modules rehearsed before the file exists)."""
    example = copy_example_project(tmp_path)
    shutil.rmtree(example / "example_project" / "tablemigrations")
    models_py = example / "example_project" / "users" / "models.py"
    models_py.write_text(models_py.read_text().replace(
        "    def __str__", "    class Meta:\n        constraints = [models.CheckConstraint(\n"
        f"            {CONDITION}=models.Q(username__regex=r'^[a-z]+$'), name='users_user_lower')]\n"
        "        indexes = [models.Index(models.functions.ExtractYear('created_at'), name='users_user_year')]\n\n"
        "    def __str__"))
    models_py.write_text("import django.db.models.functions\n" + models_py.read_text())
    tablemigrate(example, "generate", "--noinput")
    assert "Applied" in tablemigrate(example, "run", "--noinput").stdout
    db = sqlite3.connect(example / "example_project" / "db.sqlite3")
    try:
        assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'users_user_year'").fetchone() == (1,)
    finally:
        db.close()
