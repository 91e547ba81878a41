"""Django's command-line habits (issue 25): Django's common options after the subcommand, `--version` of
tablemigrate, and `makemigrations` for an app tablemigrate owns, on a copy of the example project."""

from __future__ import annotations

import django
import pytest

from . import helpers
from .helpers import copy_example_project, tablemigrate

pytestmark = pytest.mark.subprocess  # every test here starts the project's manage.py


def test_djangos_common_options_are_accepted_after_the_subcommand(tmp_path):
    example = copy_example_project(tmp_path)  # the first run creates the database
    for options in (["--traceback"], ["--settings", "example_project.settings", "--pythonpath", "."],
                    ["--no-color"], ["--force-color"], ["--skip-checks"], ["-v", "0"]):
        proc = tablemigrate(example, "run", "--noinput", *options, check=False)
        assert proc.returncode == 0 and "error:" not in proc.stderr, (options, proc.stderr)
    # --traceback after the subcommand is the one that decides, as after `migrate`
    plain = tablemigrate(example, "show", "--database", "nope", check=False)
    traced = tablemigrate(example, "show", "--database", "nope", "--traceback", check=False)
    assert plain.returncode == 2 and "Traceback" not in plain.stderr, plain.stderr
    assert "Traceback (most recent call last)" in traced.stderr and "unknown database alias" in traced.stderr


def test_version_is_tablemigrates_with_djangos_and_sqlites(tmp_path):
    import sqlite3

    from tablemigrate import __version__

    example = copy_example_project(tmp_path)
    for args in (["--version"], ["run", "--version"]):
        out = tablemigrate(example, *args).stdout.strip()
        assert out == f"tablemigrate {__version__} (Django {django.get_version()}, SQLite {sqlite3.sqlite_version})"


def test_makemigrations_for_an_owned_app_says_what_to_run_in_one_line(tmp_path):
    manage, example = helpers.manage, copy_example_project(tmp_path)
    (example / "example_project" / "chats" / "migrations").mkdir()  # as `startapp` makes it: empty
    (example / "example_project" / "chats" / "migrations" / "__init__.py").write_text("")
    for app in ("posts", "chats"):  # no migrations package; an empty one (MIGRATION_MODULES maps it to None)
        proc = manage(example, "makemigrations", app, check=False)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert proc.stderr.strip().splitlines() == [
            f"CommandError: tablemigrate owns app {app}: run `manage.py tablemigrate generate` to make its "
            "migrations (`generate --check` in CI), not `makemigrations`; nothing was written"]
    assert not (example / "example_project" / "posts" / "migrations").exists()
    assert [p.name for p in (example / "example_project" / "chats" / "migrations").iterdir()] == ["__init__.py"]
    # the other apps' are Django's, as before
    assert manage(example, "makemigrations", "auth", "--dry-run").stdout.strip() == "No changes detected in app 'auth'"
    assert manage(example, "makemigrations", "--check", "--dry-run").stdout.strip() == "No changes detected"
