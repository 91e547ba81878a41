"""Fault injection: a multi-migration `run` (with a 100,000-row rebuild) killed at many moments, disk
full during the backup and during a rebuild. After each fault the database is intact, is the old or a
consistent new state per migration (history agrees with schema), has lost no row, and the next run
completes.

    TABLEMIGRATE_KILL_POINTS=60 ./scripts/test tests/test_reliability.py     # the long run (>= 50 kills)
"""

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tablemigrate.backups.backup import automatic_backups
from tablemigrate.history.status import Target, status
from tablemigrate.project.build import private_database, raw
from tablemigrate.run import runner
from tablemigrate.run.drift import drift

pytestmark = pytest.mark.subprocess  # every test here starts the project's manage.py or a process

ROOT = Path(__file__).resolve().parent.parent
ROWS = 100_000
KILL_POINTS = int(os.environ.get("TABLEMIGRATE_KILL_POINTS", "12"))

MIGRATIONS = {
    "0001_create": '''up = [
    "CREATE TABLE owners (id integer PRIMARY KEY, name text NOT NULL)",
    """CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL, qty int NOT NULL, note text,
        owner_id int NOT NULL REFERENCES owners (id) ON DELETE CASCADE)""",
    "CREATE INDEX items_name ON items (name)",
]
down = ["DROP TABLE items", "DROP TABLE owners"]
''',
    "0002_flag": '''up = ["ALTER TABLE items ADD COLUMN flag int NOT NULL DEFAULT 0"]
down = ["ALTER TABLE items DROP COLUMN flag"]
''',
    "0003_rebuild_items": '''from tablemigrate.operations import RebuildTable
destructive = ["NULL notes become ''"]
up = [RebuildTable("items", """CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL, qty bigint NOT NULL,
    note text NOT NULL DEFAULT '', owner_id int NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    flag int NOT NULL DEFAULT 0)""",
    {"id": '"id"', "name": '"name"', "qty": '"qty"', "note": "COALESCE(\\"note\\", '')", "owner_id": '"owner_id"',
     "flag": '"flag"'})]
''',
    "0004_rebuild_owners": '''from tablemigrate.operations import RebuildTable
up = [RebuildTable("owners", "CREATE TABLE owners (id integer PRIMARY KEY, name text NOT NULL, active int NOT NULL DEFAULT 1)",
                   {"id": '"id"', "name": '"name"'})]
''',
    "0005_summary": '''from tablemigrate.operations import RunPython

def fill(db):
    db.execute("INSERT INTO summary SELECT owner_id, count(*) FROM items GROUP BY owner_id")

up = ["CREATE TABLE summary (owner_id int PRIMARY KEY, total int NOT NULL)", RunPython(fill)]
''',
    "0006_drop_note": '''destructive = ["drops items.note"]
up = ["ALTER TABLE items DROP COLUMN note"]
''',
}
NAMES = sorted(MIGRATIONS)


def write_modules(directory: Path, names) -> None:
    directory.mkdir(exist_ok=True)
    for name in names:
        (directory / f"{name}.py").write_text(MIGRATIONS[name])


def preserved(conn) -> tuple:
    """What no migration may lose: every item's identity and data, every owner."""
    items = conn.execute("SELECT count(*), total(id), total(qty), total(owner_id), "
                         "group_concat(name, ',') FILTER (WHERE id % 997 = 0) FROM items").fetchone()
    owners = conn.execute("SELECT count(*), group_concat(name, ',') FROM owners").fetchone()
    return items, owners


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, django_db_blocker):
    """A database with 0001 applied and 100,000 items, plus the directory with all six modules."""
    with django_db_blocker.unblock():
        return _pristine(tmp_path_factory.mktemp("pristine"))


def _pristine(base: Path):
    directory = base / "migrations"
    write_modules(directory, NAMES[:1])
    with private_database(str(base / "db.sqlite3")) as db:
        conn = raw(db)
        runner.run(Target("default", conn, base / "db.sqlite3"), directory, take_backup=False)
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO owners VALUES (?, ?)", [(i, f"owner {i}") for i in range(1, 11)])
        conn.executemany("INSERT INTO items (id, name, qty, note, owner_id) VALUES (?, ?, ?, ?, ?)",
                         ((i, f"item {i}", i * 7, None if i % 3 else f"note {i}", i % 10 + 1) for i in range(1, ROWS + 1)))
        conn.execute("COMMIT")
        expected = preserved(conn)
    write_modules(directory, NAMES[1:])
    return base, expected


def fresh_copy(pristine, where: Path) -> tuple[Path, Path]:
    base, _expected = pristine
    where.mkdir()
    shutil.copy(base / "db.sqlite3", where / "db.sqlite3")
    shutil.copytree(base / "migrations", where / "migrations")
    return where / "db.sqlite3", where / "migrations"


