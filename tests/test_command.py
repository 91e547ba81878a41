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
