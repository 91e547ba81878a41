"""The command in-process: post_migrate after every run (nothing pending included) and after a revert, and
not when TABLEMIGRATE_POST_MIGRATE is False."""

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


@pytest.fixture
def sent():
    """The databases post_migrate was sent for, while the test runs."""
    sent: list[str] = []

    def receiver(sender, using, **kwargs):
        sent.append(using)

    post_migrate.connect(receiver, weak=False)
    yield sent
    post_migrate.disconnect(receiver)


def test_run_sends_post_migrate_like_djangos_migrate(migrations, sent):
    with override_settings(TABLEMIGRATE_MIGRATIONS_DIR=migrations):
        call_command("tablemigrate", "run", "--noinput", "--no-backup", verbosity=0)
        assert sent and set(sent) == {"default"}
        sent.clear()
        call_command("tablemigrate", "run", "--noinput", "--no-backup", verbosity=0)  # nothing pending: as `migrate`
        assert sent == ["default"] * len(sent) and len(sent) == 2  # once per app config with models
        sent.clear()
        with override_settings(TABLEMIGRATE_POST_MIGRATE=False):
            call_command("tablemigrate", "run", "--noinput", "--no-backup", verbosity=0)
            call_command("tablemigrate", "revert", "--noinput", "--no-backup", "--allow-destructive",
                         verbosity=0)
        assert sent == []


def test_objects_that_exist_before_the_command_are_frozen_while_it_runs_and_only_then(migrations):
    import gc

    seen = []

    def receiver(sender, using, **kwargs):
        seen.append(gc.get_freeze_count())

    post_migrate.connect(receiver, weak=False)
    try:
        with override_settings(TABLEMIGRATE_MIGRATIONS_DIR=migrations):
            gc.unfreeze()  # a host that froze nothing (CPython 3.12 starts with 375 objects of its own frozen)
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


def test_a_command_line_process_keeps_what_existed_before_it_frozen_to_the_end(migrations, monkeypatch):
    import gc
    import sys
    import weakref

    from tablemigrate.management.commands.tablemigrate import Command

    class Cycle:
        pass

    made = []

    def receiver(sender, using, **kwargs):  # something the command's own work creates and drops
        c = Cycle()
        c.me = c
        made.append(weakref.ref(c))

    post_migrate.connect(receiver, weak=False)
    argv = ["manage.py", "tablemigrate", "run", "--noinput", "--no-backup"]
    try:
        with override_settings(TABLEMIGRATE_MIGRATIONS_DIR=migrations):
            monkeypatch.setattr(sys, "argv", list(argv))
            try:
                Command().run_from_argv(list(argv))  # as manage.py runs it: the whole process
                frozen = gc.get_freeze_count()
                gc.collect()
                assert made and made[-1]() is None  # the command's own garbage is still collected
            finally:
                gc.unfreeze()
            assert frozen > 0  # what Django set up stays frozen: the exit collections skip it
            call_command("tablemigrate", "revert", "--noinput", "--no-backup", "--allow-destructive", verbosity=0)
            monkeypatch.setattr(sys, "argv", ["script.py"])  # a script calling execute_from_command_line
            Command().run_from_argv(list(argv))
            assert gc.get_freeze_count() == 0  # and carrying on afterwards: nothing stays frozen
    finally:
        post_migrate.disconnect(receiver)


class _ClosedPipe:
    """A stdout whose reader went away (`run | head -0`)."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        pass


def test_run_and_revert_finish_their_work_before_a_closed_stdout_stops_them(migrations, sent):
    with override_settings(TABLEMIGRATE_MIGRATIONS_DIR=migrations):
        for action in (["run"], ["revert", "--allow-destructive"]):
            sent.clear()
            with pytest.raises(BrokenPipeError):
                call_command("tablemigrate", *action, "--noinput", "--no-backup", stdout=_ClosedPipe())
            assert sent, action  # post_migrate ran before the first line was printed


def test_a_command_inside_a_command_does_not_count_the_frozen_objects_again(monkeypatch):
    """`run --all-databases` runs each database's command inside its own: counting the frozen objects
    walks all of them (4 ms a database at 40 models), so the inner one trusts the outer one's freeze."""
    import gc

    from tablemigrate.cli.process import long_lived_objects_frozen

    with long_lived_objects_frozen(until_exit=False):
        frozen = gc.get_freeze_count()
        with monkeypatch.context() as m:
            m.setattr(gc, "get_freeze_count", lambda: pytest.fail("counted the frozen objects again"))
            with long_lived_objects_frozen(until_exit=False):
                pass
        assert gc.get_freeze_count() == frozen  # the inner command did not unfreeze the outer one's objects
    assert gc.get_freeze_count() == 0


def test_call_command_builds_the_parser_once(monkeypatch):
    """A fleet runs one `call_command` per database: the parser (10 ms to build) is built once per process,
    and what one call parsed does not carry into the next."""
    from django.core.management import call_command
    from django.core.management.base import BaseCommand, CommandError

    from tablemigrate.management.commands.tablemigrate import Command

    monkeypatch.setattr(Command, "_parsers", {}, raising=False)
    built = []
    real = BaseCommand.create_parser
    monkeypatch.setattr(BaseCommand, "create_parser", lambda self, *a, **k: built.append(a) or real(self, *a, **k))
    for _ in range(2):
        with pytest.raises(CommandError, match="--jobs works with --all-databases only"):
            call_command("tablemigrate", "show", "--jobs", "2")
    with pytest.raises(CommandError, match="--only works with --all-databases only"):
        call_command("tablemigrate", "show", "--only", "x")  # --jobs is back to its default
    assert len(built) == 1
