"""Virtual tables that a migration leaves failing (issue 22, D3): SQLite's RENAME updates triggers and views,
never the names a virtual table was created with. An FTS index with external content whose content table
or column is renamed or dropped fails every search after a run that exited 0. The rehearsal scans every
virtual table of the schema copy after each migration and refuses one that worked before and fails after;
`generate` says so when it writes such a module."""

from __future__ import annotations

import hashlib
import io
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from tablemigrate.errors import VirtualTableBroken
from tablemigrate.generate.pipeline import generate
from tablemigrate.history.status import Target
from tablemigrate.project.build import private_database, raw
from tablemigrate.run import rehearse as rehearse_module
from tablemigrate.run import runner
from tablemigrate.run.dryrun import dry_run
from tablemigrate.sqlite.diff import Renames

from .helpers import fts5_compiled, module
from .modelgen import FieldSpec, ProjectSpec, TableSpec, build_models

pytestmark = pytest.mark.skipif(not fts5_compiled(), reason="this Python's sqlite3 is built without FTS5")

FTS = "CREATE VIRTUAL TABLE shop_item_fts USING fts5(name, content='{}', content_rowid='id')"
TRIGGER = ("CREATE TRIGGER shop_item_ai AFTER INSERT ON shop_item BEGIN INSERT INTO shop_item_fts(rowid, name) "
           "VALUES (new.id, new.name); END")
SEARCH = "SELECT rowid, name FROM shop_item_fts WHERE shop_item_fts MATCH 'pen'"
RECREATE = ["DROP TABLE shop_item_fts", FTS.format("shop_product"),
            "INSERT INTO shop_item_fts(shop_item_fts) VALUES('rebuild')"]


@pytest.fixture
def shop(tmp_path):
    """The reviewer's database: shop_item, its FTS5 external-content index kept by a trigger, one row."""
    d = tmp_path / "m"
    up = ["CREATE TABLE shop_item (id integer PRIMARY KEY, name text, note text)", FTS.format("shop_item"), TRIGGER]
    module(d, "0001_create", f"up = {up!r}\n")
    with private_database(str(tmp_path / "db.sqlite3")) as db:
        target = Target("default", raw(db), tmp_path / "db.sqlite3", tmp_path / "backups")
        runner.run(target, d, django=False)
        target.conn.execute("INSERT INTO shop_item (name) VALUES ('red pen')")
        yield target, d


