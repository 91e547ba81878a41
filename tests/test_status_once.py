"""Issue 24: one command reads (and hashes) each module file once for the history's status, however
often it checks the history against the files (`run`: before the runner lock and under it; `revert`:
under the lock and after the work; `show`: its listing and the drift report)."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from tablemigrate.history.status import Target
from tablemigrate.project.build import private_database, raw
from tablemigrate.run import runner

from .helpers import module


def count_reads(monkeypatch, directory: Path) -> collections.Counter:
    """Reads of each module file of `directory`, from now on, by file name."""
    reads: collections.Counter = collections.Counter()
    real = Path.read_bytes

    def read_bytes(path):
        if path.parent == directory and path.suffix == ".py":
            reads[path.name] += 1
        return real(path)
    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    return reads


@pytest.fixture
def project(tmp_path):
    d = tmp_path / "tablemigrations"
    module(d, "0001_t", "up = ['CREATE TABLE t (x)']\ndown = ['DROP TABLE t']\n")
    module(d, "0002_u", "up = ['CREATE TABLE u (x)']\ndown = ['DROP TABLE u']\n")
    with private_database(str(tmp_path / "app.sqlite3")) as db:
        target = Target("default", raw(db), tmp_path / "app.sqlite3")
        runner.run(target, d, take_backup=False)
        module(d, "0003_v", "up = ['CREATE TABLE v (x)']\ndown = ['DROP TABLE v']\n")
        yield target, d


def test_run_reads_each_module_file_once(project, monkeypatch):
    target, d = project
    reads = count_reads(monkeypatch, d)
    assert [m.name for m in runner.run(target, d, take_backup=False)] == ["0003_v"]
    # BASE: the applied ones twice (the status before the lock, and again under it)
    assert reads == {"0001_t.py": 1, "0002_u.py": 1, "0003_v.py": 1}


def test_run_asking_a_human_reads_each_module_file_once(project, monkeypatch):
    """The selection is made again under the lock after the answer: the files are not read again."""
    target, d = project
    module(d, "0004_drop", "destructive = ['drops t']\nup = ['DROP TABLE t']\n")
    reads = count_reads(monkeypatch, d)
    done = runner.run(target, d, take_backup=False, confirm=lambda text: True)
    assert [m.name for m in done] == ["0003_v", "0004_drop"]
    # BASE: the applied ones three times; the pending ones are loaded once per selection, as before
    assert reads["0001_t.py"] == reads["0002_u.py"] == 1


def test_revert_reads_each_module_file_once(project, monkeypatch):
    target, d = project
    runner.run(target, d, take_backup=False)
    reads = count_reads(monkeypatch, d)
    assert [m.name for m in runner.revert(target, d, take_backup=False)] == ["0003_v"]
    # BASE: each twice (under the lock, and for the accepted edits after the work), 0003_v three times
    assert reads == {"0001_t.py": 1, "0002_u.py": 1, "0003_v.py": 2}  # 0003_v: the status, then loaded


def test_show_reads_each_applied_module_file_once_for_the_status(tmp_path, monkeypatch):
    (tmp_path / "0001_create.py").write_text("up = ['CREATE TABLE extra (x)']\ndown = ['DROP TABLE extra']\n")
    try:
        with override_settings(TABLEMIGRATE_MIGRATIONS_DIR=tmp_path):
            call_command("tablemigrate", "run", "--noinput", "--no-backup", verbosity=0)
            reads = count_reads(monkeypatch, tmp_path)
            call_command("tablemigrate", "show", verbosity=0)
        # BASE: 3 (the listing's status, the drift report's status, the drift report's replay)
        assert reads == {"0001_create.py": 2}  # the status, then the replay that loads it
    finally:
        with connection.cursor() as cursor:  # the shared in-memory test database: leave it as found
            cursor.execute("DROP TABLE IF EXISTS extra")
            cursor.execute("DROP TABLE IF EXISTS tablemigrate_history")
