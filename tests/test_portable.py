"""Windows (issue 23): no command may need a POSIX-only module or name. The commands run in processes
where those are gone (tests/windowslike.py): the example project's whole cycle, and the runner lock
still refusing a second holder."""

import fcntl
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import copy_example_project

ROOT = Path(__file__).resolve().parent.parent
LAUNCHER = Path(__file__).resolve().parent / "windowslike.py"


@pytest.fixture
def example(tmp_path):
    return copy_example_project(tmp_path)


def windowslike(project: Path, *args: str, **settings: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXAMPLE_", "DJANGO_SETTINGS"))}
    env.update(settings)
    env["PYTHONPATH"] = os.pathsep.join([str(project), str(ROOT)])  # the tablemigrate under test
    return subprocess.run([sys.executable, str(LAUNCHER), str(project), "tablemigrate", *args],
                          capture_output=True, text=True, timeout=120, env=env)


def ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.subprocess
def test_every_command_runs_without_posix_only_modules(example):
    db = example / "example_project" / "db.sqlite3"
    assert "Applied" in ok(windowslike(example, "run", "--noinput"))
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO posts_tag VALUES (1, 'news')")
    conn.commit()
    conn.close()
    models = example / "example_project" / "posts" / "models.py"
    text = models.read_text()
    assert "class Tag(models.Model):" in text
    models.write_text(text.replace("class Tag(models.Model):\n",
                                   "class Tag(models.Model):\n    colour = models.CharField(max_length=20, default='red')\n"))
    assert windowslike(example, "generate", "--check").returncode == 1
    ok(windowslike(example, "generate"))  # the cache (no user id here) is written and read
    ok(windowslike(example, "generate", "--check"))
    assert "colour" in ok(windowslike(example, "show"))
    ok(windowslike(example, "snapshot", "--name", "before"))
    assert "Applied" in ok(windowslike(example, "run", "--noinput"))
    assert sqlite3.connect(db).execute("SELECT id, name, colour FROM posts_tag").fetchall() == [(1, "news", "red")]
    ok(windowslike(example, "revert", "--noinput", "--allow-destructive"))
    ok(windowslike(example, "restore", "--name", "before", "--noinput"))
    ok(windowslike(example, "snapshots"))
    ok(windowslike(example, "inspect"))
    ok(windowslike(example, "stats"))
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.subprocess
def test_the_runner_lock_still_refuses_a_second_holder(example):
    lock = example / "example_project" / "db.sqlite3.tablemigrate.lock"
    fd = os.open(lock, os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what the stand-in msvcrt.locking takes too
        proc = windowslike(example, "run", "--noinput", EXAMPLE_BUSY_TIMEOUT="0.2")
    finally:
        os.close(fd)
    assert proc.returncode == 3, proc.stderr
    assert "holds the lock" in proc.stderr
    ok(windowslike(example, "run", "--noinput"))  # released: the next run takes it


def test_the_cache_is_private_without_user_ids(monkeypatch, tmp_path):
    from tablemigrate.sqlite import cache

    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    monkeypatch.delattr(os, "getuid")
    file = cache.path(tmp_path / "project", ".pickle")
    assert file.parent == tmp_path / "tablemigrate-cache"
    file.parent.mkdir()
    assert cache.is_private(file)  # in the user's own temporary directory
    assert not cache.is_private(tmp_path / "elsewhere" / "x.pickle")
