"""`provision`: a new database at the cost of a file copy, from a template that a first `run` built and that
was proved equal to the models (tablemigrate.fleet.provision)."""

import errno
import os
import sqlite3
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from tests.helpers import copy_example_project, dump_rows, tablemigrate

HISTORY = "SELECT name, checksum FROM tablemigrate_history ORDER BY name"


@pytest.fixture
def site(tmp_path):
    """The test project's models (tests.sampleapp) with their history generated in tmp_path/tablemigrations,
    backups (and so the templates) in tmp_path/backups, and tmp_path/tenants for the new databases."""
    migrations = tmp_path / "tablemigrations"
    with override_settings(TABLEMIGRATE_MIGRATIONS_DIR=migrations, TABLEMIGRATE_BACKUP_DIR=tmp_path / "backups"):
        call_command("tablemigrate", "generate", "--noinput", verbosity=0)
        (tmp_path / "tenants").mkdir()
        yield tmp_path


def _schema(path):
    from tablemigrate.sqlite.introspect import introspect

    conn = sqlite3.connect(path)
    try:
        return introspect(conn).fingerprint(), conn.execute(HISTORY).fetchall(), dump_rows(conn)
    finally:
        conn.close()


def _first_run(path):
    """What `run` builds on a new file for the alias default."""
    from tablemigrate.fleet.members import Member, pointed_at

    with pointed_at(Member(f"default:{path}", "default", str(path))):
        call_command("tablemigrate", "run", "--noinput", "--no-backup", "--database", "default", verbosity=0)


def _templates(site):
    return sorted((site / "backups" / "templates").glob("*.template"))


def test_the_provisioned_database_is_what_a_first_run_builds_and_takes_later_runs(site):
    from tablemigrate.fleet.provision import provision

    made = provision(site / "tenants" / "a.sqlite3")
    assert made == site / "tenants" / "a.sqlite3" and made.is_file()
    _first_run(site / "fresh.sqlite3")
    assert _schema(made) == _schema(site / "fresh.sqlite3")
    assert made.stat().st_mode == (site / "fresh.sqlite3").stat().st_mode  # the mode SQLite gives a new file
    assert len(_schema(made)[1]) == len(list((site / "tablemigrations").glob("*.py")))
    (site / "tablemigrations" / "9999_view.py").write_text(
        "up = ['CREATE VIEW author_names AS SELECT name FROM sampleapp_author']\ndown = ['DROP VIEW author_names']\n")
    _first_run(made)  # a later migration, as on any other database of the alias
    conn = sqlite3.connect(made)
    try:
        assert ("9999_view",) in conn.execute("SELECT name FROM tablemigrate_history").fetchall()
        assert conn.execute("SELECT count(*) FROM author_names").fetchone() == (0,)
    finally:
        conn.close()


def test_the_second_provision_copies_the_kept_template_and_a_new_module_builds_another(site):
    from tablemigrate.fleet.provision import provisioned

    first = provisioned(site / "tenants" / "a.sqlite3").template
    kept = first.path.stat()
    second = provisioned(site / "tenants" / "b.sqlite3").template
    assert first.built and not second.built and second.path == first.path
    assert (second.path.stat().st_ino, second.path.stat().st_mtime_ns) == (kept.st_ino, kept.st_mtime_ns)
    assert _templates(site) == [first.path] and oct(kept.st_mode & 0o777) == "0o600"

    (site / "tablemigrations" / "9999_view.py").write_text(
        "up = ['CREATE VIEW author_names AS SELECT name FROM sampleapp_author']\ndown = ['DROP VIEW author_names']\n")
    third = provisioned(site / "tenants" / "c.sqlite3").template
    assert third.built and third.path != first.path
    assert _templates(site) == [third.path]  # the template of the old key is gone
    conn = sqlite3.connect(site / "tenants" / "c.sqlite3")
    try:
        assert conn.execute("SELECT name FROM sqlite_master WHERE type = 'view'").fetchall() == [("author_names",)]
    finally:
        conn.close()


