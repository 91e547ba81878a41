"""Issue 22, "nothing wrong with exit 0": what `run` says after an interruption or a lock is what the
database holds, and the exit code follows SQLite's result code.

- An interrupt between a Django migration's COMMIT and its record (Django records after the block when
  there is deferred SQL: any foreign key) no longer leaves it applied and unrecorded; recovery compares
  the schema with the records, so even Django's own ordering is restored and told truthfully.
- An interrupt right after BEGIN IMMEDIATE returns rolls back and the run's backup is restored.
- A busy or locked database anywhere (BEGIN, COMMIT, the restore, Django's executor) ends with exit 3.

The fast tests drive the library on a file database; the others run the copy of tests/mixedsite (a
third-party-style app with Django migrations next to an owned app) through manage.py, with a fault
injected by an app of the copy (FAULTS).
"""

from __future__ import annotations

import shutil
import signal
import sqlite3
from pathlib import Path

import pytest

from tablemigrate.backups import backup as backups
from tablemigrate.errors import DatabaseLocked, MigrationInterrupted
from tablemigrate.history.status import Target, status
from tablemigrate.run import runner
from tablemigrate.run.recovery import Found, OtherWriters, recover

from .helpers import module
from .test_thirdparty_apps import _one_error_line, dump, install, manage, rows, site, tm, vendor_migration  # noqa: F401

THREE = {"0002_a": "up = ['CREATE TABLE a (x)', 'INSERT INTO a VALUES (1)']\n",
         "0003_b": "up = ['CREATE TABLE b (x)']\n",
         "0004_c": "up = ['CREATE TABLE c (x)']\n"}


class AfterBegin(sqlite3.Connection):
    """A connection that is interrupted right after `BEGIN IMMEDIATE` returns, once, when armed."""

    armed = False

    def execute(self, sql, *args):
        cursor = super().execute(sql, *args)
        if self.armed and sql == "BEGIN IMMEDIATE":
            self.armed = False
            raise KeyboardInterrupt
        return cursor


def _target(tmp_path: Path, factory: type[sqlite3.Connection] = sqlite3.Connection) -> Target:
    path = tmp_path / "app.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None, factory=factory)
    conn.execute("PRAGMA busy_timeout = 100")  # a lock held longer is "busy" after 0.1 s
    return Target("default", conn, path)


def _installed(tmp_path: Path, factory: type[sqlite3.Connection] = sqlite3.Connection) -> tuple[Target, Path]:
    target = _target(tmp_path, factory)
    d = tmp_path / "tablemigrations"
    module(d, "0001_create", "up = ['CREATE TABLE t (id integer PRIMARY KEY, v text)', "
                             "\"INSERT INTO t (v) VALUES ('a')\"]\n")
    runner.run(target, d)
    for name, text in THREE.items():
        module(d, name, text)
    return target, d


@pytest.fixture
def on_start():
    """`on_start(name, action)`: call `action()` the first time tablemigrate's module `name` starts (its
    pre_migration signal)."""
    from tablemigrate import signals

    receivers = []

    def connect(wanted: str, action) -> None:
        def receiver(sender, name: str = "", **kwargs) -> None:
            if name == wanted and receiver in receivers:
                signals.pre_migration.disconnect(receiver)
                receivers.remove(receiver)
                action()

        receivers.append(receiver)
        signals.pre_migration.connect(receiver)

    yield connect
    for receiver in receivers:
        signals.pre_migration.disconnect(receiver)


# An interrupt right after BEGIN IMMEDIATE (5) -------------------------------------------------------

def test_an_interrupt_right_after_begin_rolls_back_and_restores_the_runs_backup(tmp_path, on_start):
    target, d = _installed(tmp_path, AfterBegin)
    before = list(target.conn.iterdump())

    def arm() -> None:
        target.conn.armed = True

    on_start("0003_b", arm)  # the second of three: 0002_a has committed
    with pytest.raises(MigrationInterrupted, match=r"migration 0003_b \(up\) interrupted \(SIGINT\); "
                                                   r"the database was restored from backup ") as info:
        runner.run(target, d)
    assert not target.conn.in_transaction
    assert list(target.conn.iterdump()) == before  # 0002_a undone: nobody else wrote
    backup = Path(str(info.value).split("restored from backup ", 1)[1].split(";", 1)[0])
    conn = sqlite3.connect(backup)
    assert list(conn.iterdump()) == before
    conn.close()
    assert [m.name for m in runner.run(target, d)] == list(THREE)  # and the next run does all three


