"""The command at the edges (issue 11, items 11 and 13): signals, a closed stdout, corrupt databases,
a database path that is a directory, files created by commands with nothing to do, -v 0, each migration
reported once, declared types in `inspect`, aligned `stats`/`snapshots`, prompts without a terminal.

The signal, pipe and reporting tests go through the real manage.py in a subprocess (what they test is
the process: its exit status, its stderr, its signal handlers); the rest call the command in-process."""

from __future__ import annotations

import io
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connections

from .helpers import project_env, tablemigrate
from .test_example_e2e import example, rows  # noqa: F401 (the fixture)

TM = "example_project/tablemigrations"
FIRST = "99999999_999999_01_first_step"
SLOW = "99999999_999999_02_slow_step"


# Subprocess: signals ------------------------------------------------------------------------------

def _slow_history(example: Path, marker: Path) -> None:
    """Two new modules: the first commits a table, the second signals that it started, then sleeps."""
    (example / TM / f"{FIRST}.py").write_text(
        "up = ['CREATE TABLE first_step (x)', 'INSERT INTO first_step VALUES (1)']\n"
        "down = ['DROP TABLE first_step']\n")
    (example / TM / f"{SLOW}.py").write_text(
        "import pathlib\nimport time\n\n\n"
        "def up(db):\n"
        "    db.execute('CREATE TABLE slow_step (x)')\n"
        f"    pathlib.Path({str(marker)!r}).touch()\n"
        "    time.sleep(60)\n\n\n"
        "down = ['DROP TABLE slow_step']\n")


@pytest.mark.subprocess
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_signal_stops_a_run_cleanly_with_one_line_and_its_exit_code(example, tmp_path, sig):  # noqa: F811
    db = example / "example_project" / "db.sqlite3"
    tablemigrate(example, "run", "--noinput")
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO posts_tag (id, name) VALUES (1, 'news')")
    conn.commit()
    conn.close()
    marker = tmp_path / "slow-step-started"
    _slow_history(example, marker)
    args = ["run", "--noinput"] + (["-v", "0"] if sig == signal.SIGINT else [])
    # SIGINT as a terminal delivers it: the child starts with the default disposition (a test runner
    # in the background would otherwise pass on "ignored", and Python then never raises for it).
    proc = subprocess.Popen([sys.executable, "manage.py", "tablemigrate", *args], cwd=example, env=project_env(example),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():  # migration 1 has committed, migration 2 is under way
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.02)
        assert rows(db, f"SELECT name FROM tablemigrate_history WHERE name = '{FIRST}'") == [(FIRST,)]
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + sig, (proc.returncode, err)
    assert "Traceback" not in err
    # The run's log lines (none at -v 0), then exactly one line for the interrupt.
    lines = err.strip().splitlines()
    assert [line for line in lines if "Error" in line] == [lines[-1]], lines
    assert lines[-1].startswith(f"CommandError: interrupted by {signal.Signals(sig).name}; "), lines[-1]
    assert f"interrupted ({signal.Signals(sig).name})" in lines[-1] and "KeyboardInterrupt" not in lines[-1]
    assert "restored" in lines[-1], lines[-1]
    assert sig != signal.SIGINT or lines == [lines[-1]]  # -v 0: that line only
    assert "Applied" not in out
    # Migration 1 was undone by restoring the run's backup; migration 2 rolled back.
    assert [r[0] for r in rows(db, "SELECT name FROM tablemigrate_history")] == sorted(
        p.stem for p in (example / TM).glob("2026*.py"))
    assert rows(db, "SELECT name FROM sqlite_master WHERE name IN ('first_step', 'slow_step')") == []
    assert rows(db, "SELECT name FROM posts_tag") == [("news",)]
    assert rows(db, "PRAGMA integrity_check") == [("ok",)]
    assert [p.name for p in db.parent.rglob("*.partial")] == []
    assert not any(p.name.endswith("-journal") for p in db.parent.iterdir())


# Subprocess: a closed stdout, reporting, -v 0 --------------------------------------------------------

