"""Adversarial review of issue 26 on tests/fleetsite (a shared database and a fleet of tenants, a history
per alias): reproductions of the defects found, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .helpers import manage
from .test_fleet import built, make_tenants, site, summary, tm  # noqa: F401 (fixtures)

pytestmark = pytest.mark.subprocess


def test_w002_for_another_alias_hints_at_generate_for_that_alias(site: Path) -> None:  # noqa: F811
    """The tenant models changed: W002 names `--database tenant`, and its hint must too (a bare `generate`
    says "No changes detected")."""
    out = manage(site, "check", prefix="FLEETSITE", FLEETSITE_STRICT="1").stderr
    assert "tablemigrate.W002" in out, out
    assert "HINT: Run `python manage.py tablemigrate generate --database tenant`" in out, out


def test_generate_check_in_ci_sees_a_model_change_of_another_alias(site: Path) -> None:  # noqa: F811
    """docs/how-to/ci.md's step `generate --check --noinput` ("exit 1 if a model change has no migration")
    exited 0, "No changes detected", while the tenant models changed without a migration: without
    --database it checks every alias the dict names, and says which differs (text and JSON)."""
    proc = tm(site, "generate", "--check", "--noinput", check=False, FLEETSITE_STRICT="1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stderr.startswith("CommandError: tenant: the models differ") and "default" not in proc.stderr
    assert "database 'default'" in proc.stdout and "database 'tenant'" in proc.stdout
    proc = tm(site, "generate", "--check", "--noinput", "--format", "json", check=False, FLEETSITE_STRICT="1")
    doc = json.loads(proc.stdout)
    assert proc.returncode == 1 and doc["ok"] is False and doc["reasons"] == ["changes"]
    assert doc["databases"]["default"]["ok"] is True and doc["databases"]["tenant"]["ok"] is False
    assert tm(site, "generate", "--check", "--noinput", "--database", "default", FLEETSITE_STRICT="1").returncode == 0
    tm(site, "generate", "--noinput", FLEETSITE_STRICT="1")  # writes the tenant's module, in its directory
    assert tm(site, "generate", "--check", "--noinput", FLEETSITE_STRICT="1").returncode == 0


def test_revert_all_databases_does_not_call_a_database_with_nothing_to_revert_reverted(site: Path) -> None:  # noqa: F811
    """`revert --all-databases --to NAME` on tenants where NAME is already the last applied migration: nothing
    is reverted, and the line and summary must not say "reverted"."""
    make_tenants(site, 2)
    tm(site, "run", "--all-databases")
    (first,) = (p.stem for p in (site / "migrations_tenant").glob("*.py"))
    for verbosity in ("0", "1"):
        proc = tm(site, "revert", "--all-databases", "--only", "tenant:*", "--to", first, "-v", verbosity)
        assert "reverted" not in proc.stdout, proc.stdout
    assert summary(tm(site, "revert", "--all-databases", "--only", "tenant:*", "--to", first).stdout) == \
        "2 databases: 2 already current"


def test_revert_all_databases_needs_to(site: Path) -> None:  # noqa: F811
    """Without --to each database would revert its own last migration: after a partial rollout, an older
    one (a table and its rows) on the databases that never got the new one. Refused before anything."""
    make_tenants(site, 2)
    tm(site, "run", "--all-databases")
    before = {p: p.read_bytes() for p in (site / "tenants").glob("t*.sqlite3")}
    proc = tm(site, "revert", "--all-databases", "--allow-destructive", check=False)
    assert proc.returncode == 2 and "revert --all-databases needs --to NAME" in proc.stderr, proc.stderr
    assert {p: p.read_bytes() for p in before} == before
