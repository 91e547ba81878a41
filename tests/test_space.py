"""Free disk space is checked before `run` writes anything (issue 15): the backup and each rebuild,
sized by SQLite, against the file systems they go to."""

from __future__ import annotations

import os

import pytest

from tablemigrate.errors import NoSpace
from tablemigrate.run import runner, space

from .helpers import module

ROWS = 20_000


@pytest.fixture
def project(project):
    """The shared project (tests/conftest.py) with ROWS rows in t applied and a rebuild of t pending."""
    target, d = project
    module(d, "0001_create", "table = 't'\nup = ['CREATE TABLE t (id integer PRIMARY KEY, v text)', "
           "\"CREATE INDEX t_v ON t (v)\", "
           f"\"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {ROWS}) "
           "INSERT INTO t (v) SELECT printf('%0200d', i) FROM n\"]\n")
    runner.run(target, d, take_backup=False)
    module(d, "0002_rebuild", "from tablemigrate.operations import RebuildTable\ntable = 't'\n"
           "up = [RebuildTable('t', 'CREATE TABLE t (id integer PRIMARY KEY, v varchar(300))', "
           "{'id': '\"id\"', 'v': '\"v\"'})]\n")
    return project


def free(monkeypatch, megabytes: float) -> None:
    real = space.shutil.disk_usage
    monkeypatch.setattr(space.shutil, "disk_usage",
                        lambda p: real(p)._replace(free=int(megabytes * 2**20)))


def test_sizes_come_from_sqlite(project):
    target, _d = project
    table = space.table_bytes(target.conn, "t")
    whole = space.database_bytes(target.conn)
    assert 4 * 2**20 < table <= whole == os.path.getsize(target.path)  # 20,000 rows of 200 characters, indexed


def test_a_run_that_would_not_fit_is_refused_before_anything_is_written(project, monkeypatch):
    target, d = project
    whole = space.database_bytes(target.conn)
    table = space.table_bytes(target.conn, "t")
    before = target.path.read_bytes()
    free(monkeypatch, (whole + table) / 2**20)  # the backup fits, the rebuild after it does not
    with pytest.raises(NoSpace, match=r"not enough free disk space: the backup and the rebuild of \"t\" need about "
                                      r"[\d,]+ MB on the file system of .*, which has [\d,]+ MB free; nothing was "
                                      "changed") as refused:
        runner.run(target, d)
    assert refused.value.exit_code == 1
    assert target.path.read_bytes() == before and not (target.path.parent / "backups").exists()
    free(monkeypatch, 2 * (whole + table) / 2**20)
    assert [m.name for m in runner.run(target, d)] == ["0002_rebuild"]


def test_without_a_backup_only_the_rebuild_counts(project, monkeypatch):
    target, d = project
    table = space.table_bytes(target.conn, "t")
    free(monkeypatch, table / 2 / 2**20)
    with pytest.raises(NoSpace, match=r"the rebuild of \"t\" needs about"):
        runner.run(target, d, take_backup=False)
    free(monkeypatch, 2 * table / 2**20 + 16)
    assert [m.name for m in runner.run(target, d, take_backup=False)] == ["0002_rebuild"]


def test_the_dry_run_works_on_a_temporary_file_beside_the_backups_and_removes_it(project, tmp_path):
    """Bounded memory for any database size: the copy is a file, not memory (issue 15)."""
    from tablemigrate.run import dryrun

    target, d = project
    seen = tmp_path / "seen.txt"
    module(d, "0003_where", f"def where(db):\n    open({str(seen)!r}, 'w').write(db.execute("
           "'PRAGMA database_list').fetchall()[0][2])\n\nup = [where]\n")
    before = target.path.read_bytes()
    report = dryrun.dry_run(target, d)
    assert [r.migration for r in report] == ["0002_rebuild", "0003_where"]
    copy = seen.read_text()
    assert copy.startswith(str(target.path.parent / "backups")) and ".dry-run-" in copy  # a file, not ":memory:"
    assert not any(p.name.startswith(".dry-run-") for p in (target.path.parent / "backups").iterdir())
    assert target.path.read_bytes() == before


def test_a_dry_run_that_would_not_fit_is_refused(project, monkeypatch):
    from tablemigrate.run import dryrun

    target, d = project
    free(monkeypatch, 1)
    with pytest.raises(NoSpace, match="the dry run's copy of the database and the rebuild of \"t\" need about"):
        dryrun.dry_run(target, d)
