"""The system checks cover every SQLite alias (issue 26): W001 on each alias's database, with its own
history when TABLEMIGRATE_MIGRATIONS_DIR is a dict; an alias without a history is left alone."""

from __future__ import annotations

import sqlite3

import pytest
from django.db import connections
from django.test import override_settings

from tablemigrate import conf
from tablemigrate.checks import check_branch_conflicts, check_pending_and_model_changes
from tablemigrate.errors import ConfigurationError
from tablemigrate.sqlite.introspect import HISTORY_TABLE

from .helpers import module


def database(path, applied: list[str]) -> str:
    conn = sqlite3.connect(path)
    conn.execute(f'CREATE TABLE "{HISTORY_TABLE}" (name TEXT, checksum TEXT)')
    conn.executemany(f'INSERT INTO "{HISTORY_TABLE}" VALUES (?, ?)', [(n, "x") for n in applied])
    conn.commit()
    conn.close()
    return str(path)


@pytest.fixture
def other_alias(tmp_path, monkeypatch):
    """A second SQLite alias, 'other', whose database is a file with one module applied of two."""
    from django.conf import settings

    directory = tmp_path / "other_migrations"
    directory.mkdir()
    for name in ("20990101_000000_01_a", "20990101_000000_02_b"):
        module(directory, name, 'table = "t"\nup = ["SELECT 1"]\ndown = ["SELECT 1"]\n')
    entry = {**connections.settings["default"], "NAME": database(tmp_path / "other.sqlite3", ["20990101_000000_01_a"])}
    monkeypatch.setitem(settings.DATABASES, "other", entry)  # the same dict as connections.settings
    yield directory
    connections["other"].close()
    del connections["other"]


def test_w001_names_a_pending_migration_on_another_alias(other_alias, tmp_path):
    with override_settings(TABLEMIGRATE_MIGRATIONS_DIR={"default": tmp_path / "none", "other": other_alias}):
        found = [m for m in check_pending_and_model_changes() if m.id == "tablemigrate.W001"]
    assert len(found) == 1
    assert "database 'other'" in found[0].msg and "20990101_000000_02_b" in found[0].msg
    assert "--database other" in found[0].hint


def test_an_alias_outside_the_dict_has_no_history_and_no_warning(other_alias, tmp_path):
    with override_settings(TABLEMIGRATE_MIGRATIONS_DIR={"default": tmp_path / "none"}):
        assert not [m for m in check_pending_and_model_changes() if m.id == "tablemigrate.W001"]
        assert check_branch_conflicts() == []
        with pytest.raises(ConfigurationError, match="'other' has no tablemigrate history"):
            conf.migrations_dir("other")


def test_one_directory_for_every_alias_still_checks_each_database(other_alias):
    with override_settings(TABLEMIGRATE_MIGRATIONS_DIR=other_alias):
        found = [m for m in check_pending_and_model_changes() if m.id == "tablemigrate.W001"]
        assert conf.migrations_dir("other") == conf.migrations_dir("default") == other_alias
    assert [m.msg.split(" (")[0] for m in found] == [f"1 tablemigrate migration(s) not applied to "
                                                     f"{connections.settings['other']['NAME']}"]


def test_a_fleet_alias_own_file_is_not_checked(other_alias, tmp_path):
    """A TABLEMIGRATE_FLEET alias stands for many files: its own NAME (a template) is not one the app uses."""
    with override_settings(TABLEMIGRATE_MIGRATIONS_DIR={"other": other_alias},
                           TABLEMIGRATE_FLEET={"other": str(tmp_path / "tenants" / "*.sqlite3")}):
        assert not [m for m in check_pending_and_model_changes() if m.id == "tablemigrate.W001"]
