"""Bad input through manage.py: each case gets one clear error line, a non-zero exit, and changes
nothing (the database file is byte-for-byte the same, no backup appears)."""

import hashlib
import os
import sqlite3
import stat
import subprocess
import sys

import pytest

from .helpers import tablemigrate, timed_commands
from .test_example_e2e import example  # noqa: F401 (the fixture)

pytestmark = pytest.mark.subprocess  # every test here starts the project's manage.py or a process

TM = "example_project/tablemigrations"
FIRST = "20261125_060502_01_create_chats_chat"


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def add_module(example, text, name="99999999_999999_01_bad"):
    (example / TM / f"{name}.py").write_text(text)


def sql(db, statement):
    conn = sqlite3.connect(db)
    conn.execute(statement)
    conn.commit()
    conn.close()


CASES = {
    "syntax error in a module": (lambda ex, db: add_module(ex, "up = [\n"), ["run", "--noinput"], 2, "syntax error"),
    "module without up": (lambda ex, db: add_module(ex, "down = []\n"), ["run", "--noinput"], 2, "up"),
    "up of the wrong type": (lambda ex, db: add_module(ex, "up = 42\n"), ["run", "--noinput"], 2, "up"),
    "destructive of the wrong type": (lambda ex, db: add_module(ex, "up = []\ndestructive = 42\n"),
                                      ["run", "--noinput"], 2, "destructive"),
    "SQL syntax error": (lambda ex, db: add_module(ex, "up = ['CREAT TABLE x (y)']\n"), ["run", "--noinput"], 1,
                         "syntax error"),
    "missing table": (lambda ex, db: add_module(ex, "up = ['ALTER TABLE nosuch ADD COLUMN y int']\n"),
                      ["run", "--noinput"], 1, "no such table"),
    "applied module deleted": (lambda ex, db: (ex / TM / f"{FIRST}.py").unlink(), ["run", "--noinput"], 2,
                               "missing"),
    "applied module edited": (lambda ex, db: (ex / TM / f"{FIRST}.py").write_text(
        (ex / TM / f"{FIRST}.py").read_text() + "# edit\n"), ["run", "--noinput"], 2, "edited after it was applied"),
    "history checksum edited by hand": (lambda ex, db: sql(db, "UPDATE tablemigrate_history SET checksum = 'x' "
                                                               f"WHERE name = '{FIRST}'"),
                                        ["run", "--noinput"], 2, "edited after it was applied"),
    "history row for an unknown module": (lambda ex, db: sql(db, "INSERT INTO tablemigrate_history (name, checksum, "
                                                                 "applied_at, duration_ms) VALUES ('zz', 'x', 'now', 0)"),
                                          ["run", "--noinput"], 2, "missing"),
    "history row deleted by hand": (lambda ex, db: sql(db, f"DELETE FROM tablemigrate_history WHERE name = '{FIRST}'"),
                                    ["run", "--noinput"], 1, "already exists"),
    "unknown option": (lambda ex, db: None, ["run", "--frobnicate"], 2, "unrecognized arguments"),
    "database file is not SQLite": (lambda ex, db: db.write_text("hello, not a database\n" * 100),
                                    ["run", "--noinput"], 2, "not a usable SQLite database"),
    "database file is read-only": (lambda ex, db: os.chmod(db, stat.S_IRUSR), ["run", "--noinput"], 2,
                                   "read-only"),
    "revert with nothing to revert": (lambda ex, db: sql(db, "DELETE FROM tablemigrate_history"),
                                      ["revert", "--noinput"], 2, "no applied migration"),
    "snapshot name with shell metacharacters": (lambda ex, db: None,
                                                ["snapshot", "--name", "$(touch pwned);x"], 2, "invalid snapshot name"),
    "restore of a missing snapshot": (lambda ex, db: None, ["restore", "--name", "nope"], 2, "no such file"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input(example, case):  # noqa: F811
    if case == "database file is read-only" and os.geteuid() == 0:
        pytest.skip("root ignores file permissions")
    prepare, args, code, words = CASES[case]
    db = example / "example_project" / "db.sqlite3"
    tablemigrate(example, "run", "--noinput")
    prepare(example, db)
    before, backups = digest(db), sorted((db.parent / "backups").iterdir())
    proc = tablemigrate(example, *args, check=False)
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 or case == "unknown option", lines  # argparse prints its usage line first
    assert words in lines[-1], lines
    assert digest(db) == before and sorted((db.parent / "backups").iterdir()) == backups
    assert not (example / "pwned").exists()


def test_a_database_the_app_keeps_locked_exits_3_after_the_busy_timeout(example):  # noqa: F811
    db = example / "example_project" / "db.sqlite3"
    tablemigrate(example, "run", "--noinput")
    add_module(example, "up = ['CREATE TABLE later (x)']\ndown = ['DROP TABLE later']\n")
    app = subprocess.Popen([sys.executable, "-c", "import sqlite3, sys, time\n"
                            f"c = sqlite3.connect({str(db)!r}, isolation_level=None)\n"
                            "c.execute('BEGIN IMMEDIATE'); print('held', flush=True); time.sleep(20)"],
                           stdout=subprocess.PIPE, text=True)
    assert app.stdout.readline().strip() == "held"
    try:
        proc = tablemigrate(example, "run", "--noinput", check=False, EXAMPLE_BUSY_TIMEOUT="1")
        # It waits for the lock, as long as the project's busy timeout says: one second more of it makes the
        # run wait (at least half a second) longer; a run that gave up at once would not. (0 first: the imports.)
        timed = timed_commands(example, [["run", "--noinput"]], [0, 0.2, 1.2],
                               DJANGO_SETTINGS_MODULE="example_project.settings")
    finally:
        app.kill()
        app.wait()
    assert proc.returncode == 3 and "locked" in proc.stderr and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert {timed["run", t][0] for t in (0, 0.2, 1.2)} == {3}, timed
    assert timed["run", 1.2][1] - timed["run", 0.2][1] >= 0.5, timed
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'later'").fetchall() == []
    conn.close()
