"""The example project's scenario end to end, through the real manage.py in separate processes."""

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import copy_example_project, manage, project_env, tablemigrate

pytestmark = pytest.mark.subprocess  # every test here starts the project's manage.py or a process


@pytest.fixture
def example(tmp_path):
    return copy_example_project(tmp_path)


def rows(db, sql):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_change_a_model_generate_show_run_revert(example):
    db = example / "example_project" / "db.sqlite3"
    assert "Applied" in tablemigrate(example, "run", "--noinput").stdout
    conn = sqlite3.connect(db)
    conn.executescript("""
        INSERT INTO users_user VALUES (1, 'ann', 'a@x', '', 1, '2024-01-01');
        INSERT INTO posts_tag VALUES (1, 'news');
        INSERT INTO posts_post VALUES (1, 1, 'Hello', 'body', 1, '2024-01-01');
        INSERT INTO posts_post_tags VALUES (1, 1, 1);
        INSERT INTO chats_chat VALUES (1, 'general', '2024-01-01');
        INSERT INTO chats_message VALUES (1, 1, 1, 'hi', '2024-01-01');
    """)
    conn.close()
    models = example / "example_project" / "posts" / "models.py"
    models.write_text(models.read_text().replace(
        "    body = models.TextField()\n",
        "    body = models.TextField(null=True)\n    summary = models.CharField(max_length=200, default='n/a')\n"))
    out = tablemigrate(example, "generate", "AddSummary", "--noinput").stdout
    assert "update_posts_post.py" in out and "add column summary" in out
    assert tablemigrate(example, "generate", "--check", "--noinput").stdout.strip() == "No changes detected"
    show = tablemigrate(example, "show").stdout
    assert "[ ] " in show and "INSERT OR ABORT INTO \"new__posts_post\"" in show
    assert "Applied" in tablemigrate(example, "run", "--noinput").stdout
    assert rows(db, "SELECT id, title, body, summary FROM posts_post") == [(1, "Hello", "body", "n/a")]
    assert rows(db, "SELECT count(*) FROM posts_post_tags") == [(1,)]
    assert rows(db, "PRAGMA foreign_key_check") == []
    refused = tablemigrate(example, "revert", "--noinput", check=False)
    assert refused.returncode == 1 and "drops column posts_post.summary" in refused.stderr
    assert "Reverted" in tablemigrate(example, "revert", "--noinput", "--allow-destructive").stdout
    assert rows(db, "SELECT id, title, body FROM posts_post") == [(1, "Hello", "body")]


@pytest.mark.parametrize("runners", [4, 8])
def test_runners_started_at_once_apply_each_migration_exactly_once(example, runners):
    procs = [subprocess.Popen([sys.executable, "manage.py", "tablemigrate", "run", "--noinput"], cwd=example,
                              env=project_env(example), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(runners)]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]
    assert all(rc == 0 for rc, _, _ in results), results
    db = example / "example_project" / "db.sqlite3"
    names = [r[0] for r in rows(db, "SELECT name FROM tablemigrate_history")]
    assert len(names) == len(set(names)) == 7
    django = rows(db, "SELECT app, name FROM django_migrations")  # auth's and contenttypes', applied first
    assert len(django) == len(set(django)) >= 14
    assert sum(out.count("Applied") for _, out, _ in results) == 7 + len(django)


