"""tablemigrate.fleet.members: which databases `--all-databases` covers, and an alias pointed at one."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from django.test import override_settings

from tablemigrate.errors import ConfigurationError
from tablemigrate.fleet.members import Member, members, pointed_at

SQLITE = "django.db.backends.sqlite3"


def listed() -> list[str]:
    """A TABLEMIGRATE_FLEET callable, by its dotted path: paths relative to BASE_DIR."""
    return ["tenants/b.sqlite3", "tenants/a.sqlite3"]


@contextlib.contextmanager
def project(tmp_path: Path, fleet: object, **more: object) -> Iterator[Path]:
    """DATABASES with `default` (in memory) and `tenant` (its NAME tenants/template.sqlite3), BASE_DIR
    tmp_path, TABLEMIGRATE_FLEET `fleet`; `databases` adds aliases, the rest are more settings."""
    extra = more.pop("databases", {})
    entries = {"default": settings.DATABASES["default"],
               "tenant": {"ENGINE": SQLITE, "NAME": str(tmp_path / "tenants" / "template.sqlite3")}, **extra}
    (tmp_path / "tenants").mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Overriding setting DATABASES can lead to unexpected behavior"
        override = override_settings(DATABASES=entries, BASE_DIR=tmp_path, TABLEMIGRATE_FLEET=fleet, **more)
        override.enable()
    configured = connections.__dict__.pop("settings", None), connections._settings
    connections._settings = None  # read again, from the overridden DATABASES
    try:
        yield tmp_path
    finally:
        for alias in entries:
            if alias != "default":
                with contextlib.suppress(Exception):
                    connections[alias].close()
                    del connections[alias]
        override.disable()
        connections.__dict__.pop("settings", None)
        if configured[0] is not None:
            connections.__dict__["settings"] = configured[0]
        connections._settings = configured[1]


def touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


def names(only: str | None = None) -> list[str]:
    return [m.name for m in members(only)]


def test_a_glob_relative_to_base_dir(tmp_path):
    with project(tmp_path, {"tenant": "tenants/t*.sqlite3"}):
        touch(tmp_path, "tenants/t2.sqlite3", "tenants/t1.sqlite3", "tenants/template.sqlite3", "other/t3.sqlite3")
        assert members() == [Member("tenant:tenants/t1.sqlite3", "tenant", str(tmp_path / "tenants/t1.sqlite3")),
                             Member("tenant:tenants/t2.sqlite3", "tenant", str(tmp_path / "tenants/t2.sqlite3"))]


def test_an_absolute_glob_outside_base_dir(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    with project(tmp_path / "project", {"tenant": str(elsewhere / "*.db")}):
        touch(elsewhere, "x.db", "y.db")
        assert names() == [f"tenant:{(elsewhere / 'x.db').as_posix()}", f"tenant:{(elsewhere / 'y.db').as_posix()}"]


def test_a_callable_and_a_dotted_path(tmp_path):
    touch(tmp_path, "tenants/a.sqlite3", "tenants/b.sqlite3")
    for source in (listed, "tests.test_fleet_members.listed"):
        with project(tmp_path, {"tenant": source}):
            assert names() == ["tenant:tenants/a.sqlite3", "tenant:tenants/b.sqlite3"]  # sorted, whatever it returned
    with project(tmp_path, {"tenant": list}):
        assert names() == []  # a callable may say there is no tenant yet


@pytest.mark.parametrize(("fleet", "message"), [
    (["tenants/*.sqlite3"], "TABLEMIGRATE_FLEET must be a dict"),
    ({"tenant": 42}, "TABLEMIGRATE_FLEET['tenant'] must be a glob, a callable or its dotted path, not int"),
    ({"tenant": "no_such_module.tenants"}, "is neither a glob (no '/' or wildcard) nor an importable callable"),
    ({"tenant": lambda: 1 / 0}, "TABLEMIGRATE_FLEET['tenant'] raised ZeroDivisionError"),
    ({"nosuch": "tenants/*.sqlite3"}, "unknown database alias 'nosuch'"),
    ({"tenant": "tenant/*.sqlite3"}, "TABLEMIGRATE_FLEET['tenant'] = 'tenant/*.sqlite3': directory "),
])
def test_a_bad_entry_is_a_clear_configuration_error(tmp_path, fleet, message):
    with project(tmp_path, fleet):
        touch(tmp_path, "tenants/t1.sqlite3")
        with pytest.raises(ConfigurationError) as caught:
            members()
        assert message in str(caught.value) and "\n" not in str(caught.value)


def test_side_files_are_never_members(tmp_path):
    with project(tmp_path, {"tenant": "tenants/*"}):
        touch(tmp_path, *(f"tenants/t1.sqlite3{side}" for side in ("", "-wal", "-shm", "-journal", ".tablemigrate.lock")))
        assert names() == ["tenant:tenants/t1.sqlite3"]
        touch(tmp_path, "tenants/t1.sqlite3.tablemigrate.lock")
        (tmp_path / "tenants/t1.sqlite3").unlink()
        assert names() == []  # side files alone: no database (yet)


def test_backups_and_snapshots_are_never_members(tmp_path):
    """A recursive glob reaches the backups directory beside the tenants: those copies are not tenants."""
    touch(tmp_path, "tenants/t1.sqlite3", "tenants/sub/t2.sqlite3", "tenants/backups/t1-0123456789ab-20260101T000000_000000Z.sqlite3",
          "tenants/backups/snapshots/t1-0123456789ab/before.sqlite3", "tenants/sub/backups/t2-x.sqlite3",
          "kept/t9.sqlite3")
    with project(tmp_path, {"tenant": "tenants/**/*.sqlite3"}):
        assert names() == ["tenant:tenants/sub/t2.sqlite3", "tenant:tenants/t1.sqlite3"]
    with project(tmp_path, {"tenant": "**/t*.sqlite3"}, TABLEMIGRATE_BACKUP_DIR=str(tmp_path / "kept")):
        found = names()
        assert "tenant:kept/t9.sqlite3" not in found and "tenant:tenants/backups/t1-0123456789ab-20260101T000000_000000Z.sqlite3" in found


def test_in_memory_and_other_backends_are_skipped(tmp_path):
    touch(tmp_path, "tenants/t1.sqlite3", "plain.sqlite3")
    with project(tmp_path, {"tenant": "tenants/t*.sqlite3"}, databases={
            "memory": {"ENGINE": SQLITE, "NAME": ":memory:"},
            "shared_memory": {"ENGINE": SQLITE, "NAME": "file:mem?mode=memory&cache=shared"},
            "pg": {"ENGINE": "django.db.backends.postgresql", "NAME": "x"},
            "plain": {"ENGINE": SQLITE, "NAME": str(tmp_path / "plain.sqlite3")}}):
        assert names() == ["plain", "tenant:tenants/t1.sqlite3"]


def test_a_file_reached_twice_is_taken_once(tmp_path):
    touch(tmp_path, "tenants/t1.sqlite3", "tenants/plain.sqlite3")
    (tmp_path / "tenants/t0.sqlite3").symlink_to(tmp_path / "tenants/t1.sqlite3")
    with project(tmp_path, {"tenant": "tenants/*.sqlite3"},
                 databases={"plain": {"ENGINE": SQLITE, "NAME": str(tmp_path / "tenants/plain.sqlite3")}}):
        # the plain alias's own database, matched by the glob too, stays that alias's; the link and its
        # target are one database, named by the file itself
        assert names() == ["plain", "tenant:tenants/t1.sqlite3"]


def test_two_fleet_aliases_naming_one_file_are_refused(tmp_path):
    touch(tmp_path, "tenants/t1.sqlite3", "tenants/t2.sqlite3")
    other = {"other": {"ENGINE": SQLITE, "NAME": str(tmp_path / "other.sqlite3")}}
    with project(tmp_path, {"tenant": "tenants/t*.sqlite3", "other": "tenants/*2.sqlite3"}, databases=other):
        with pytest.raises(ConfigurationError, match=r"t2.sqlite3 is named by TABLEMIGRATE_FLEET\['tenant'\] and"):
            members()


def test_another_fleet_alias_template_is_not_a_member(tmp_path):
    touch(tmp_path, "tenants/t1.sqlite3", "tenants/o-template.sqlite3", "others/o1.sqlite3")
    other = {"other": {"ENGINE": SQLITE, "NAME": str(tmp_path / "tenants/o-template.sqlite3")}}
    with project(tmp_path, {"tenant": "tenants/*.sqlite3", "other": "others/*.sqlite3"}, databases=other):
        assert names() == ["tenant:tenants/t1.sqlite3", "other:others/o1.sqlite3"]


def test_stable_order_and_only(tmp_path):
    touch(tmp_path, *(f"tenants/t{n}.sqlite3" for n in (3, 1, 2)), "plain.sqlite3")
    with project(tmp_path, {"tenant": "tenants/t*.sqlite3"},
                 databases={"plain": {"ENGINE": SQLITE, "NAME": str(tmp_path / "plain.sqlite3")}}):
        assert names() == ["plain", *(f"tenant:tenants/t{n}.sqlite3" for n in (1, 2, 3))]
        assert names("tenant:*t[13].*") == ["tenant:tenants/t1.sqlite3", "tenant:tenants/t3.sqlite3"]


def test_a_member_alias_without_history_is_refused_before_anything(tmp_path):
    touch(tmp_path, "tenants/t1.sqlite3")
    with project(tmp_path, {"tenant": "tenants/t*.sqlite3"}, TABLEMIGRATE_MIGRATIONS_DIR={"default": "x"}):
        with pytest.raises(ConfigurationError, match=r"database 'tenant' has no tablemigrate history.*--only"):
            members()
        assert members("default") == []  # default is in memory: not a member; the tenant left out
    with project(tmp_path, {"tenant": "tenants/t*.sqlite3"}, TABLEMIGRATE_MIGRATIONS_DIR={"tenant": "x"}):
        assert names() == ["tenant:tenants/t1.sqlite3"]


def test_pointed_at_restores_name_even_when_the_block_raises(tmp_path):
    with project(tmp_path, {"tenant": "tenants/t*.sqlite3"}):
        member = Member("tenant:tenants/t1.sqlite3", "tenant", str(tmp_path / "tenants/t1.sqlite3"))
        template = settings.DATABASES["tenant"]["NAME"]
        with pytest.raises(RuntimeError), pointed_at(member) as alias:
            assert alias == "tenant" and connections["tenant"].settings_dict["NAME"] == member.path
            with connections["tenant"].cursor() as cursor:
                cursor.execute("CREATE TABLE marker (id integer)")
            raise RuntimeError("the command failed")
        assert settings.DATABASES["tenant"]["NAME"] == template
        assert connections["tenant"].settings_dict["NAME"] == template
        assert (tmp_path / "tenants/t1.sqlite3").stat().st_size > 0  # the member's file was the one written
        assert not (tmp_path / "tenants/template.sqlite3").exists()
        with pointed_at(Member("tenant", "tenant")) as alias:  # a plain alias: as it is
            assert connections[alias].settings_dict["NAME"] == template