@pytest.mark.subprocess
def test_a_reader_that_goes_away_ends_the_command_quietly_with_141(example):  # noqa: F811
    """`show | head`: the pipe's read end is closed before the command writes anything."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "manage.py", "tablemigrate", "show"], cwd=example,
                              env=project_env(example), stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr == ""


@pytest.mark.subprocess
def test_each_migration_is_reported_once_and_verbosity_0_prints_nothing(example):  # noqa: F811
    first = tablemigrate(example, "run", "--noinput")
    names = sorted(p.stem for p in (example / TM).glob("2026*.py"))
    both = first.stdout + first.stderr
    assert all(both.count(name) == 1 for name in names), both
    assert [line for line in first.stdout.splitlines() if line.startswith("Applied ")] and all(
        f"Applied {name} (" in first.stdout for name in names)
    assert "migration backup written to" in first.stderr  # the log lines deployments grep stay
    for args in (["revert", "--noinput", "--allow-destructive"], ["run", "--noinput"], ["run", "--noinput"],
                 ["snapshot", "--name", "quiet"]):
        proc = tablemigrate(example, *args, "-v", "0")
        assert (proc.stdout, proc.stderr) == ("", ""), (args, proc.stdout, proc.stderr)
    assert (example / "example_project" / "backups").is_dir()


@pytest.mark.subprocess
def test_a_corrupt_database_is_one_line_through_manage_py(example):  # noqa: F811
    db = example / "example_project" / "db.sqlite3"
    tablemigrate(example, "run", "--noinput")
    data = bytearray(db.read_bytes())
    data[100:] = random.Random(7).randbytes(len(data) - 100)  # a valid header, garbage after it
    db.write_bytes(bytes(data))
    proc = tablemigrate(example, "show", check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "corrupt" in proc.stderr and "Traceback" not in proc.stderr


# In-process: a database file of our own ---------------------------------------------------------------

@pytest.fixture
def edge(tmp_path, settings):
    """An alias 'edge' on a database file in tmp_path (not created), and a migrations directory."""
    settings.TABLEMIGRATE_MIGRATIONS_DIR = tmp_path / "m"
    settings.DATABASES["edge"] = dict(connections["default"].settings_dict, NAME=str(tmp_path / "db.sqlite3"),
                                      TEST={})
    yield tmp_path / "db.sqlite3"
    connections["edge"].close()
    del connections["edge"]
    del settings.DATABASES["edge"]


def tm(*args: str, **kwargs) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("tablemigrate", *args, "--database", "edge", stdout=out, stderr=err, **kwargs)
    finally:
        connections["edge"].close()
    return out.getvalue(), err.getvalue()


def modules(directory: Path, **texts: str) -> None:
    directory.mkdir(exist_ok=True)
    for name, text in texts.items():
        (directory / f"{name}.py").write_text(text)


def make_good(db: Path, directory: Path) -> None:
    modules(directory, **{
        "0001_create_item": "up = ['CREATE TABLE item (id integer PRIMARY KEY, name varchar(200) NOT NULL)', "
                            "'CREATE INDEX item_name ON item (name)']\ndown = ['DROP TABLE item']\n",
        "0002_create_note": "up = ['CREATE TABLE note (id integer PRIMARY KEY, body text)']\n"
                            "down = ['DROP TABLE note']\n"})
    tm("run", "--noinput", "--no-backup", verbosity=0)
    conn = sqlite3.connect(db)
    conn.executemany("INSERT INTO item (name) VALUES (?)", [(os.urandom(100).hex(),) for _ in range(300)])
    conn.executemany("INSERT INTO note (body) VALUES (?)", [(os.urandom(150).hex(),) for _ in range(300)])
    conn.commit()
    conn.close()


def _pages(db: Path, change) -> None:
    data = bytearray(db.read_bytes())
    change(data)
    db.write_bytes(bytes(data))


def _wal_of_another(db: Path) -> None:
    other = db.with_name("other.sqlite3")
    for stale in (other, Path(f"{other}-wal"), Path(f"{other}-shm")):
        stale.unlink(missing_ok=True)
    conn = sqlite3.connect(other)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE t (x)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(200)])
    conn.commit()
    db.write_bytes(Path(f"{other}-wal").read_bytes())
    conn.close()


def _random_middle_pages(data: bytearray) -> None:
    rnd = random.Random(11)
    for page in range(1, len(data) // 4096 - 1):  # every page but the first and the last
        data[page * 4096:(page + 1) * 4096] = rnd.randbytes(4096)


CORRUPTIONS = {
    "truncated": lambda db: _pages(db, lambda d: d.__delitem__(slice(len(d) // 3 + 100, None))),
    "zeroed header page": lambda db: _pages(db, lambda d: d.__setitem__(slice(0, 4096), bytes(4096))),
    "garbage after a valid header": lambda db: _pages(
        db, lambda d: d.__setitem__(slice(100, None), random.Random(3).randbytes(len(d) - 100))),
    "zero-length file": lambda db: db.write_bytes(b""),
    "the WAL of another database": _wal_of_another,
    "random bytes in the middle pages": lambda db: _pages(db, _random_middle_pages),
    "page-size field corrupted": lambda db: _pages(db, lambda d: d.__setitem__(slice(16, 18), (1000).to_bytes(2, "big"))),
}
COMMANDS = [["show"], ["run", "--noinput"], ["stats"], ["inspect"], ["snapshot", "--name", "s"], ["snapshots"]]


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_every_command_on_a_corrupt_database_is_one_error_line(edge, kind):
    make_good(edge, edge.parent / "m")
    good = edge.read_bytes()
    for args in COMMANDS:
        if kind == "zero-length file" and args[0] == "run":
            continue  # SQLite's empty database: `run` creates the schema in it
        edge.write_bytes(good)
        shutil.rmtree(edge.parent / "backups", ignore_errors=True)
        CORRUPTIONS[kind](edge)
        with pytest.raises(CommandError) as info:
            tm(*args, verbosity=0)
        message = str(info.value)
        assert info.value.returncode in (1, 2), (args, info.value.returncode, message)
        assert "\n" not in message and message, (args, message)
        assert not list((edge.parent / "backups").rglob("*.sqlite3")), args  # no copy of a corrupt file


def test_a_database_path_that_is_a_directory_is_an_error_not_an_empty_database(edge):
    modules(edge.parent / "m", **{"0001_t": "up = ['CREATE TABLE t (x)']\n"})
    edge.mkdir()
    for args in (["show"], ["stats"], ["run", "--noinput"]):
        with pytest.raises(CommandError, match="is not a file") as info:
            tm(*args)
        assert info.value.returncode == 2


# In-process: no database file out of nothing ------------------------------------------------------------

@pytest.mark.parametrize("history", ["no directory", "empty directory", "a malformed module", "invalid SQL"])
def test_run_with_nothing_to_do_or_failing_first_creates_no_database_file(edge, history):
    directory = edge.parent / "m"
    if history != "no directory":
        directory.mkdir()
    if history == "a malformed module":
        modules(directory, **{"0001_bad": "up = [\n"})
    if history == "invalid SQL":
        modules(directory, **{"0001_bad": "up = ['ALTER TABLE nosuch ADD COLUMN x int']\n"})
    if history == "empty directory":
        out, _ = tm("run", "--noinput")
        assert out.strip() == "No migrations to apply."
        tm("run", "--noinput", "--dry-run")
    else:
        with pytest.raises(CommandError):
            tm("run", "--noinput")
    assert sorted(p.name for p in edge.parent.iterdir() if p.name != "m") == []


def test_dry_run_and_a_refused_restore_on_a_missing_database_create_nothing(edge):
    modules(edge.parent / "m", **{"0001_t": "up = ['CREATE TABLE t (x)']\ndown = ['DROP TABLE t']\n"})
    out, _ = tm("run", "--noinput", "--dry-run")
    assert "would apply 0001_t" in out
    with pytest.raises(CommandError, match="refusing to restore"):
        tm("restore", "--name", "nope")
    assert sorted(p.name for p in edge.parent.iterdir() if p.name != "m") == []
    tm("run", "--noinput", verbosity=0)  # and a real first run creates it
    assert rows(edge, "SELECT name FROM sqlite_master WHERE name = 't'") == [("t",)]


# In-process: what users read ------------------------------------------------------------------------------

def test_inspect_prints_types_as_declared(edge):
    modules(edge.parent / "m", **{"0001_t": "up = ['CREATE TABLE t (id integer PRIMARY KEY, name varchar(200) "
                                            "NOT NULL, price decimal(10, 2), big unsigned  big int DEFAULT 0)']\n"})
    tm("run", "--noinput", "--no-backup", verbosity=0)
    out, _ = tm("inspect", "t")
    assert "varchar(200) NOT NULL" in out and "decimal(10, 2)" in out and "unsigned big int DEFAULT 0" in out
    assert "( " not in out


def test_stats_and_snapshots_are_aligned_columns_with_headers(edge):
    modules(edge.parent / "m", **{
        "0001_a": "up = ['CREATE TABLE a (x)', 'INSERT INTO a VALUES (1)']\n",
        "0002_much_longer_name": "up = ['CREATE TABLE much_longer_name (x)', 'WITH RECURSIVE n(i) AS (SELECT 1 "
                                 "UNION ALL SELECT i + 1 FROM n WHERE i < 12345) INSERT INTO much_longer_name "
                                 "SELECT i FROM n']\n"})
    tm("run", "--noinput", verbosity=0)
    tm("snapshot", "--name", "first-snapshot-with-a-long-name", verbosity=0)
    out, _ = tm("stats")
    table = [line for line in out.splitlines() if line.startswith("  ")]
    assert table[0].split() == ["table", "rows", "size"], out
    body = {line.split()[0]: line for line in table[1:]}
    assert set(body) == {"a", "much_longer_name"}
    # Right-aligned numbers: every row's count and size end where the header's do.
    for word in ("rows", "size"):
        end = table[0].index(word) + len(word)
        assert {len(line[:end].rstrip()) for line in table} == {end}, out
    assert "12,345" in body["much_longer_name"] and " 1 " in body["a"]
    listing, _ = tm("snapshots")
    header, *entries = listing.splitlines()
    assert header.split()[:2] == ["kind", "name"] and len(entries) == 2, listing
    starts = [header.index(word) for word in ("name", "taken")]
    assert all(line[start - 2:start] == "  " and line[start] != " " for line in entries for start in starts), listing


def test_prompts_without_a_terminal_end_their_line(edge, monkeypatch, capsys):
    modules(edge.parent / "m", **{
        "0001_t": "up = ['CREATE TABLE t (x)', 'INSERT INTO t VALUES (1)']\ndown = ['DROP TABLE t']\n"})
    tm("run", "--noinput", verbosity=0)
    monkeypatch.setattr(sys, "stdin", io.StringIO("yes\n"))
    call_command("tablemigrate", "revert", "--database", "edge")  # asks: down drops a table with a row
    connections["edge"].close()
    out = capsys.readouterr().out
    assert "Type 'yes' to continue: yes\n" in out, out
    assert "\nReverted 0001_t" in out, out


@pytest.mark.subprocess
def test_restore_of_another_databases_file_needs_from_other_database(example, tmp_path):  # noqa: F811
    tablemigrate(example, "run", "--noinput")
    foreign = tmp_path / "made-by-hand.sqlite3"
    made = sqlite3.connect(foreign)  # no recorded origin: could be any database's
    made.execute("CREATE TABLE t (x)")
    made.close()
    refused = tablemigrate(example, "restore", "--backup", str(foreign), "--noinput", check=False)
    assert refused.returncode == 2 and "--from-other-database" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    tablemigrate(example, "restore", "--backup", str(foreign), "--from-other-database", "--noinput")


@pytest.mark.subprocess
def test_restore_names_the_file_it_used_and_a_failed_run_says_what_it_keeps_once(example):  # noqa: F811
    tablemigrate(example, "run", "--noinput")
    tablemigrate(example, "snapshot", "--name", "s1")
    restored = tablemigrate(example, "restore", "--name", "s1", "--noinput").stdout
    used = Path(restored.split("Restored ", 1)[1].split(";", 1)[0])
    assert used.is_file() and used.parent.parent.name == "snapshots", restored
    (example / TM / "99999999_999999_01_bad.py").write_text("def up(db):\n    raise ValueError('boom')\n")
    failed = tablemigrate(example, "run", "--noinput", check=False)
    assert failed.returncode == 1 and failed.stderr.count("is kept until a run succeeds") == 1, failed.stderr


def test_migrate_plan_and_check_in_process_list_what_run_would_apply_and_write_nothing(edge):
    """`manage.py migrate --plan` / `--check` (tablemigrate's `migrate`, issue 23) in this process: the
    fast tier's test of management/commands/migrate.py (test_migrate_command.py runs it through manage.py)."""
    directory = edge.parent / "m"
    make_good(edge, directory)
    modules(directory, **{"0003_create_tag": "up = ['CREATE TABLE tag (id integer PRIMARY KEY)']\n"
                                             "down = ['DROP TABLE tag']\n"})
    before = edge.read_bytes()
    out = io.StringIO()
    connections["edge"].settings_dict["TEST"].setdefault("NAME", None)  # as Django fills it in: not a test database
    try:
        call_command("migrate", "--plan", "--database", "edge", stdout=out)
        with pytest.raises(CommandError, match="1 migrations are not applied") as info:
            call_command("migrate", "--check", "--database", "edge", stdout=io.StringIO())
    finally:
        connections["edge"].close()
    assert out.getvalue().split() == ["Planned", "operations:", "tablemigrate:", "0003_create_tag"]
    assert info.value.returncode == 1 and edge.read_bytes() == before
