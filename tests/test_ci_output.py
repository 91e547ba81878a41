"""Issue 25: refusals only for real losses (counted on the rows, with samples), exit codes and JSON for
CI (`show --check`, `run --check`, `--format json`), quieter and consistent output. Through the
management command in-process, on a database file in tmp_path (the `edge` alias)."""

from __future__ import annotations

import io
import json
import sqlite3

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from tablemigrate.errors import NotConfirmed
from tablemigrate.history.loader import Migration
from tablemigrate.operations import RebuildTable
from tablemigrate.run.datacheck import assess
from tablemigrate.run.preflight import StillEmpty
from tablemigrate.sqlite.changes import AlterColumn
from tablemigrate.sqlite.schema import Column

from .helpers import copy_example_project, tablemigrate
from .test_edges_command import edge, modules, rows, tm  # noqa: F401 (the fixture)

CREATE = "0001_create_t"
CREATE_T = ("table = 't'\nup = ['CREATE TABLE \"t\" (\"id\" integer NOT NULL PRIMARY KEY, \"v\" text, "
            "\"n\" integer)']\ndown = ['DROP TABLE \"t\"']\n")
# As `generate` writes them: NOT NULL with a default (the NULLs take it in the copy), flagged.
NOT_NULL = ("from tablemigrate.operations import RebuildTable\ntable = 't'\n"
            "up = [RebuildTable('t', 'CREATE TABLE \"t\" (\"id\" integer NOT NULL PRIMARY KEY, \"v\" text NOT NULL "
            "DEFAULT \\'x\\', \"n\" integer)', {'id': '\"id\"', 'v': 'COALESCE(\"v\", \\'x\\')', 'n': '\"n\"'})]\n"
            "down = []\ndestructive = [\"NULLs in t.v become 'x'\"]\n")
# Written by an earlier version: integer -> decimal flagged as a possible loss of precision.
DECIMAL = ("from tablemigrate.operations import RebuildTable\ntable = 't'\n"
           "up = [RebuildTable('t', 'CREATE TABLE \"t\" (\"id\" integer NOT NULL PRIMARY KEY, \"v\" text, "
           "\"n\" decimal(10, 2))', {'id': '\"id\"', 'v': '\"v\"', 'n': '\"n\"'})]\n"
           "down = []\ndestructive = ['changes the type of t.n from integer to decimal(10, 2): values that do not "
           "convert are stored as they are or lose precision']\n")


def _with_rows(edge, *values) -> None:  # noqa: F811 (the fixture)
    modules(edge.parent / "m", **{CREATE: CREATE_T})
    tm("run", "--noinput", "--no-backup", verbosity=0)
    conn = sqlite3.connect(edge)
    conn.executemany("INSERT INTO t (v, n) VALUES (?, ?)", values)
    conn.commit()
    conn.close()


# 1. Refusals only for real losses ---------------------------------------------------------------------------

def test_not_null_with_a_default_over_a_column_without_nulls_is_applied_under_noinput(edge):  # noqa: F811
    _with_rows(edge, ("a", 1), ("b", 2))
    modules(edge.parent / "m", **{"0002_not_null": NOT_NULL})
    out, _err = tm("run", "--noinput", "--no-backup")  # no --allow-destructive: nothing to lose here
    assert "Applied 0002_not_null" in out
    assert rows(edge, "SELECT v FROM t ORDER BY id") == [("a",), ("b",)]


def test_not_null_over_nulls_is_refused_with_the_count_and_a_sample(edge):  # noqa: F811
    _with_rows(edge, ("a", 1), (None, 2))
    modules(edge.parent / "m", **{"0002_not_null": NOT_NULL})
    with pytest.raises(CommandError) as info:
        tm("run", "--noinput", "--no-backup")
    assert "1 value of t.v would change to COALESCE(\"v\", 'x') (for example: NULL -> 'x')" in str(info.value)


def test_integer_to_decimal_changes_no_stored_value(edge):  # noqa: F811
    old, new = Column("n", "integer", False, None, 0, None), Column("n", "decimal(10, 2)", False, None, 0, None)
    assert AlterColumn(old, new).destructive("t") == []  # generate no longer flags it
    assert AlterColumn(new, old).destructive("t") == []
    _with_rows(edge, ("a", 1), ("b", 12345678901))
    modules(edge.parent / "m", **{"0002_decimal": DECIMAL})  # the flag of an earlier version: counted
    out, _err = tm("run", "--noinput", "--no-backup")
    assert "Applied 0002_decimal" in out
    assert rows(edge, "SELECT n, typeof(n) FROM t ORDER BY id") == [(1, "integer"), (12345678901, "integer")]