def test_the_restore_rolls_back_a_transaction_left_open(tmp_path):
    """Whatever left a transaction open (a path without its own rollback), the restore is not stopped by
    it ("still inside a transaction"): it rolls back first."""
    target, _d = _installed(tmp_path)
    conn = target.conn
    saved = tmp_path / "backups" / "before.sqlite3"
    backups.take_backup(conn, saved)
    before, writers, found = list(conn.iterdump()), OtherWriters(conn), Found.read(conn)
    conn.execute("CREATE TABLE a (x)")  # 0002_a committed, with its record
    conn.execute("INSERT INTO tablemigrate_history (name, checksum, applied_at, duration_ms) "
                 "VALUES ('0002_a', '', '', 0)")
    conn.execute("BEGIN IMMEDIATE")  # 0003_b's, left open
    conn.execute("INSERT INTO t (v) VALUES ('open')")
    failure = recover(target, KeyboardInterrupt(), found.history, saved, writers, "migration 0003_b (up)",
                              found=found)
    assert "restored from backup" in str(failure) and not conn.in_transaction
    assert list(conn.iterdump()) == before


# Recovery reads the schema, not the history tables alone (4) --------------------------------------

def test_a_migration_that_committed_without_its_record_is_restored_or_told(tmp_path):
    target, _d = _installed(tmp_path)
    conn = target.conn
    saved = tmp_path / "backups" / "before.sqlite3"
    backups.take_backup(conn, saved)
    before, writers, found = list(conn.iterdump()), OtherWriters(conn), Found.read(conn)
    running = "Django migration vendor.0003_tags"
    conn.execute("CREATE TABLE vendor_tag (id integer PRIMARY KEY)")  # COMMITted; then the interrupt
    told = str(recover(target, KeyboardInterrupt(), found.history, None, writers, running, found=found))
    assert told == ("Django migration vendor.0003_tags interrupted (SIGINT); stopped, but no backup "
                    "was taken: Django migration vendor.0003_tags committed its schema changes but is not recorded "
                    "as applied (the schema does not match the history tables)")
    assert "unchanged" not in told
    told = str(recover(target, KeyboardInterrupt(), found.history, saved, writers, running, found=found))
    assert told.endswith(f"; the database was restored from backup {saved}")
    assert list(conn.iterdump()) == before


# A busy database exits 3 wherever it is busy (7) ----------------------------------------------------

def _reader(path: Path) -> sqlite3.Connection:
    """The application in the middle of a read (rollback journal: it holds a SHARED lock)."""
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM sqlite_master").fetchall()
    return reader


def test_a_commit_kept_busy_by_a_reader_exits_3_and_changes_nothing(tmp_path, on_start):
    target, d = _installed(tmp_path)
    assert target.conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    before = list(target.conn.iterdump())
    readers: list[sqlite3.Connection] = []
    on_start("0002_a", lambda: readers.append(_reader(target.path)))
    with pytest.raises(DatabaseLocked, match=r"^migration 0002_a \(up\): the database stayed locked by another "
                                             r"connection past the busy timeout, at COMMIT \(database is locked\); "
                                             r"nothing was changed \(backup: .*\)$") as info:
        runner.run(target, d)
    assert info.value.exit_code == 3
    readers[0].close()
    assert list(target.conn.iterdump()) == before
    # Not a failed run: its backup is not pinned as the state before one (it is pruned by age).
    assert backups.pinned(target.backups_dir, target.path) is None
    assert [m.name for m in runner.run(target, d)] == list(THREE)


def test_a_busy_commit_after_a_committed_migration_whose_restore_is_busy_too_exits_3_and_says_so(tmp_path, on_start):
    target, d = _installed(tmp_path)
    readers: list[sqlite3.Connection] = []
    on_start("0003_b", lambda: readers.append(_reader(target.path)))
    with pytest.raises(DatabaseLocked, match=r"^migration 0003_b \(up\): .* at COMMIT \(database is locked\); rolled "
                                             r"back, but restoring the backup \S+ failed \(database is locked\): "
                                             r"0002_a \(applied earlier in this run\) stay applied; the history "
                                             r"table matches the schema; backup \S+ is kept until a run succeeds"):
        runner.run(target, d)
    readers[0].close()
    assert [a.name for a in status(target.conn, d).applied] == ["0001_create", "0002_a"]
    assert target.conn.execute("SELECT name FROM sqlite_master WHERE name IN ('a', 'b')").fetchall() == [("a",)]
    pinned = backups.pinned(target.backups_dir, target.path)
    assert pinned is not None  # the state before this run: it did change the database
    assert [m.name for m in runner.run(target, d)] == ["0003_b", "0004_c"]
    assert backups.pinned(target.backups_dir, target.path) is None


# Through the command, on the mixedsite copy --------------------------------------------------------