def test_a_history_that_differs_from_the_models_refuses_with_one_line_and_creates_nothing(site):
    (site / "tablemigrations" / "9999_extra.py").write_text(
        "up = ['ALTER TABLE sampleapp_author ADD COLUMN nickname text']\n"
        "down = ['ALTER TABLE sampleapp_author DROP COLUMN nickname']\n")
    with pytest.raises(CommandError) as refused:
        call_command("tablemigrate", "provision", str(site / "tenants" / "a.sqlite3"), verbosity=0)
    assert refused.value.returncode == 2
    line = str(refused.value)
    assert "\n" not in line and "sampleapp_author" in line and "tablemigrate generate` first" in line
    assert os.listdir(site / "tenants") == [] and _templates(site) == []
    assert [p.name for p in (site / "backups" / "templates").iterdir()] == []  # no half-built template either


@pytest.mark.parametrize("there", ["a.sqlite3", "a.sqlite3-journal"])
def test_an_existing_path_or_its_journal_is_refused_and_left_as_it_is(site, there):
    (site / "tenants" / there).write_bytes(b"precious")
    with pytest.raises(CommandError) as refused:
        call_command("tablemigrate", "provision", str(site / "tenants" / "a.sqlite3"), verbosity=0)
    assert refused.value.returncode == 2 and "\n" not in str(refused.value) and there in str(refused.value)
    assert (site / "tenants" / there).read_bytes() == b"precious"
    assert os.listdir(site / "tenants") == [there]


def test_a_name_taken_while_the_copy_is_made_is_not_clobbered(site, monkeypatch):
    from tablemigrate.fleet import provision as prov

    real = prov._check_copy

    def meanwhile(tmp, kept):  # another process creates the file between the check and the link
        real(tmp, kept)
        (site / "tenants" / "a.sqlite3").write_bytes(b"theirs")

    monkeypatch.setattr(prov, "_check_copy", meanwhile)
    with pytest.raises(CommandError) as refused:
        call_command("tablemigrate", "provision", str(site / "tenants" / "a.sqlite3"), verbosity=0)
    assert refused.value.returncode == 2 and "appeared" in str(refused.value)
    assert os.listdir(site / "tenants") == ["a.sqlite3"] and (site / "tenants" / "a.sqlite3").read_bytes() == b"theirs"


def test_a_read_only_directory_gives_one_line_and_exit_2(site, monkeypatch):
    tenants = site / "tenants"
    call_command("tablemigrate", "provision", str(tenants / "a.sqlite3"), verbosity=0)  # the template is kept
    os.chmod(tenants, 0o555)
    if os.geteuid() == 0:  # root writes anywhere: the file system's answer to another user, then
        real_open = os.open

        def denied(path, *args, **kwargs):
            if Path(path).parent == tenants:
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)

        monkeypatch.setattr(os, "open", denied)
    try:
        with pytest.raises(CommandError) as refused:
            call_command("tablemigrate", "provision", str(tenants / "b.sqlite3"), verbosity=0)
    finally:
        os.chmod(tenants, 0o755)
    assert refused.value.returncode == 2
    assert str(refused.value) == f"cannot write in {tenants} (Permission denied); nothing was provisioned"
    assert os.listdir(tenants) == ["a.sqlite3"]


def test_a_template_that_is_not_what_was_proved_is_not_copied(site):
    from tablemigrate.fleet.provision import provisioned

    kept = provisioned(site / "tenants" / "a.sqlite3").template.path
    conn = sqlite3.connect(kept)
    conn.execute("CREATE TABLE intruder (x)")
    conn.commit()
    conn.close()
    with pytest.raises(CommandError) as refused:
        call_command("tablemigrate", "provision", str(site / "tenants" / "b.sqlite3"), verbosity=0)
    assert refused.value.returncode == 1 and "is not the template" in str(refused.value)
    assert os.listdir(site / "tenants") == ["a.sqlite3"]


def test_the_command_says_which_template_it_copied(site, capsys):
    call_command("tablemigrate", "provision", str(site / "tenants" / "a.sqlite3"))
    call_command("tablemigrate", "provision", str(site / "tenants" / "b.sqlite3"))
    out = capsys.readouterr().out.splitlines()
    assert "(built now)" in out[0] and "(kept from an earlier provision)" in out[1]
    assert out[1].startswith(f"Provisioned {site / 'tenants' / 'b.sqlite3'} for database 'default'")