def test_bad_input_gets_one_line_and_an_exit_code(example):
    bad = example / "example_project" / "tablemigrations" / "99999999_999999_01_bad.py"
    bad.write_text("up = [\n")
    proc = tablemigrate(example, "run", "--noinput", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "99999999_999999_01_bad.py:1: syntax error" in proc.stderr
    assert not (example / "example_project" / "db.sqlite3").exists() or rows(
        example / "example_project" / "db.sqlite3", "SELECT count(*) FROM sqlite_master") == [(0,)]
    assert tablemigrate(example, "run", "--bogus", check=False).returncode == 2


def test_a_failed_run_logs_its_steps_and_prints_the_error_once(example):
    tablemigrate(example, "run", "--noinput")
    bad = example / "example_project" / "tablemigrations" / "99999999_999999_01_bad.py"
    db = example / "example_project" / "db.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO users_user VALUES (1, 'ann', 'a@x', '', 1, '2024-01-01')")
    conn.commit()
    conn.close()
    bad.write_text("up = ['CREATE TABLE extra (x)', 'UPDATE users_user SET display_name = 1', "
                   "'INSERT INTO users_user SELECT * FROM users_user']\n")  # fails on the real row only
    proc = tablemigrate(example, "run", "--noinput", check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert any(line.startswith("migration backup written to ") for line in lines), lines
    assert [line for line in lines if "failed at step" in line] == [lines[-1]]
    assert lines[-1].startswith("CommandError: migration 99999999_999999_01_bad (up) failed at step 3")
    assert "\r" not in proc.stderr  # not a terminal: no progress display
    assert rows(db, "SELECT count(*), display_name FROM users_user") == [(1, "")]
    assert rows(db, "SELECT name FROM sqlite_master WHERE name = 'extra'") == []


def test_baseline_adopts_a_database_made_by_djangos_migrate(example):
    (example / "legacy_settings.py").write_text(
        # The project before it adopted tablemigrate: Django's migrations own every app.
        "from example_project.settings import *  # noqa\nMIGRATION_MODULES = {}\nTABLEMIGRATE_APPS = []\n")

    def django(*args):
        manage(example, *args, DJANGO_SETTINGS_MODULE="legacy_settings")
    django("makemigrations", "users", "posts", "chats")
    django("migrate")
    db = example / "example_project" / "db.sqlite3"
    conn = sqlite3.connect(db)
    conn.executescript("""
        INSERT INTO users_user (id, username, email, display_name, is_active, created_at)
            VALUES (1, 'ann', 'a@x', '', 1, '2024-01-01');
        INSERT INTO posts_tag (id, name) VALUES (1, 'news');
        INSERT INTO posts_post (id, author_id, title, body, published, created_at)
            VALUES (1, 1, 'Hello', 'body', 1, '2024-01-01');
        INSERT INTO posts_post_tags (id, post_id, tag_id) VALUES (1, 1, 1);
        CREATE TABLE legacy_notes (id integer PRIMARY KEY, note text);  -- no model owns it
        INSERT INTO legacy_notes VALUES (1, 'keep me');
    """)
    conn.close()
    fight = tablemigrate(example, "run", "--noinput", check=False)  # the example's create modules vs Django's tables
    assert fight.returncode == 2 and "adopt it with `manage.py tablemigrate baseline`" in fight.stderr
    shutil.rmtree(example / "example_project" / "tablemigrations")
    out = tablemigrate(example, "baseline", "--noinput").stdout
    assert out.count("Created ") == 7 and "Recorded 7 migrations as applied" in out
    theirs, nobodys = out.rstrip().splitlines()[-3:-1]
    assert theirs.startswith("Left alone, their apps' Django migrations own them: auth_group, ")
    assert theirs.endswith(", auth_user_user_permissions, django_content_type")
    assert nobodys == "Left alone, no model of yours owns them (unmanaged models, made by hand): legacy_notes"
    assert tablemigrate(example, "generate", "--check", "--noinput").stdout.strip() == "No changes detected"
    again = tablemigrate(example, "baseline", "--noinput")  # once: then there is nothing to adopt (issue 23)
    assert "already has tablemigrate history (7 migrations applied): nothing to adopt" in again.stdout
    models = example / "example_project" / "posts" / "models.py"
    models.write_text(models.read_text().replace(
        "    body = models.TextField()\n", "    body = models.TextField()\n    views = models.IntegerField(default=0)\n"))
    check = manage(example, "check", check=False)
    assert "tablemigrate.W002" in check.stderr  # baseline recorded the models' fingerprint
    assert "tablemigrate.W003" in check.stderr and "chats, posts, users" in check.stderr  # their migrations/
    for app in ("users", "posts", "chats"):  # as the README says: tablemigrate owns them now
        shutil.rmtree(example / "example_project" / app / "migrations")
    tablemigrate(example, "generate", "AddViews", "--noinput")
    tablemigrate(example, "run", "--noinput")
    assert rows(db, "SELECT id, title, body, views FROM posts_post") == [(1, "Hello", "body", 0)]
    assert rows(db, "SELECT id, post_id, tag_id FROM posts_post_tags") == [(1, 1, 1)]
    assert rows(db, "SELECT username FROM users_user") == [("ann",)]
    assert tablemigrate(example, "generate", "--check", "--noinput").stdout.strip() == "No changes detected"
    assert "Drift" not in tablemigrate(example, "show").stdout
    assert rows(db, "SELECT note FROM legacy_notes") == [("keep me",)]
    before = rows(db, "SELECT sql FROM sqlite_master ORDER BY name")
    migrate = manage(example, "migrate", check=False)
    assert migrate.returncode == 0 and "No migrations to apply" in migrate.stdout  # auth's are applied
    assert "tablemigrate.W" not in migrate.stderr
    assert rows(db, "SELECT sql FROM sqlite_master ORDER BY name") == before


def test_snapshot_restore_through_manage_py_leaves_no_wal_behind(example):
    tablemigrate(example, "run", "--noinput")
    db = example / "example_project" / "db.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("INSERT INTO posts_tag (id, name) VALUES (1, 'news')")
    conn.commit()
    conn.close()
    tablemigrate(example, "snapshot", "--name", "v1")
    for bad in ("../../x", "a/b", "x;y"):
        proc = tablemigrate(example, "snapshot", "--name", bad, check=False)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "invalid snapshot name" in proc.stderr
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM posts_tag")
    conn.commit()
    conn.close()
    listing = tablemigrate(example, "snapshots").stdout
    assert "v1" in listing and "20261125_060502_07_create_posts_post_tags" in listing
    out = tablemigrate(example, "restore", "--name", "v1").stdout
    assert "previous state was saved to" in out
    assert rows(db, "SELECT name FROM posts_tag") == [("news",)]
    assert not Path(f"{db}-wal").exists() and not Path(f"{db}-shm").exists()
    refused = tablemigrate(example, "restore", "--backup", "no-such-file.sqlite3", check=False)
    assert refused.returncode == 2 and "refusing to restore" in refused.stderr
    assert "posts_tag" in tablemigrate(example, "stats").stdout
    db.unlink()  # disaster recovery: the database file is gone
    tablemigrate(example, "restore", "--name", "v1")
    assert rows(db, "SELECT name FROM posts_tag") == [("news",)]
    assert tablemigrate(example, "inspect", "nosuch", check=False).returncode == 2


def test_system_checks_warn_about_pending_migrations_model_changes_and_django_migrations(example):
    def check(env_extra=None):
        return manage(example, "check", check=False, **(env_extra or {})).stderr

    tablemigrate(example, "run", "--noinput")
    assert "tablemigrate.W" not in check()
    applied = sorted((example / "example_project" / "tablemigrations").glob("2*.py"))[0]
    original = applied.read_text()
    applied.write_text(original + "# a comment\n")  # W006: run would refuse it; generate cannot know
    assert "tablemigrate.W006" in check() and "was edited after it was applied" in check()
    assert "to accept the edit, write in it: previous_checksums" in tablemigrate(example, "show").stdout
    applied.write_text(original)
    (example / "example_project" / "tablemigrations" / "99999999_999999_01_more.py").write_text(
        "up = ['CREATE TABLE more (x)']\ndown = ['DROP TABLE more']\n")
    assert "tablemigrate.W001" in check()
    models = example / "example_project" / "posts" / "models.py"
    models.write_text(models.read_text().replace("    body = models.TextField()\n",
                                                 "    body = models.TextField()\n    views = models.IntegerField(default=0)\n"))
    assert "tablemigrate.W002" in check()
    (example / "legacy_settings.py").write_text(
        "from example_project.settings import *  # noqa\nMIGRATION_MODULES = {'posts': 'posts_migrations'}\n")
    assert "tablemigrate.W003" not in check({"DJANGO_SETTINGS_MODULE": "legacy_settings"})  # no such package
    (example / "posts_migrations").mkdir()
    (example / "posts_migrations" / "__init__.py").write_text("")  # empty, as `startapp` makes it: no migrations
    assert "tablemigrate.W003" not in check({"DJANGO_SETTINGS_MODULE": "legacy_settings"})
    (example / "posts_migrations" / "0001_initial.py").write_text(
        "from django.db import migrations\n\n\nclass Migration(migrations.Migration):\n    operations = []\n")
    assert "tablemigrate.W003" in check({"DJANGO_SETTINGS_MODULE": "legacy_settings"})


@pytest.mark.parametrize("history", ["0", "1"])
def test_test_database_from_models_or_history_under_both_runners(example, history):
    env = project_env(example, EXAMPLE_TEST_MIGRATIONS=history)

    def run(*args):
        proc = subprocess.run([sys.executable, *args], cwd=example, env=env, capture_output=True, text=True,
                              timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc

    assert "Ran 4 tests" in run("manage.py", "test", "example_project").stderr
    env["EXAMPLE_TEST_DB"] = str(example / "test.sqlite3")
    pytest_args = ("-m", "pytest", "-q", "-p", "no:cacheprovider", "--ds=example_project.settings", "--reuse-db",
                   "example_project/posts/tests.py")
    assert "4 passed" in run(*pytest_args).stdout
    if history == "1":
        first = rows(example / "test.sqlite3", "SELECT name, applied_at FROM tablemigrate_history")
        assert len(first) == 7
    assert "4 passed" in run(*pytest_args).stdout  # the reused database: nothing re-applied, no rows leaked
    if history == "1":
        assert rows(example / "test.sqlite3", "SELECT name, applied_at FROM tablemigrate_history") == first
    else:  # switching the history on over a test database that was built from the models
        env["EXAMPLE_TEST_MIGRATIONS"] = "1"
        proc = subprocess.run([sys.executable, *pytest_args], cwd=example, env=env, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode != 0 and "the reused test database was built from the models" in proc.stdout


def test_more_bad_input_one_line_each(example):
    db = example / "example_project" / "db.sqlite3"
    proc = tablemigrate(example, "show")  # no database yet: everything pending, and no file created
    assert "does not exist yet" in proc.stdout and "[ ] 20261125_060502_01" in proc.stdout and not db.exists()
    proc = tablemigrate(example, "stats", check=False)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and not db.exists()
    tablemigrate(example, "run", "--noinput")
    bad = example / "example_project" / "tablemigrations" / "99999999_999999_01_bad.py"
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO users_user (id, username, email, display_name, is_active, created_at) "
                 "VALUES (1, 'ann', 'a@x', '', 1, '2024')")
    conn.commit()
    conn.close()
    bad.write_text("up = ['CREATE TABLE extra (x)', 'INSERT INTO users_user SELECT * FROM users_user']\n")
    quiet = tablemigrate(example, "run", "--noinput", "-v", "0", check=False)
    assert quiet.returncode == 1 and quiet.stderr.count("UNIQUE constraint failed") == 1
    assert quiet.stderr.strip().count("\n") == 0
    missing = tablemigrate(example, "run", "--noinput", check=False, EXAMPLE_MIGRATIONS_DIR=str(example / "nowhere"))
    assert missing.returncode == 2 and "migrations directory" in missing.stderr
