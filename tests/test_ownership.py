"""Issue 12, in process: which apps tablemigrate owns, and what `generate`, `baseline` and the system checks
do with tables it does not own or that SQL made (virtual tables)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from django.db import models
from django.test.utils import isolate_apps

from tablemigrate.checks import check_django_migrations
from tablemigrate.errors import ConfigurationError
from tablemigrate.generate.baseline import baseline
from tablemigrate.generate.pipeline import generate
from tablemigrate.history import applied as history
from tablemigrate.history.loader import load_migrations
from tablemigrate.history.status import Target, history_names
from tablemigrate.project import ownership as own_mod
from tablemigrate.project.build import foreign_tables, managed_models
from tablemigrate.run.drift import drift
from tablemigrate.run.dryrun import dry_run
from tablemigrate.run.recovery import OtherWriters, recover

from .helpers import apply_new, module
from .modelgen import build_models
from .test_generate import blog

TESTS_DIR = Path(__file__).resolve().parent
# Any importable package stands for a migrations package: only its presence is looked up.
WITH_MIGRATIONS = {"sampleapp": "tests"}


def owned(settings) -> set[str]:
    return set(own_mod.ownership().owned)


def test_an_app_without_django_migrations_is_owned_wherever_it_lives(settings, monkeypatch):
    monkeypatch.setattr(own_mod, "_package_dirs", lambda: (TESTS_DIR,))  # as if installed from a package
    assert owned(settings) == {"sampleapp"}
    settings.TABLEMIGRATE_APPS = []  # nothing listed: still nobody else would create its tables
    assert owned(settings) == {"sampleapp"}


def test_by_default_the_projects_own_apps_are_owned_and_installed_packages_keep_their_migrations(settings, monkeypatch):
    settings.MIGRATION_MODULES = WITH_MIGRATIONS
    assert owned(settings) == {"sampleapp"}  # inside BASE_DIR, not in site-packages
    settings.BASE_DIR = TESTS_DIR / "elsewhere"  # its code is not in the project
    assert own_mod.ownership().django == {"sampleapp"} and not owned(settings)
    settings.BASE_DIR = TESTS_DIR
    monkeypatch.setattr(own_mod, "_package_dirs", lambda: (TESTS_DIR,))  # a virtualenv inside the project
    assert own_mod.ownership().django == {"sampleapp"}


def test_the_setting_lists_owned_apps_and_refuses_unknown_labels(settings):
    settings.MIGRATION_MODULES = WITH_MIGRATIONS
    settings.TABLEMIGRATE_APPS = []
    assert own_mod.ownership().django == {"sampleapp"}
    assert managed_models() == []  # generate, baseline and drift see none of its models
    assert {"sampleapp_author", "sampleapp_book"} <= foreign_tables()
    settings.TABLEMIGRATE_APPS = ["sampleapp"]
    assert owned(settings) == {"sampleapp"} and foreign_tables() == frozenset()
    settings.TABLEMIGRATE_APPS = ["sampleap"]
    with pytest.raises(ConfigurationError, match="TABLEMIGRATE_APPS names sampleap, not an installed app"):
        own_mod.ownership()
    settings.TABLEMIGRATE_APPS = "sampleapp"
    with pytest.raises(ConfigurationError, match="must be a list"):
        own_mod.ownership()
    settings.TABLEMIGRATE_APPS = [1]
    with pytest.raises(ConfigurationError, match="must be a list of app labels"):
        own_mod.ownership()


def test_an_editable_checkout_in_a_virtualenv_inside_the_project_is_an_installed_package(settings, monkeypatch,
                                                                                          tmp_path):
    from django.apps import apps

    settings.MIGRATION_MODULES = WITH_MIGRATIONS
    settings.BASE_DIR = tmp_path
    venv = tmp_path / ".venv"
    monkeypatch.setattr(apps.get_app_config("sampleapp"), "path", str(venv / "src" / "pkg" / "sampleapp"))
    monkeypatch.setattr(own_mod.sys, "prefix", str(venv))  # `pip install -e git+...` checks out there
    own_mod._package_dirs.cache_clear()
    try:
        assert own_mod.ownership().django == {"sampleapp"}
    finally:
        own_mod._package_dirs.cache_clear()


def test_system_checks_warn_about_owned_apps_with_django_migrations_and_bad_settings(settings):
    assert check_django_migrations() == []
    settings.MIGRATION_MODULES = WITH_MIGRATIONS
    [warning] = check_django_migrations()
    assert warning.id == "tablemigrate.W003" and "sampleapp" in warning.msg
    settings.TABLEMIGRATE_APPS = []  # its Django migrations own it now: no fight
    assert check_django_migrations() == []
    settings.TABLEMIGRATE_APPS = ["nope"]
    assert [m.id for m in check_django_migrations()] == ["tablemigrate.E001"]


def test_generate_never_drops_tables_handed_over_to_django_migrations(tmp_path):
    """A 0.1 history created tables of an app whose Django migrations own them now: generate leaves
    them alone instead of writing a DROP TABLE."""
    d = tmp_path / "m"
    generate(d, build_models(blog()))  # the old history owns blog_author and blog_post
    only_post = [m for m in build_models(blog()) if m._meta.db_table == "blog_post"]
    dropping = generate(d, only_post, write=False)
    assert [m.plan.table for m in dropping.modules] == ["blog_author"]  # without the rule: the drop
    handed = generate(d, only_post, write=False, foreign=frozenset({"blog_author"}))
    assert not handed.changed


def _notes_models() -> tuple[type[models.Model], type[models.Model]]:
    """Two models of an owned app; `notes_note` stands for an FTS5 virtual table. Call inside
    `isolate_apps` (a registry of the test's own)."""

    class Note(models.Model):
        body = models.TextField()

        class Meta:
            app_label = "sampleapp"
            db_table = "notes_note"

    class Tag(models.Model):
        name = models.TextField()

        class Meta:
            app_label = "sampleapp"
            db_table = "notes_tag"

    return Note, Tag


def _fts_history(directory: Path) -> None:
    module(directory, "20260101_000000_01_create_notes_note",
           "up = [\"CREATE VIRTUAL TABLE notes_note USING fts5(body)\"]\ndown = ['DROP TABLE notes_note']\n")


@isolate_apps("tests.sampleapp")
def test_a_model_whose_table_is_a_virtual_table_is_left_alone_by_generate(tmp_path):
    Note, Tag = _notes_models()
    d = tmp_path / "m"
    _fts_history(d)
    first = generate(d, [Note, Tag])
    assert [m.plan.table for m in first.modules] == ["notes_tag"]  # never a CREATE TABLE notes_note
    conn = sqlite3.connect(":memory:", isolation_level=None)
    apply_new(conn, d, set())  # the history applies: no "table notes_note already exists"
    assert conn.execute("SELECT sql FROM sqlite_master WHERE name = 'notes_note'").fetchone()[0].startswith(
        "CREATE VIRTUAL TABLE")
    assert not generate(d, [Note, Tag], write=False).changed  # no permanent drift either
    assert len(load_migrations(d)) == 2
    db = tmp_path / "live.sqlite3"
    live = sqlite3.connect(db, isolation_level=None)
    apply_new(live, d, set())
    history.ensure(live)
    for m in load_migrations(d):
        history.record(live, m, "up", 0.0)
    assert drift(Target("default", live, db), d, {"notes_note", "notes_tag"}) == []  # `show` reports none


@isolate_apps("tests.sampleapp")
def test_baseline_carries_what_sql_made_where_the_modules_make_what_it_needs(tmp_path):
    """The FTS5 table an owned model stands for, the trigger that fills it and a view over an adopted
    table go into the modules; a view or trigger that needs a table the modules do not make (another
    app's, one made by hand) is listed instead: in database A it would break every later RENAME."""
    Note, Tag = _notes_models()
    db = tmp_path / "db.sqlite3"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.executescript("""
        CREATE VIRTUAL TABLE notes_note USING fts5(body);
        CREATE TABLE "notes_tag" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "name" text NOT NULL);
        CREATE TRIGGER notes_tag_ai AFTER INSERT ON notes_tag BEGIN INSERT INTO notes_note(body) VALUES (NEW.name); END;
        CREATE VIEW notes_names AS SELECT name FROM notes_tag;
        CREATE TRIGGER notes_names_ii INSTEAD OF INSERT ON notes_names BEGIN INSERT INTO notes_tag(name) VALUES (NEW.name); END;
        CREATE TABLE legacy (x);
        CREATE TABLE handmade (y);
        CREATE VIEW notes_legacy AS SELECT t.name, l.x FROM notes_tag t, legacy l;
        CREATE VIEW notes_nested AS SELECT * FROM notes_legacy;
        CREATE TRIGGER notes_tag_ad AFTER DELETE ON notes_tag BEGIN DELETE FROM handmade; END;
        CREATE TRIGGER handmade_ai AFTER INSERT ON handmade BEGIN SELECT 1; END;
        CREATE TRIGGER legacy_ai AFTER INSERT ON legacy BEGIN SELECT 1; END;
    """)
    result, left_alone = baseline(Target("default", conn, db), tmp_path / "m", [Note, Tag], write=False,
                                  foreign=frozenset({"legacy"}))
    assert [m.plan.table for m in result.modules] == ["notes_tag", "notes_note", "notes_names"]
    assert [m.plan.noun for m in result.modules] == ["table", "virtual table", "view"]
    assert left_alone == [
        "left alone, their apps' Django migrations own them: legacy",
        "left alone, no model of yours owns them (unmanaged models, made by hand): handmade",
        "kept in this database but not in the modules, as they need tables the modules do not make (new "
        "databases will not have them): view notes_legacy, view notes_nested, trigger notes_tag_ad, "
        "trigger handmade_ai"]

    d = tmp_path / "m"
    baseline(Target("default", conn, db), d, [Note, Tag], foreign=frozenset({"legacy"}))
    assert "-- models: " in (d / "schema.sql").read_text()  # the models match: W002 works from the start
    assert not generate(d, [Note, Tag], write=False).changed  # never a CREATE TABLE notes_note
    fresh = sqlite3.connect(":memory:", isolation_level=None)
    apply_new(fresh, d, set())
    made = "SELECT type, name FROM sqlite_master WHERE name LIKE 'notes%' AND name NOT LIKE 'notes_note_%' ORDER BY 2"
    assert fresh.execute(made).fetchall() == [
        ("view", "notes_names"), ("trigger", "notes_names_ii"), ("table", "notes_note"), ("table", "notes_tag"),
        ("trigger", "notes_tag_ai")]
    fresh.execute("INSERT INTO notes_names(name) VALUES ('through the view')")  # both triggers work
    assert fresh.execute("SELECT body FROM notes_note WHERE notes_note MATCH 'view'").fetchall() == [
        ("through the view",)]


def test_migrate_refuses_owned_apps_migrations_and_everything_when_tablemigrate_owns_all(settings):
    from django.core.management import CommandError
    from django.db.migrations import Migration as DjangoMigration

    from tablemigrate.coexist import DjangoMigrationsDisabled
    from tablemigrate.testing import refuse_migrate

    owned_step = (DjangoMigration("0001_initial", "sampleapp"), False)
    refuse_migrate("default", [], test=False)  # nothing of an owned app: Django's migrate goes ahead
    with pytest.raises(CommandError, match=r"tablemigrate owns app sampleapp, but `migrate` would apply its "
                                           r"Django migrations \(sampleapp.0001_initial\)"):
        refuse_migrate("default", [owned_step], test=True)  # test databases too
    settings.TABLEMIGRATE_APPS = []
    settings.MIGRATION_MODULES = WITH_MIGRATIONS
    refuse_migrate("default", [owned_step], test=False)  # its Django migrations own it
    settings.MIGRATION_MODULES = DjangoMigrationsDisabled()
    with pytest.raises(CommandError, match="run `manage.py tablemigrate run` instead of `migrate`"):
        refuse_migrate("default", [], test=False)
    refuse_migrate("default", [], test=True)  # the test runner builds the test database from the models


def test_modules_never_change_a_table_handed_over_to_django_migrations(tmp_path, settings):
    """A 0.1 history created sampleapp_author; its app's Django migrations own it now: reverting that
    module (which would drop it) and applying one that alters it refuse, and `show` reports no drift
    for the changes Django's migrations make to it."""
    from tablemigrate.run import runner

    d = tmp_path / "m"
    module(d, "20260101_000000_01_create_sampleapp_author",
           "table = 'sampleapp_author'\nup = ['CREATE TABLE sampleapp_author (id integer PRIMARY KEY, name text)']\n"
           "down = ['DROP TABLE sampleapp_author']\n")
    db = tmp_path / "db.sqlite3"
    conn = sqlite3.connect(db, isolation_level=None)
    target = Target("default", conn, db)
    runner.run(target, d, take_backup=False, django=False)
    conn.execute("INSERT INTO sampleapp_author VALUES (1, 'ann')")
    settings.MIGRATION_MODULES, settings.TABLEMIGRATE_APPS = WITH_MIGRATIONS, []  # handed over
    with pytest.raises(ConfigurationError, match="reverting migration 20260101_000000_01_create_sampleapp_author "
                                                 "would use table sampleapp_author"):
        runner.revert(target, d, allow_destructive=True, take_backup=False)
    module(d, "20260101_000000_02_alter", "up = ['ALTER TABLE sampleapp_author DROP COLUMN name']\n")
    with pytest.raises(ConfigurationError, match="applying migration 20260101_000000_02_alter would use"):
        runner.run(target, d, allow_destructive=True, take_backup=False, django=False)
    assert conn.execute("SELECT * FROM sampleapp_author").fetchall() == [(1, "ann")]
    (d / "20260101_000000_02_alter.py").unlink()
    conn.execute("ALTER TABLE sampleapp_author ADD COLUMN email text")  # as a Django migration would
    assert drift(target, d, set(), foreign_tables()) == []
    assert drift(target, d, set()) == ["sampleapp_author"]  # what `show` said before


def test_no_sql_of_a_module_may_name_a_handed_over_table(tmp_path, settings):
    """An ADD COLUMN there vanishes in Django's next rebuild of the table; any statement naming it breaks
    every replay of the history (database A has no such table). `run --dry-run` refuses as `run` does."""
    from tablemigrate.run import runner

    d = tmp_path / "m"
    module(d, "20260101_000000_01_create_sampleapp_author",
           "table = 'sampleapp_author'\nup = ['CREATE TABLE sampleapp_author (id integer PRIMARY KEY, name text)']\n"
           "down = ['DROP TABLE sampleapp_author']\n")
    db = tmp_path / "db.sqlite3"
    conn = sqlite3.connect(db, isolation_level=None)
    target = Target("default", conn, db)
    runner.run(target, d, take_backup=False, django=False)
    settings.MIGRATION_MODULES, settings.TABLEMIGRATE_APPS = WITH_MIGRATIONS, []
    for n, sql in enumerate(["ALTER TABLE sampleapp_author ADD COLUMN x integer",
                             "INSERT INTO sampleapp_author (name) VALUES ('x')",
                             "CREATE INDEX i ON sampleapp_author (name)",
                             "CREATE TABLE mine AS SELECT name FROM sampleapp_author"], start=2):
        name = f"20260101_000000_{n:02d}_touch"
        module(d, name, f"table = 'mine'\nup = [{sql!r}]\n")
        for attempt in (lambda: runner.run(target, d, take_backup=False, django=False),
                        lambda: dry_run(target, d)):
            with pytest.raises(ConfigurationError, match=f"migration {name} would use table sampleapp_author"):
                attempt()
        (d / f"{name}.py").unlink()
    assert [r[1] for r in conn.execute("PRAGMA table_info(sampleapp_author)")] == ["id", "name"]


def test_an_app_with_django_migrations_but_no_tables_keeps_them(settings, monkeypatch):
    settings.MIGRATION_MODULES, settings.TABLEMIGRATE_APPS = WITH_MIGRATIONS, ["sampleapp"]
    monkeypatch.setattr(own_mod, "_has_tables", lambda app: False)  # proxies only, say, and a data step
    assert own_mod.ownership().django == {"sampleapp"} and not owned(settings)


def test_empty_migration_packages_are_no_migrations_for_django_and_odd_settings_are_left_alone(settings):
    from tablemigrate.apps import _owned_apps_without_migrations_for_django

    settings.MIGRATION_MODULES = {"sampleapp": "tests.emptymigrations"}  # explicit, but empty
    _owned_apps_without_migrations_for_django()
    assert settings.MIGRATION_MODULES == {"sampleapp": None}

    class Odd:  # a project's own kind of mapping object
        def __contains__(self, label):
            return label == "sampleapp"

        def __getitem__(self, label):
            return "tests.emptymigrations"

    odd = Odd()
    settings.MIGRATION_MODULES = odd
    _owned_apps_without_migrations_for_django()  # no crash at startup
    assert settings.MIGRATION_MODULES is odd


def test_a_non_atomic_django_migration_that_stopped_half_way_is_restored_and_told_truthfully(tmp_path):
    """A lock timeout or error in a non-atomic Django migration leaves its completed steps without a
    record: the backup is restored (nobody else wrote), even for a lock timeout; without a backup the
    message says what stays and never that the history matches the schema."""
    from tablemigrate.backups import backup as backups
    from tablemigrate.errors import DatabaseLocked

    db = tmp_path / "db.sqlite3"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE t (x)")
    target = Target("default", conn, db)
    saved = tmp_path / "backups" / "b.sqlite3"
    saved.parent.mkdir()
    backups.take_backup(conn, saved)
    writers = OtherWriters(conn)
    before = history_names(conn)
    conn.execute("CREATE TABLE half_done (x)")  # what the non-atomic migration did before it stopped
    running = "Django migration vendor.0003_big"
    failure = recover(target, DatabaseLocked("locked"), before, saved, writers, running, partial=True)
    # A lock timeout ends as one (exit 3) whatever had to be undone: nothing is wrong with the migration.
    assert isinstance(failure, DatabaseLocked) and "restored from backup" in str(failure)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'half_done'").fetchall() == []
    conn.execute("CREATE TABLE half_done (x)")
    told = str(recover(target, RuntimeError("boom"), before, None, writers, running, partial=True))
    assert told == ("boom; stopped, but no backup was taken: the steps that the non-atomic Django migration "
                    "vendor.0003_big completed before it failed stay, unrecorded")
