"""A fleet run in one process (`--jobs 1`, and each worker of `--jobs N`) over many databases: what it
keeps from one database to the next must not grow with the fleet (issue 26)."""

from __future__ import annotations

import os
import sqlite3

import pytest
from django.test import override_settings

from tablemigrate.backups import backup
from tablemigrate.fleet.dispatch import Fleet
from tablemigrate.fleet.members import members

from .helpers import module


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts this process's descriptors in /proc")
def test_descriptors_do_not_grow_with_the_number_of_databases(tmp_path):
    directory = tmp_path / "migrations"
    directory.mkdir()
    module(directory, "20990101_000000_01_t", 'table = "t"\nup = ["CREATE TABLE t (id integer PRIMARY KEY, v text)"]\n'
           'down = ["DROP TABLE t"]\n')
    tenants = tmp_path / "tenants"
    tenants.mkdir()
    for i in range(12):  # rollback-journal databases with data: each run backs them up by copying the file
        conn = sqlite3.connect(tenants / f"t{i:02}.sqlite3")
        conn.execute("CREATE TABLE keep (v)")
        conn.execute("INSERT INTO keep VALUES ('x')")
        conn.commit()
        conn.close()
    with override_settings(TABLEMIGRATE_MIGRATIONS_DIR=directory, TABLEMIGRATE_POST_MIGRATE=False,
                           TABLEMIGRATE_FLEET={"default": str(tenants / "*.sqlite3")}):
        fleet = Fleet("run", ["-v", "0", "--noinput", "--format", "json"])
        found = members()
        counts: list[int] = []
        results = fleet.run(found, lambda r: counts.append(len(os.listdir("/proc/self/fd"))))
    assert [r.status for r in results] == ["migrated"] * 12, [(r.status, r.line) for r in results]
    assert backup._HELD == {}
    assert counts[-1] <= counts[0], counts  # one more database never costs one more descriptor
    for i in range(12):
        conn = sqlite3.connect(tenants / f"t{i:02}.sqlite3")
        assert conn.execute("SELECT count(*) FROM keep").fetchone() == (1,)
        conn.close()


class NothingOnCache:
    """A router that keeps every model off the `cache` alias (a DatabaseCache or an archive)."""

    def allow_migrate(self, db, app_label, **hints):
        return db != "cache"


@pytest.fixture
def cache_alias(tmp_path, monkeypatch):
    from django.conf import settings
    from django.db import connections

    default = {**connections.settings["default"], "NAME": str(tmp_path / "db.sqlite3")}
    monkeypatch.setitem(settings.DATABASES, "default", default)
    monkeypatch.setitem(settings.DATABASES, "cache", {**default, "NAME": str(tmp_path / "cache.sqlite3")})
    for alias in ("default", "cache"):
        connections[alias].close()
        del connections[alias]
    yield
    for alias in ("default", "cache"):
        connections[alias].close()
        del connections[alias]


def test_an_alias_without_the_owned_models_is_not_handed_the_history(cache_alias, tmp_path):
    """One history for every alias: an alias the routers give none of the owned models (or other ones)
    is not the history's, so `--all-databases` never creates the project's tables in it."""
    with override_settings(TABLEMIGRATE_MIGRATIONS_DIR=tmp_path / "m"):
        assert [m.name for m in members()] == ["default", "cache"]  # no router: the same models
        with override_settings(DATABASE_ROUTERS=[f"{__name__}.NothingOnCache"]):
            assert [m.name for m in members()] == ["default"]
    with override_settings(TABLEMIGRATE_MIGRATIONS_DIR={"default": tmp_path / "m"}):
        assert [m.name for m in members()] == ["default"]  # the dict gives `cache` no history
    with override_settings(TABLEMIGRATE_MIGRATIONS_DIR={"default": tmp_path / "m", "cache": tmp_path / "c"}):
        assert [m.name for m in members()] == ["default", "cache"]