def test_a_count_of_zero_is_counted_again_in_the_migrations_transaction():
    from tablemigrate.run.datacheck import Recheck

    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t (id integer PRIMARY KEY, v text)")
    conn.execute("INSERT INTO t (v) VALUES ('a')")
    m = Migration("m1", [RebuildTable("t", "CREATE TABLE t (id integer PRIMARY KEY, v text NOT NULL DEFAULT 'x')",
                                      {"id": '"id"', "v": "COALESCE(\"v\", 'x')"})], None)
    assessed = assess(conn, [m])
    assert "m1" in assessed.lose_nothing and assessed.still_lossless["m1"]
    guard = StillEmpty([], assessed.still_lossless["m1"])
    guard.apply(conn)  # still no NULL
    conn.execute("INSERT INTO t (v) VALUES (NULL)")  # the application wrote one since the check
    with pytest.raises(NotConfirmed, match="t held nothing this migration can lose"):
        guard.apply(conn)
    assert Recheck("t", '"v" IS NULL').found(conn)


# 2. Exit codes and JSON for CI -------------------------------------------------------------------------------

def test_show_and_run_check_exit_4_while_anything_is_pending_and_write_nothing(edge):  # noqa: F811
    modules(edge.parent / "m", **{CREATE: CREATE_T})
    for command in ("show", "run"):
        with pytest.raises(CommandError) as info:
            tm(command, "--check", "--noinput")
        assert info.value.returncode == 4  # MigrationsPending: its own code, documented in --help
    assert not edge.exists()  # run --check created no database file
    tm("run", "--noinput", "--no-backup", verbosity=0)
    assert tm("show", "--check")[0]  # nothing pending: exit 0
    out, _err = tm("run", "--check")
    assert "No migrations to apply." in out


def test_show_format_json_lists_pending_migrations_with_tables_and_flags(edge):  # noqa: F811
    _with_rows(edge, ("a", 1))
    modules(edge.parent / "m", **{"0002_not_null": NOT_NULL})
    doc = json.loads(tm("show", "--format", "json")[0])
    assert doc["format"] == 1 and doc["command"] == "show" and doc["history_matches"] is True
    assert [a["name"] for a in doc["applied"]] == [CREATE] and doc["applied"][0]["state"] == "ok"
    mine = [p for p in doc["pending"] if p["kind"] == "tablemigrate"]
    assert mine == [{"name": "0002_not_null", "kind": "tablemigrate", "tables": ["t"],
                     "destructive": ["NULLs in t.v become 'x'"], "out_of_order": False}]
    with pytest.raises(CommandError) as info:
        tm("show", "--check", "--format", "json")
    assert info.value.returncode == 4


def test_run_format_json_reports_what_was_applied_with_durations_and_tables(edge):  # noqa: F811
    modules(edge.parent / "m", **{CREATE: CREATE_T})
    out, _err = tm("run", "--noinput", "--no-backup", "--format", "json")
    doc = json.loads(out)  # the whole of stdout
    assert doc["command"] == "run" and doc["tables"] == ["t"] and doc["pending"] == []
    mine = [a for a in doc["applied"] if a["kind"] == "tablemigrate"]
    assert [a["name"] for a in mine] == [CREATE] and mine[0]["seconds"] >= 0 and mine[0]["tables"] == ["t"]
    checked = json.loads(tm("run", "--check", "--format", "json")[0])
    assert checked["pending"] == [] and checked["check"] is True


def test_generate_check_format_json_lists_the_changes(tmp_path):
    out = io.StringIO()
    with override_settings(TABLEMIGRATE_MIGRATIONS_DIR=tmp_path / "m"):
        with pytest.raises(CommandError) as info:
            call_command("tablemigrate", "generate", "--check", "--format", "json", stdout=out)
    assert info.value.returncode == 1
    doc = json.loads(out.getvalue())
    assert doc["command"] == "generate" and doc["changes"] and doc["tables"]
    assert all(c["kind"] == "create" and c["tables"] and c["destructive"] == [] for c in doc["changes"])


def test_run_check_format_json_with_an_edited_history_writes_its_document_then_exits_2(edge):  # noqa: F811
    """As `show --check --format json`: the document (history_matches false) first, so a CI step that parses
    stdout reads why the check failed; the exit code stays 2 (what `run` refuses)."""
    modules(edge.parent / "m", **{CREATE: CREATE_T})
    tm("run", "--noinput", "--no-backup", verbosity=0)
    with (edge.parent / "m" / f"{CREATE}.py").open("a") as f:
        f.write("# edited\n")
    for command in ("show", "run"):
        out = io.StringIO()
        with pytest.raises(CommandError) as info:
            call_command("tablemigrate", command, "--check", "--format", "json", "--database", "edge", stdout=out)
        assert info.value.returncode == 2
        doc = json.loads(out.getvalue())
        assert doc["history_matches"] is False and doc["pending"] == [], command


