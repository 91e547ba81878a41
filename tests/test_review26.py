"""Adversarial review of issue 26 (many databases, LiteFS): reproductions of the defects found."""

from __future__ import annotations

import os

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tablemigrate.sqlite import litefs

from .test_litefs import fake_mountinfo
from .test_provision import site  # noqa: F401 (a fixture)


def test_provision_on_a_litefs_replica_exits_6_and_creates_nothing(site):  # noqa: F811
    """`run` on a replica exits 6 before creating anything; `provision` wrote the new file (on a real replica
    LiteFS refuses the write: a misleading exit 2 "cannot write", after scratch files were tried)."""
    tenants = site / "tenants"
    (tenants / ".primary").write_text("primary-1.vm.app.internal\n")
    with pytest.raises(CommandError) as refused:
        call_command("tablemigrate", "provision", str(tenants / "a.sqlite3"), verbosity=0)
    assert refused.value.returncode == 6 and "LiteFS replica" in str(refused.value)
    assert sorted(os.listdir(tenants)) == [".primary"]


def test_provision_into_a_litefs_mount_is_refused(site, monkeypatch, tmp_path):  # noqa: F811
    """A copy of the template is bytes written past SQLite: LiteFS replicates transactions it sees through
    SQLite's journal, and takes the scratch file `.a.sqlite3.<pid>.<hex>.tmp` for a new database. `provision`
    into a LiteFS mount must refuse (exit 2) and create nothing there."""
    tenants = site / "tenants"
    fake_mountinfo(tmp_path, monkeypatch, tenants)
    assert litefs.mount_of(tenants / "a.sqlite3") is not None
    with pytest.raises(CommandError) as refused:
        call_command("tablemigrate", "provision", str(tenants / "a.sqlite3"), verbosity=0)
    assert refused.value.returncode == 2 and "LiteFS" in str(refused.value)
    assert os.listdir(tenants) == []


def test_a_stop_after_the_fleet_ran_does_not_say_nothing_was_changed(monkeypatch):
    """A signal while `run --all-databases` prints its summary or JSON document (after every database ended:
    a slow pipe, `| less`) reached the command's own handling, which said "nothing was changed": the fleet's
    databases were migrated. The line must not say so."""
    from tablemigrate.cli import fleet
    from tablemigrate.fleet import dispatch, members

    def ran(self, members, report):
        return [dispatch.Result(m, "migrated", 0) for m in members]

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(members, "members", lambda only=None: [members.Member("default", "default")])
    monkeypatch.setattr(dispatch.Fleet, "run", ran)
    monkeypatch.setattr(fleet.FleetCommands, "_say", interrupted)
    with pytest.raises(KeyboardInterrupt) as stopped:
        call_command("tablemigrate", "run", "--all-databases", verbosity=1)
    assert "nothing was changed" not in str(stopped.value), stopped.value
    assert "--all-databases" in str(stopped.value)
