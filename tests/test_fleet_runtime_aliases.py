"""An alias the application registers at run time for one of a fleet's files (issue 26).

dj-lite-tenant registers `tenant_<pk>` in DATABASES when a user signs up and calls `migrate --database
tenant_<pk>` on the new, not yet existing file. With a history per alias (TABLEMIGRATE_MIGRATIONS_DIR a
dict), that alias has none of its own; its file is one TABLEMIGRATE_FLEET names for the alias `tenant`, so
it is migrated as `tenant` (tablemigrate.fleet.members.member_for), as `run --all-databases` migrates it.
tests/test_dj_lite_tenant.py runs the whole path with dj-lite-tenant itself.
"""

from __future__ import annotations

import glob
import io
import sqlite3
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

ITEM = "up = ['CREATE TABLE item (id integer PRIMARY KEY, name text NOT NULL)']\ndown = ['DROP TABLE item']\n"


def register(settings, alias: str, name: Path) -> str:
    """`alias` in DATABASES at run time, as dj-lite-tenant registers a tenant's database."""
    settings.DATABASES[alias] = dict(connections["default"].settings_dict, NAME=str(name), TEST={"NAME": None})
    return alias


@pytest.fixture
def fleet(tmp_path, settings):
    """BASE_DIR tmp_path; the alias `tenant` (its own NAME a file no command here touches) with its history
    tmp_path/tenant (one module), `default` with another; its fleet: tenants/tenant_*.sqlite3."""
    settings.BASE_DIR = tmp_path
    (tmp_path / "tenants").mkdir()
    (tmp_path / "tenant").mkdir()
    (tmp_path / "tenant" / "0001_create_item.py").write_text(ITEM)
    settings.TABLEMIGRATE_MIGRATIONS_DIR = {"default": tmp_path / "default", "tenant": tmp_path / "tenant"}
    settings.TABLEMIGRATE_FLEET = {"tenant": "tenants/tenant_*.sqlite3"}
    before = set(settings.DATABASES)
    register(settings, "tenant", tmp_path / "tenants" / "schema.sqlite3")
    yield tmp_path
    for alias in set(settings.DATABASES) - before:
        if alias in connections:
            connections[alias].close()
            del connections[alias]
        del settings.DATABASES[alias]


def tables_and_history(path: Path) -> tuple[list[str], list[str]]:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                             "AND name NOT LIKE 'tablemigrate%' AND name NOT LIKE 'sqlite%'")]
        return tables, [r[0] for r in conn.execute("SELECT name FROM tablemigrate_history ORDER BY id")]
    finally:
        conn.close()


def test_migrate_on_a_run_time_alias_of_a_new_fleet_file_builds_it_from_the_fleet_alias_history(fleet, settings):
    alias = register(settings, "tenant_7", fleet / "tenants" / "tenant_7.sqlite3")
    call_command("migrate", database=alias, interactive=False, verbosity=0, stdout=io.StringIO())
    assert tables_and_history(fleet / "tenants" / "tenant_7.sqlite3") == (["item"], ["0001_create_item"])
    assert not (fleet / "tenants" / "schema.sqlite3").exists()  # the fleet alias's own database: untouched
    assert settings.DATABASES["tenant"]["NAME"] == str(fleet / "tenants" / "schema.sqlite3")  # given back


def test_tablemigrate_commands_on_a_run_time_alias_work_on_its_file_as_the_fleet_alias(fleet, settings):
    alias = register(settings, "tenant_8", fleet / "tenants" / "tenant_8.sqlite3")
    out = io.StringIO()
    call_command("tablemigrate", "run", "--database", alias, "--noinput", "--no-backup", stdout=out)
    assert tables_and_history(fleet / "tenants" / "tenant_8.sqlite3")[1] == ["0001_create_item"]
    (fleet / "tenant" / "0002_create_tag.py").write_text(
        "up = ['CREATE TABLE tag (id integer PRIMARY KEY)']\ndown = ['DROP TABLE tag']\n")
    with pytest.raises(CommandError) as pending:
        call_command("tablemigrate", "show", "--database", alias, "--check", stdout=out)
    assert pending.value.returncode == 4 and "0002_create_tag" in out.getvalue()


def test_a_run_time_alias_whose_file_the_fleet_does_not_name_still_has_no_history(fleet, settings):
    alias = register(settings, "elsewhere", fleet / "tenant_9.sqlite3")  # not under tenants/
    with pytest.raises(CommandError, match="database 'elsewhere' has no tablemigrate history"):
        call_command("migrate", database=alias, interactive=False, verbosity=0, stdout=io.StringIO())
    assert not (fleet / "tenant_9.sqlite3").exists()


@pytest.mark.parametrize("pattern", ["tenants/tenant_*.sqlite3", "tenants/**/*.sqlite3", "tenants/*/db.sqlite3",
                                     "tenants/**"])
def test_a_new_file_is_the_fleet_s_exactly_when_the_glob_lists_it_once_it_exists(fleet, settings, pattern):
    from tablemigrate.fleet.members import member_for

    settings.TABLEMIGRATE_FLEET = {"tenant": pattern}
    names = ["tenants/tenant_1.sqlite3", "tenants/a/db.sqlite3", "tenants/a/b/db.sqlite3", "tenants/.hidden.sqlite3",
             "tenants/.t/db.sqlite3", "tenants/tenant_1.sqlite3x", "other/tenant_1.sqlite3", "tenants/x/tenant_2.sqlite3"]
    before = {name: member_for(register(settings, f"t{i}", fleet / name)) is not None for i, name in enumerate(names)}
    for name in names:
        (fleet / name).parent.mkdir(parents=True, exist_ok=True)
        (fleet / name).write_bytes(b"")
    listed = {Path(p).relative_to(fleet).as_posix() for p in glob.glob(str(fleet / pattern), recursive=True)}
    assert before == {name: name in listed for name in names}
    assert any(before.values())


def test_a_fleet_callable_decides_by_the_paths_it_returns(fleet, settings):
    from tablemigrate.fleet.members import member_for

    new = fleet / "tenants" / "tenant_3.sqlite3"
    alias = register(settings, "tenant_3", new)
    settings.TABLEMIGRATE_FLEET = {"tenant": lambda: ["tenants/tenant_4.sqlite3"]}  # relative to BASE_DIR
    assert member_for(alias) is None
    settings.TABLEMIGRATE_FLEET = {"tenant": lambda: ["tenants/tenant_4.sqlite3", "tenants/tenant_3.sqlite3"]}
    member = member_for(alias)
    assert member is not None and (member.name, member.alias, member.path) == \
        ("tenant:tenants/tenant_3.sqlite3", "tenant", str(new))