FAULTS = '''
"""Faults for tests/test_recovery.py, chosen by MIXEDSITE_FAULT = "<kind>:<migration>":

- record:<app.name>  SIGTERM inside Django's MigrationRecorder.record_applied for that migration, before
                     it writes the row (after the COMMIT when Django records after the atomic block).
- begin:<module>     SIGTERM right after `BEGIN IMMEDIATE` returns, in that tablemigrate module.
- read:<migration>   another connection holds a read transaction from when that migration starts.
MIXEDSITE_DJANGOS_EXECUTOR=1: tablemigrate applies the Django migrations with Django's own executor.
"""
import os
import signal
import sqlite3

HOLDERS = []
ARMED = []


class Connection(sqlite3.Connection):
    def execute(self, sql, *args):
        cursor = super().execute(sql, *args)
        if ARMED and sql == "BEGIN IMMEDIATE":
            ARMED.clear()
            signal.raise_signal(signal.SIGTERM)
        return cursor


def setup():
    from django.conf import settings
    from django.db.migrations.recorder import MigrationRecorder

    from tablemigrate import signals

    kind, _, which = os.environ.get("MIXEDSITE_FAULT", "").partition(":")
    if os.environ.get("MIXEDSITE_DJANGOS_EXECUTOR") == "1":
        from django.db.migrations.executor import MigrationExecutor
        from tablemigrate.project import djangoapps

        djangoapps.Executor = MigrationExecutor
    if kind == "record":
        original = MigrationRecorder.record_applied

        def record_applied(self, app, name):
            if f"{app}.{name}" == which and not HOLDERS:
                HOLDERS.append(None)
                signal.raise_signal(signal.SIGTERM)
            return original(self, app, name)

        MigrationRecorder.record_applied = record_applied

    def starting(sender, name, **kwargs):
        if name != which or HOLDERS:
            return
        if kind == "begin":
            ARMED.append(True)
        elif kind == "read":
            reader = sqlite3.connect(settings.DATABASES["default"]["NAME"], isolation_level=None)
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM sqlite_master").fetchall()
            HOLDERS.append(reader)

    signals.pre_migration.connect(starting, weak=False)
'''

FAULTS_APP = '''
from django.apps import AppConfig


class FaultsConfig(AppConfig):
    name = "faults"

    def ready(self):
        import faults

        faults.setup()
'''

FAULTY_SETTINGS = '''from mixedsite.settings import *  # noqa
import faults

TABLEMIGRATE_BUSY_TIMEOUT = 0.5
INSTALLED_APPS = [*INSTALLED_APPS, "faults.apps.FaultsConfig"]
DATABASES["default"]["OPTIONS"] = {"factory": faults.Connection}
'''

TAGS = '''
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("vendor", "0002_general_category")]
    operations = [
        migrations.CreateModel(
            name="Tag",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("label", models.CharField(max_length=50)),
                ("category", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, to="vendor.category")),
            ],
        ),
    ]
'''


def _with_faults(site: Path) -> None:
    (site / "faults").mkdir()
    (site / "faults" / "__init__.py").write_text(FAULTS)
    (site / "faults" / "apps.py").write_text(FAULTS_APP)
    (site / "faulty.py").write_text(FAULTY_SETTINGS)


def faulty_run(site: Path, fault: str, **env: str):
    return manage(site, "tablemigrate", "run", "--noinput", check=False, DJANGO_SETTINGS_MODULE="faulty",
                  MIXEDSITE_FAULT=fault, **env)


def state(db: Path) -> tuple:
    """What a run decides: the schema, Django's and tablemigrate's records (without their times), the rows."""
    return (rows(db, "SELECT type, name, sql FROM sqlite_master ORDER BY type, name"),
            rows(db, "SELECT app, name FROM django_migrations ORDER BY app, name"),
            rows(db, "SELECT name, checksum FROM tablemigrate_history ORDER BY name"),
            rows(db, "SELECT * FROM vendor_category ORDER BY id"))