@pytest.mark.subprocess
def test_example_project_tenants_content_types_fleet_and_a_model_change(tmp_path):
    """The example project (auth, contenttypes, three owned apps): a provisioned tenant holds what `run` gives a
    new file (schema, history, Django's migrations, content types, permissions), the fleet glob takes it, a
    model change without a migration refuses, and after `generate` the tenant takes the new migration."""
    site = copy_example_project(tmp_path)
    (site / "tenants").mkdir()
    env = {"EXAMPLE_DB": str(site / "main.sqlite3"), "EXAMPLE_FLEET": str(site / "tenants" / "*.sqlite3")}
    done = tablemigrate(site, "provision", "tenants/a.sqlite3", **env)
    assert "built now" in done.stdout
    tablemigrate(site, "run", "--noinput", **{**env, "EXAMPLE_DB": str(site / "fresh.sqlite3")})
    tenant, fresh = site / "tenants" / "a.sqlite3", site / "fresh.sqlite3"
    queries = [HISTORY, "SELECT app, name FROM django_migrations ORDER BY app, name",
               "SELECT id, app_label, model FROM django_content_type ORDER BY id",
               "SELECT id, content_type_id, codename, name FROM auth_permission ORDER BY id"]
    got = []
    for path in (tenant, fresh):
        conn = sqlite3.connect(path)
        try:
            got.append([conn.execute(q).fetchall() for q in queries])
        finally:
            conn.close()
    assert got[0] == got[1] and all(got[0])
    assert _schema(tenant)[0] == _schema(fresh)[0]

    shown = tablemigrate(site, "show", "--all-databases", **env)
    assert "current     default:" in shown.stdout and "tenants/a.sqlite3" in shown.stdout

    models = site / "example_project" / "posts" / "models.py"
    models.write_text(models.read_text().replace("class Tag(models.Model):\n",
                                                 "class Tag(models.Model):\n    colour = models.TextField(null=True)\n"))
    refused = tablemigrate(site, "provision", "tenants/b.sqlite3", check=False, **env)
    assert refused.returncode == 2 and "posts_tag" in refused.stderr and "generate` first" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (site / "tenants" / "b.sqlite3").exists()

    tablemigrate(site, "generate", "--noinput", **env)
    ran = tablemigrate(site, "run", "--all-databases", **env)
    assert "migrated" in ran.stdout and "tenants/a.sqlite3" in ran.stdout
    assert "built now" in tablemigrate(site, "provision", "tenants/b.sqlite3", **env).stdout
    assert _schema(site / "tenants" / "b.sqlite3")[:2] == _schema(tenant)[:2]


def test_a_new_template_removes_only_its_own_alias_s_old_ones(tmp_path, monkeypatch):
    """Building `tenant`'s template removes `tenant`'s older ones, never those of `tenant-eu` (whose names
    also start with `tenant-`): a provision of that alias would find its template gone mid-copy."""
    from tablemigrate.fleet import provision as prov

    directory = tmp_path / "templates"
    directory.mkdir(mode=0o700)
    old_key, new_key = "a" * 64, "b" * 64
    mine_old = directory / f"tenant-{old_key[:32]}-f00d{prov.SUFFIX}"
    theirs = directory / f"tenant-eu-{'c' * 32}-beef{prov.SUFFIX}"
    for path in (mine_old, theirs):
        path.write_bytes(b"x")
    monkeypatch.setattr(prov, "template_key", lambda alias: new_key)
    monkeypatch.setattr(prov, "templates_dir", lambda alias, near: directory)

    def build(alias, where, prefix, keep):
        made = where / f"{prefix}feed{prov.SUFFIX}"
        made.write_bytes(b"y")
        return prov.Template(made, "feed", built=True)

    monkeypatch.setattr(prov, "_build", build)
    made = prov.template("tenant", tmp_path)
    assert made.path.exists() and theirs.exists() and not mine_old.exists()