def start(db: Path, directory: Path, **popen) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "reliability" / "runner_process.py"), str(db),
                             str(directory)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **popen)
    assert proc.stdout.readline().strip() == "START"
    return proc


def check_consistent(db: Path, directory: Path, expected) -> list[str]:
    """The invariants after any fault; returns the migrations the database records as applied."""
    with private_database(str(db)) as wrapper:
        conn = raw(wrapper)
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        target = Target("default", conn, db)
        applied = [a.name for a in status(conn, directory).applied]
        assert applied == NAMES[:len(applied)]  # applied in order, each all or nothing
        assert drift(target, directory) == []  # the history agrees with the schema
        assert not conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'new\\_\\_%' ESCAPE '\\'").fetchall()
        assert preserved(conn) == expected  # no row lost
        if "0005_summary" in applied:
            assert conn.execute("SELECT sum(total) FROM summary").fetchone() == (ROWS,)
        return applied


def finish(db: Path, directory: Path, expected) -> None:
    """The next run completes and leaves everything applied and intact."""
    with private_database(str(db)) as wrapper:
        conn = raw(wrapper)
        runner.run(Target("default", conn, db), directory, allow_destructive=True)
    assert check_consistent(db, directory, expected) == NAMES
    assert not list((db.parent / "backups").glob("*.partial"))  # a half-written backup is cleaned up


def _timeline(proc: subprocess.Popen) -> tuple[list[float], float, str]:
    """From START: when each migration began, when the run ended, and its DONE line."""
    began, marks = time.perf_counter(), []
    for line in proc.stdout:
        if line.startswith("MIGRATION "):
            marks.append(time.perf_counter() - began)
        elif line.startswith("DONE"):
            return marks, time.perf_counter() - began, line
    raise AssertionError("the run ended without DONE")


def test_a_run_killed_at_any_moment_loses_nothing_and_the_next_run_completes(pristine, tmp_path):
    """Kill i lands in phase i mod 6 (the backup before the first migration, then each of the five
    migrations), at a moment spread over that phase as the timed run measured it, counted from the
    moment the phase began in the killed run itself: a slower or faster machine moves the kills with it
    (timing from START alone once put every kill in the first two migrations under load)."""
    _base, expected = pristine
    db, directory = fresh_copy(pristine, tmp_path / "timing")
    proc = start(db, directory)
    marks, end, done = _timeline(proc)
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and done.startswith("DONE 0002_flag"), err
    assert check_consistent(db, directory, expected) == NAMES and marks
    starts, ends = [0.0, *marks], [*marks, end]  # phase 0: the backup; phase k: migration k
    outcomes = {}
    for i in range(KILL_POINTS):
        phase, lap = i % len(starts), i // len(starts)
        fraction = (lap + 0.5) / -(-KILL_POINTS // len(starts))
        db, directory = fresh_copy(pristine, tmp_path / f"kill{i}")
        proc = start(db, directory)
        for _ in range(phase):  # the phase begins in this run
            assert proc.stdout.readline().startswith("MIGRATION ")
        time.sleep((ends[phase] - starts[phase]) * fraction)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        applied = check_consistent(db, directory, expected)
        outcomes[i] = len(applied) - 1
        finish(db, directory, expected)
    # the kills really were spread over the run: several different numbers of migrations had committed
    assert len(set(outcomes.values())) >= min(3, KILL_POINTS), outcomes
    print(f"{KILL_POINTS} kills over {end:.2f}s; migrations committed at each kill: {sorted(outcomes.values())}")


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.parametrize("where", ["backup", "rebuild"])
def test_disk_full_stops_cleanly_and_nothing_is_lost(pristine, tmp_path, where):
    _base, expected = pristine
    db, directory = fresh_copy(pristine, tmp_path / "full")
    size = db.stat().st_size
    # "backup": no file may reach the database's size, so the backup copy fails before any migration.
    # "rebuild": the backup fits, but the database cannot grow by a second copy of the items table.
    limit = size // 2 if where == "backup" else size + size // 4
    before = check_consistent(db, directory, expected)
    proc = start(db, directory, preexec_fn=_limit_file_size(limit))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode != 0 and err.strip().count("\n") == 0, (out, err)
    if where == "backup":
        assert "cannot write backup" in err and "nothing was changed" in err
        assert check_consistent(db, directory, expected) == before
        assert not automatic_backups(db.parent / "backups", db)
    else:
        # SQLite reports a write past the file-size limit as an I/O error (a full disk: "disk is full")
        assert "disk I/O error" in err or "disk is full" in err, err
        assert "0003_rebuild_items" in err and "restored from backup" in err  # 0002 had committed: undone
        assert check_consistent(db, directory, expected) == before
    finish(db, directory, expected)
