"""Review probes: `--format json` output a CI parser reads. Expected to FAIL on main."""

from __future__ import annotations

import json

import pytest

from .helpers import copy_example_project, tablemigrate

pytestmark = pytest.mark.subprocess


def test_run_format_json_at_verbosity_2_prints_only_the_document(tmp_path):
    """Django's emit_*_migrate_signal write "Running pre-migrate handlers for application ..." to the
    stdout they are given at -v 2, and contenttypes/auth print "Adding content type/permission ..." with
    print(): all of it lands before the JSON document, which no parser then reads."""
    site = copy_example_project(tmp_path)
    out = tablemigrate(site, "run", "--format", "json", "-v", "2", EXAMPLE_DB=str(site / "db.sqlite3")).stdout
    json.loads(out)


def test_run_check_format_json_with_an_edited_history_still_writes_a_document(tmp_path):
    """`show --check --format json` writes its document (history_matches: false) before exit 2; `run --check
    --format json` writes nothing on stdout, so a CI step parsing it fails on empty input."""
    site = copy_example_project(tmp_path)
    tablemigrate(site, "run", "--noinput", EXAMPLE_DB=str(site / "db.sqlite3"))
    first = sorted((site / "example_project" / "tablemigrations").glob("0*.py")) or \
        sorted((site / "example_project" / "tablemigrations").glob("2*.py"))
    with first[0].open("a") as f:
        f.write("# edited\n")
    show = tablemigrate(site, "show", "--check", "--format", "json", EXAMPLE_DB=str(site / "db.sqlite3"), check=False)
    assert show.returncode == 2 and json.loads(show.stdout)["history_matches"] is False
    run = tablemigrate(site, "run", "--check", "--format", "json", EXAMPLE_DB=str(site / "db.sqlite3"), check=False)
    assert run.returncode == 2
    json.loads(run.stdout)