def test_run_format_json_at_verbosity_2_keeps_the_signals_lines_off_stdout(edge):  # noqa: F811
    """pre/post_migrate handlers write "Running post-migrate handlers ..." to the stdout they are given, and
    contenttypes/auth print() "Adding content type ...": under --format json both go to stderr."""
    from django.db.models.signals import post_migrate

    def printing(sender, **kwargs) -> None:  # noqa: ARG001 (a signal receiver)
        print(f"Adding something for {sender.label}")  # as contenttypes' and auth's receivers do

    modules(edge.parent / "m", **{CREATE: CREATE_T})
    post_migrate.connect(printing, weak=False, dispatch_uid="test-printing")
    try:
        out, err = tm("run", "--noinput", "--no-backup", "--format", "json", verbosity=2)
    finally:
        post_migrate.disconnect(dispatch_uid="test-printing")
    assert json.loads(out)["command"] == "run"  # the whole of stdout
    assert "Running post-migrate handlers" in err and "Adding something for sampleapp" in err


@pytest.mark.subprocess
def test_run_format_json_at_verbosity_2_prints_only_the_document_from_manage_py(tmp_path):
    """The same through manage.py with the example project: contenttypes and auth print() their "Adding
    content type/permission ..." lines on the process's stdout (review reproduction, moved here)."""
    site = copy_example_project(tmp_path)
    done = tablemigrate(site, "run", "--format", "json", "-v", "2", EXAMPLE_DB=str(site / "db.sqlite3"))
    assert json.loads(done.stdout)["command"] == "run"
    assert "Adding content type" in done.stderr


def _generate_check_json(directory) -> tuple[int, dict]:
    out = io.StringIO()
    with override_settings(TABLEMIGRATE_MIGRATIONS_DIR=directory):
        try:
            call_command("tablemigrate", "generate", "--check", "--format", "json", stdout=out)
            code = 0
        except CommandError as exc:
            code = exc.returncode
    return code, json.loads(out.getvalue())


def test_generate_check_format_json_says_why_it_fails(tmp_path):
    """`ok` agrees with the exit code and `reasons` names the keys that make it fail: a stale schema.sql alone
    fails with `changes: []`."""
    code, doc = _generate_check_json(tmp_path / "m")
    assert (code, doc["ok"], doc["reasons"]) == (1, False, ["changes"]) and doc["changes"]
    with override_settings(TABLEMIGRATE_MIGRATIONS_DIR=tmp_path / "m"):
        call_command("tablemigrate", "generate", "--noinput", stdout=io.StringIO())
    code, doc = _generate_check_json(tmp_path / "m")
    assert (code, doc["ok"], doc["reasons"], doc["changes"], doc["stale_schema_sql"]) == (0, True, [], [], None)
    with sorted((tmp_path / "m").glob("[0-9]*.py"))[0].open("a") as f:
        f.write("# edited by hand, generate not run\n")
    code, doc = _generate_check_json(tmp_path / "m")
    assert (code, doc["ok"], doc["reasons"], doc["changes"]) == (1, False, ["stale_schema_sql"], [])
    assert doc["stale_schema_sql"]


# 3. Output ---------------------------------------------------------------------------------------------------

def test_dry_run_prints_row_counts_only_of_changed_tables_unless_verbosity_2(edge):  # noqa: F811
    _with_rows(edge, ("a", 1))
    modules(edge.parent / "m", **{"0002_fill": "up = [\"INSERT INTO t (v) VALUES ('z')\"]\ndown = []\n",
                                  "0003_other": "up = ['CREATE TABLE u (x)']\ndown = []\n"})
    out, _err = tm("run", "--dry-run", "--noinput")
    assert "rows t: 1 -> 2   (changed)" in out and "rows u: - -> 0   (changed)" in out
    assert "rows t: 2 -> 2" not in out  # 0003 leaves t's count as it is
    verbose, _err = tm("run", "--dry-run", "--noinput", verbosity=2)
    assert "rows t: 2 -> 2\n" in verbose


def test_sql_previews_quote_names_with_double_quotes_as_modules_do():
    step = RebuildTable("t", 'CREATE TABLE "t" ("id" integer PRIMARY KEY, "v" text NOT NULL)',
                        {"id": '"id"', "v": "COALESCE(\"v\", '')"})
    preview = "\n".join(step.sql_preview())
    assert "`" not in preview and 'COALESCE("v", \'\')' in preview


def test_the_exit_code_table_is_in_the_top_level_help_only():
    from tablemigrate.management.commands.tablemigrate import Command

    parser = Command().create_parser("manage.py", "tablemigrate")
    top = parser.format_help()
    assert "exit codes:" in top and "  4  show --check / run --check" in top
    sub = next(a for a in parser._actions if a.dest == "action")
    for name, p in sub.choices.items():
        text = p.format_help()
        assert "130  interrupted" not in text, name
        assert "exit codes: see `manage.py tablemigrate --help`" in text, name
