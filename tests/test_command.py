"""The command in-process: post_migrate after a run that changed something, and not otherwise."""

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models.signals import post_migrate
from django.test import override_settings


@pytest.fixture
def migrations(tmp_path):
    (tmp_path / "0001_create.py").write_text("up = ['CREATE TABLE extra (x)']\ndown = ['DROP TABLE extra']\n")
    yield tmp_path
    with connection.cursor() as cursor:  # the shared in-memory test database: leave it as found
        cursor.execute("DROP TABLE IF EXISTS extra")
        cursor.execute("DROP TABLE IF EXISTS tablemigrate_history")


def test_run_sends_post_migrate_like_djangos_migrate(migrations):
    sent = []

    def receiver(sender, using, **kwargs):
        sent.append(using)

    post_migrate.connect(receiver, weak=False)
    try:
        with override_settings(TABLEMIGRATE_MIGRATIONS_DIR=migrations):
            call_command("tablemigrate", "run", "--noinput", "--no-backup", verbosity=0)
            assert sent and set(sent) == {"default"}
            sent.clear()
            call_command("tablemigrate", "run", "--noinput", "--no-backup", verbosity=0)  # nothing pending
            assert sent == []
            with override_settings(TABLEMIGRATE_POST_MIGRATE=False):
                call_command("tablemigrate", "revert", "--noinput", "--no-backup", "--allow-destructive",
                             verbosity=0)
            assert sent == []
    finally:
        post_migrate.disconnect(receiver)


def test_objects_that_exist_before_the_command_are_frozen_while_it_runs_and_only_then(migrations):
    import gc

    seen = []

    def receiver(sender, using, **kwargs):
        seen.append(gc.get_freeze_count())

    post_migrate.connect(receiver, weak=False)
    try:
        with override_settings(TABLEMIGRATE_MIGRATIONS_DIR=migrations):
            assert gc.get_freeze_count() == 0
            call_command("tablemigrate", "run", "--noinput", "--no-backup", verbosity=0)
            assert seen[-1] > 0  # the collector skipped them during the run
            assert gc.get_freeze_count() == 0  # and the host process gets its collector back as it was
            call_command("tablemigrate", "revert", "--noinput", "--no-backup", "--allow-destructive", verbosity=0)
            gc.freeze()  # a host that froze its own objects (a pre-forking server): left alone
            try:
                frozen = gc.get_freeze_count()
                call_command("tablemigrate", "run", "--noinput", "--no-backup", verbosity=0)
                assert seen[-1] <= frozen  # nothing of the command's own was added to the host's freeze
                assert 0 < gc.get_freeze_count() <= frozen  # and the host's freeze was not undone
            finally:
                gc.unfreeze()
    finally:
        post_migrate.disconnect(receiver)


def test_a_command_line_process_ends_with_connections_closed_then_everything_frozen(migrations, monkeypatch):
    import gc

    from django.db import connections

    from tablemigrate.management.commands.tablemigrate import Command

    closed = []
    monkeypatch.setattr(connections, "close_all", lambda: closed.append(gc.get_freeze_count()))
    with override_settings(TABLEMIGRATE_MIGRATIONS_DIR=migrations):
        try:
            Command().run_from_argv(["manage.py", "tablemigrate", "show"])
            frozen = gc.get_freeze_count()
        finally:
            gc.unfreeze()
    assert closed == [0]  # Django closes the connections first, while nothing is frozen
    assert frozen > 0  # then the interpreter's collections at exit skip every object