@pytest.mark.subprocess
@pytest.mark.parametrize("executor", ["tablemigrate", "django"])
def test_sigterm_between_a_django_migrations_commit_and_its_record_tells_the_truth(site, tmp_path, executor):
    """vendor.0003_tags has a foreign key, so Django's executor records it after the migration's COMMIT.
    tablemigrate's executor records it inside the transaction: the interrupt rolls both back. With
    Django's own executor the migration is applied and unrecorded when the interrupt lands; recovery
    sees the schema changed without a record and restores the backup."""
    db = site / "db.sqlite3"
    install(site)
    _with_faults(site)
    vendor_migration(site, "0003_tags", TAGS)
    clean = tmp_path / "clean" / "db.sqlite3"  # the same database, run without a fault
    clean.parent.mkdir()
    shutil.copy(db, clean)
    manage(site, "tablemigrate", "run", "--noinput", MIXEDSITE_DB=str(clean))
    before = dump(db)
    proc = faulty_run(site, "record:vendor.0003_tags", MIXEDSITE_DJANGOS_EXECUTOR=str(int(executor == "django")))
    assert proc.returncode == 128 + signal.SIGTERM, proc.stdout + proc.stderr
    line = _one_error_line(proc)
    assert line.startswith("CommandError: interrupted by SIGTERM; Django migration vendor.0003_tags "), line
    if executor == "tablemigrate":
        assert line.endswith("; rolled back, the database is unchanged (backup: "
                             f"{line.split('(backup: ', 1)[1]}"), line
    else:
        assert "the database was restored from backup " in line, line
    assert dump(db) == before  # (b): as before the run, and what the line says
    assert "vendor.0003_tags" in tm(site, "run", "--noinput").stdout  # (c): the next run applies it
    assert state(db) == state(clean)


@pytest.mark.subprocess
def test_sigterm_right_after_begin_in_the_second_of_three_modules_restores_the_backup(site):
    db = site / "db.sqlite3"
    install(site)
    _with_faults(site)
    names = []
    for i, table in enumerate(("extra_a", "extra_b", "extra_c"), 1):
        names.append(f"99999999_99999{i}_extra")
        (site / "tablemigrations" / f"{names[-1]}.py").write_text(
            f"up = ['CREATE TABLE {table} (x)', 'INSERT INTO {table} VALUES (1)']\n")
    before = dump(db)
    proc = faulty_run(site, f"begin:{names[1]}")
    assert proc.returncode == 128 + signal.SIGTERM, proc.stdout + proc.stderr
    line = _one_error_line(proc)
    assert line.startswith(f"CommandError: interrupted by SIGTERM; migration {names[1]} (up) interrupted "
                           "(SIGTERM); the database was restored from backup "), line  # the first committed
    assert dump(db) == before
    assert [n for n in tm(site, "run", "--noinput").stdout.split() if n.startswith("99999999")] == names


@pytest.mark.subprocess
def test_a_busy_commit_exits_3_for_a_django_migration_and_for_an_own_module(site):
    db = site / "db.sqlite3"
    install(site)
    _with_faults(site)
    vendor_migration(site, "0003_tags", TAGS)
    (site / "tablemigrations" / "99999999_999999_extra.py").write_text("up = ['CREATE TABLE extra (x)']\n")
    before = dump(db)
    proc = faulty_run(site, "read:vendor.0003_tags")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Django migration vendor.0003_tags: the database stayed locked" in _one_error_line(proc)
    assert dump(db) == before
    proc = faulty_run(site, "read:99999999_999999_extra")  # vendor.0003_tags commits first
    assert proc.returncode == 3, proc.stdout + proc.stderr
    line = _one_error_line(proc)
    assert "migration 99999999_999999_extra (up): the database stayed locked by another connection past the " \
           "busy timeout, at COMMIT (database is locked)" in line, line
    assert "vendor.0003_tags (applied earlier in this run) stay applied" in line, line  # the restore was busy too
    assert ("vendor", "0003_tags") in rows(db, "SELECT app, name FROM django_migrations")
    assert rows(db, "SELECT name FROM sqlite_master WHERE name = 'extra'") == []
    assert tm(site, "run", "--noinput").stdout.split()[:2] == ["Applied", "99999999_999999_extra"]


@pytest.mark.subprocess
def test_a_django_migration_applied_but_unrecorded_is_named_at_the_next_run(site):
    """What an interrupted run of an older tablemigrate left (or a hand-made change): vendor.0003_tags's
    table exists without its record. The next run says so and how to record it, instead of failing
    with "table vendor_tag already exists"."""
    db = site / "db.sqlite3"
    install(site)
    vendor_migration(site, "0003_tags", TAGS)
    tm(site, "run", "--noinput")
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM django_migrations WHERE name = '0003_tags'")
    conn.commit()
    conn.close()
    before = dump(db)
    proc = tm(site, "run", "--noinput", check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert _one_error_line(proc) == (
        "CommandError: what vendor.0003_tags creates (its tables and columns) is already in the database, but "
        "Django has not recorded that migration (a run stopped between its COMMIT and its record by an older "
        "tablemigrate, or a hand-made change): if the schema is what it makes, record it with `manage.py migrate "
        "vendor 0003_tags --fake`; nothing was changed")
    assert dump(db) == before
    manage(site, "migrate", "vendor", "0003_tags", "--fake")
    assert tm(site, "run", "--noinput").stdout.strip() == "No migrations to apply."