def file_hash(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


BREAKING = {
    "rename the content table": ['ALTER TABLE "shop_item" RENAME TO "shop_product"'],
    "drop the content table": ["DROP TRIGGER shop_item_ai", "DROP TABLE shop_item"],
    "drop a column the index names": ["DROP TRIGGER shop_item_ai", "ALTER TABLE shop_item DROP COLUMN name"],
    "rename a column the index names": ["ALTER TABLE shop_item RENAME COLUMN name TO title"],
    "rename the rowid column": ["ALTER TABLE shop_item RENAME COLUMN id TO pk"],
}


@pytest.mark.parametrize("change", list(BREAKING))
def test_a_migration_breaking_an_fts5_index_is_refused_by_run_and_dry_run_with_nothing_changed(shop, change):
    target, d = shop
    module(d, "0002_change", f"up = {BREAKING[change]!r}\n")
    before = file_hash(target.path)
    for attempt in (lambda: runner.run(target, d, django=False, allow_destructive=True),
                    lambda: dry_run(target, d)):
        with pytest.raises(VirtualTableBroken) as caught:
            attempt()
        message = str(caught.value)
        assert caught.value.exit_code == 1 and "\n" not in message
        assert message.startswith("validation failed, nothing was changed: migration 0002_change (up) leaves "
                                  "virtual table shop_item_fts not working: ")
        assert "VALUES('rebuild')" in message
        assert file_hash(target.path) == before
    assert target.conn.execute(SEARCH).fetchall() == [(1, "red pen")]


def test_the_error_names_what_sqlite_said(shop):
    target, d = shop
    module(d, "0002_rename", "up = ['ALTER TABLE \"shop_item\" RENAME TO \"shop_product\"']\n")
    with pytest.raises(VirtualTableBroken, match=r"not working: no such table: main\.shop_item \(it was created "
                                                 r"as CREATE VIRTUAL TABLE shop_item_fts USING fts5\(name, "
                                                 r"content='shop_item'"):
        runner.run(target, d, django=False)


def test_a_module_that_renames_and_recreates_the_index_runs_and_search_works(shop):
    target, d = shop
    up = ['ALTER TABLE "shop_item" RENAME TO "shop_product"', *RECREATE]
    down = ["DROP TABLE shop_item_fts", FTS.format("shop_item"), "ALTER TABLE shop_product RENAME TO shop_item",
            RECREATE[2]]
    module(d, "0002_rename", f"up = {up!r}\ndown = {down!r}\n")
    assert [m.name for m in runner.run(target, d, django=False, allow_destructive=True)] == ["0002_rename"]
    assert target.conn.execute(SEARCH).fetchall() == [(1, "red pen")]
    target.conn.execute("INSERT INTO shop_product (name) VALUES ('blue pen')")  # the trigger follows the rename
    assert target.conn.execute(SEARCH + " ORDER BY rowid").fetchall() == [(1, "red pen"), (2, "blue pen")]
    runner.revert(target, d, allow_destructive=True)  # the down, rehearsed the same way
    assert target.conn.execute(SEARCH + " ORDER BY rowid").fetchall() == [(1, "red pen"), (2, "blue pen")]


def test_an_fts4_external_content_index_is_asked_the_same_way(shop):
    target, d = shop
    module(d, "0002_fts4", "up = [\"CREATE TABLE doc (id integer PRIMARY KEY, body text)\", "
           "\"CREATE VIRTUAL TABLE doc_fts USING fts4(body, content='doc')\"]\n")
    runner.run(target, d, django=False)
    module(d, "0003_rename", "up = ['ALTER TABLE doc RENAME TO page']\n")
    with pytest.raises(VirtualTableBroken, match="0003_rename .* virtual table doc_fts not working: .*content='doc'"):
        runner.run(target, d, django=False)


def test_a_virtual_table_that_never_worked_and_unrelated_ones_stop_nothing(shop):
    """Only a table that worked before the migration and fails after it refuses: a contentless FTS4
    table (whose full scan always fails), an R*Tree and a plain FTS5 table do not."""
    target, d = shop
    module(d, "0002_others", "up = [\"CREATE VIRTUAL TABLE words USING fts4(w, content='')\", "
           "'CREATE VIRTUAL TABLE boxes USING rtree(id, x0, x1)', 'CREATE VIRTUAL TABLE notes USING fts5(body)']\n")
    module(d, "0003_unrelated", "up = ['CREATE TABLE other (id integer PRIMARY KEY)', "
           "'ALTER TABLE other RENAME TO other2', 'DROP TABLE notes']\n")
    assert [m.name for m in runner.run(target, d, django=False)] == ["0002_others", "0003_unrelated"]


def test_a_rehearsal_without_virtual_tables_never_asks_again(tmp_path, monkeypatch):
    """The cost stays with the databases that have virtual tables: one listing, no scan."""
    listed = []
    real = rehearse_module.virtual_tables
    monkeypatch.setattr(rehearse_module, "virtual_tables", lambda conn: listed.append(1) or real(conn))
    d = tmp_path / "m"
    for i in range(5):
        module(d, f"000{i}_t", f"up = ['CREATE TABLE t{i} (x)', 'ALTER TABLE t{i} RENAME TO u{i}']\n")
    with private_database(str(tmp_path / "db.sqlite3")) as db:
        runner.run(Target("default", raw(db), tmp_path / "db.sqlite3"), d, django=False, take_backup=False)
    assert len(listed) == 1


def _spec(table: str) -> ProjectSpec:
    spec = ProjectSpec()
    spec.tables["Item"] = TableSpec("Item", table, [FieldSpec("name", "char")])
    return spec


def test_generate_warns_when_its_rename_breaks_a_virtual_table(tmp_path):
    d = tmp_path / "m"
    generate(d, build_models(_spec("shop_item")))
    module(d, "20990101_000000_01_search", f"up = [{FTS.format('shop_item')!r}]\ndown = ['DROP TABLE shop_item_fts']\n")
    (renamed,) = generate(d, build_models(_spec("shop_product")), renames=Renames.parse(["shop_item:shop_product"]),
                          write=False).modules
    assert renamed.warnings == [
        f"migration {renamed.name} (up) leaves virtual table shop_item_fts not working: no such table: main.shop_item "
        f"(it was created as {FTS.format('shop_item')}; SQLite renames no table or column in it): in the same "
        "module, drop it and create it again naming the new table and columns, then rebuild its index "
        "(INSERT INTO \"shop_item_fts\"(\"shop_item_fts\") VALUES('rebuild'))"]
    more = _spec("shop_item")
    more.tables["Item"].fields.append(FieldSpec("price", "int", null=True))
    (other,) = generate(d, build_models(more), write=False).modules
    assert other.warnings == []  # a module that leaves it alone
    only_tags = ProjectSpec()
    only_tags.tables["Tag"] = TableSpec("Tag", "shop_tag", [FieldSpec("name", "char")])
    dropped = {m.plan.kind: m for m in generate(d, build_models(only_tags), write=False).modules}["drop"]
    (warning,) = dropped.warnings  # a model dropped: its table too
    assert "leaves virtual table shop_item_fts not working: no such table: main.shop_item" in warning


@pytest.fixture
def command(tmp_path):
    """`manage.py tablemigrate ...` on the default (in-memory) database, with the given models."""
    current: list = []

    def tablemigrate(models_: list, *args: str, **options) -> str:
        current[:] = models_
        out = io.StringIO()
        call_command("tablemigrate", *args, "--noinput", stdout=out, **options)
        return out.getvalue()

    tablemigrate.directory = tmp_path / "m"
    with override_settings(TABLEMIGRATE_MIGRATIONS_DIR=tmp_path / "m"), \
            mock.patch("tablemigrate.project.build.managed_models", lambda alias="default": list(current)):
        yield tablemigrate
    with connection.cursor() as cursor:
        for table in ("shop_item_fts", "shop_item", "shop_product", "tablemigrate_history"):
            cursor.execute(f'DROP TABLE IF EXISTS "{table}"')


def test_the_commands_warn_at_generate_refuse_at_run_and_run_the_mended_module(command):
    v1, v2 = build_models(_spec("shop_item")), build_models(_spec("shop_product"))
    command(v1, "generate", verbosity=0)
    module(command.directory, "20990101_000000_01_search",
           f"up = [{FTS.format('shop_item')!r}]\ndown = ['DROP TABLE shop_item_fts']\n")
    command(v1, "run", "--no-backup", verbosity=0)
    conn = connection.connection
    conn.execute("INSERT INTO shop_item (name) VALUES ('red pen')")
    conn.execute("INSERT INTO shop_item_fts(shop_item_fts) VALUES('rebuild')")
    out = command(v2, "generate", "--rename", "shop_item:shop_product", verbosity=1)
    assert "  ! warning: migration 20990101_000001_01_rename_shop_product (up) leaves virtual table shop_item_fts " \
           "not working: no such table: main.shop_item" in out
    dump = list(conn.iterdump())
    for args in (["run", "--no-backup"], ["run", "--dry-run"]):
        with pytest.raises(CommandError) as caught:
            command(v2, *args, verbosity=0)
        assert caught.value.returncode == 1
        assert str(caught.value).startswith("validation failed, nothing was changed: migration "
                                            "20990101_000001_01_rename_shop_product (up) leaves virtual table "
                                            "shop_item_fts not working: no such table: main.shop_item")
        assert "\n" not in str(caught.value) and list(conn.iterdump()) == dump
    path = command.directory / "20990101_000001_01_rename_shop_product.py"
    rename = "'ALTER TABLE \"shop_item\" RENAME TO \"shop_product\"',\n"
    path.write_text(path.read_text().replace(rename, rename + "".join(f"    {s!r},\n" for s in RECREATE), 1))
    command(v2, "run", "--no-backup", "--allow-destructive", verbosity=0)
    assert conn.execute(SEARCH).fetchall() == [(1, "red pen")]
