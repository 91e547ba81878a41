"""A lock another connection keeps is exit 3 wherever the command meets it (issue 22; found by an independent
review after the fix): while the command opens the database (a rollback journal's pending write blocks
readers too), and in a post_migrate receiver after the migrations were applied."""

import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from .helpers import copy_example_project, project_env, tablemigrate, timed_commands

pytestmark = pytest.mark.subprocess  # every test here starts the project's manage.py or a process


@pytest.fixture
def example(tmp_path):
    site = copy_example_project(tmp_path)
    tablemigrate(site, "run", "--noinput")
    return site


def test_a_database_locked_while_the_command_opens_it_is_exit_3_within_the_busy_timeout(example):
    db = example / "example_project" / "db.sqlite3"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # rollback journal: readers wait too
    holder.execute("CREATE TABLE lockme (x)")
    commands = [["show"], ["run", "--noinput"], ["snapshot", "--name", "s1"]]
    try:
        for command in commands:
            proc = tablemigrate(example, *command, check=False, EXAMPLE_BUSY_TIMEOUT="0.3")
            assert proc.returncode == 3, (command, proc.stderr)
            assert "locked" in proc.stderr and "not a usable SQLite database" not in proc.stderr
        # How long each waits is the project's busy timeout, not sqlite3's default 5 s: one second more of
        # it makes the command wait (at least half a second) longer. (Timeout 0 first: the imports.)
        timed = timed_commands(example, commands, [0, 0.2, 1.2], DJANGO_SETTINGS_MODULE="example_project.settings")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    for name in ("show", "run", "snapshot"):
        assert {timed[name, t][0] for t in (0, 0.2, 1.2)} == {3}, timed
        assert timed[name, 1.2][1] - timed[name, 0.2][1] >= 0.5, timed


def test_a_post_migrate_receiver_that_meets_a_lock_is_exit_3_and_says_the_migrations_were_applied(example):
    directory = example / "example_project" / "tablemigrations"
    (directory / "20991231_000000_01_extra.py").write_text("up = ['CREATE TABLE extra (x)']\ndown = ['DROP TABLE extra']\n")
    db = example / "example_project" / "db.sqlite3"
    driver = textwrap.dedent(f"""
        import sqlite3
        import django
        django.setup()
        from django.core.management import call_command
        from django.core.management.base import CommandError
        from django.db.models.signals import post_migrate

        holder = sqlite3.connect({str(db)!r}, isolation_level=None)

        def the_application_writes(**kwargs):  # a receiver that writes, as contenttypes' does
            holder.execute("BEGIN IMMEDIATE")
            from django.contrib.auth.models import Group
            Group.objects.create(name="late")

        post_migrate.connect(the_application_writes, weak=False, dispatch_uid="busy")
        try:
            call_command("tablemigrate", "run", "--noinput")
            print("rc=0")
        except CommandError as exc:
            print(f"rc={{exc.returncode}} {{exc}}")
        finally:
            holder.execute("ROLLBACK")
    """)
    env = {**project_env(example), "EXAMPLE_BUSY_TIMEOUT": "0.3", "DJANGO_SETTINGS_MODULE": "example_project.settings"}
    proc = subprocess.run([sys.executable, "-c", driver], cwd=example, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.startswith("rc=3 the migrations were applied, but a post_migrate receiver could not write"), \
        proc.stdout + proc.stderr
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT name FROM tablemigrate_history WHERE name LIKE '%extra'").fetchall()
    assert os.path.exists(db)
