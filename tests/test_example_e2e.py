"""The example project's scenario end to end, through the real manage.py in separate processes."""

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def example(tmp_path):
    shutil.copy(ROOT / "manage.py", tmp_path)
    shutil.copytree(ROOT / "example_project", tmp_path / "example_project",
                    ignore=shutil.ignore_patterns("*.sqlite3*", "backups", "__pycache__"))
    return tmp_path


def manage(cwd, *args, check=True):
    proc = subprocess.run([sys.executable, "manage.py", "tablemigrate", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120, env=_env(cwd))
    if check and proc.returncode != 0:
        raise AssertionError(f"{args}: rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def _env(cwd):
    import os
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXAMPLE_", "DJANGO_SETTINGS"))}
    env["PYTHONPATH"] = str(cwd)
    return env


def rows(db, sql):
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_change_a_model_generate_show_run_revert(example):
    db = example / "example_project" / "db.sqlite3"
    assert "Applied" in manage(example, "run", "--noinput").stdout
    conn = sqlite3.connect(db)
    conn.executescript("""
        INSERT INTO users_user VALUES (1, 'ann', 'a@x', '', 1, '2024-01-01');
        INSERT INTO posts_tag VALUES (1, 'news');
        INSERT INTO posts_post VALUES (1, 1, 'Hello', 'body', 1, '2024-01-01');
        INSERT INTO posts_post_tags VALUES (1, 1, 1);
        INSERT INTO chats_chat VALUES (1, 'general', '2024-01-01');
        INSERT INTO chats_message VALUES (1, 1, 1, 'hi', '2024-01-01');
    """)
    conn.close()
    models = example / "example_project" / "posts" / "models.py"
    models.write_text(models.read_text().replace(
        "    body = models.TextField()\n",
        "    body = models.TextField(null=True)\n    summary = models.CharField(max_length=200, default='n/a')\n"))
    out = manage(example, "generate", "AddSummary", "--noinput").stdout
    assert "update_posts_post.py" in out and "add column summary" in out
    assert manage(example, "generate", "--check", "--noinput").stdout.strip() == "No changes detected"
    show = manage(example, "show").stdout
    assert "[ ] " in show and "INSERT INTO \"new__posts_post\"" in show
    assert "Applied" in manage(example, "run", "--noinput").stdout
    assert rows(db, "SELECT id, title, body, summary FROM posts_post") == [(1, "Hello", "body", "n/a")]
    assert rows(db, "SELECT count(*) FROM posts_post_tags") == [(1,)]
    assert rows(db, "PRAGMA foreign_key_check") == []
    refused = manage(example, "revert", "--noinput", check=False)
    assert refused.returncode == 1 and "drops column posts_post.summary" in refused.stderr
    assert "Reverted" in manage(example, "revert", "--noinput", "--allow-destructive").stdout
    assert rows(db, "SELECT id, title, body FROM posts_post") == [(1, "Hello", "body")]


def test_four_runners_at_once_apply_each_migration_exactly_once(example):
    procs = [subprocess.Popen([sys.executable, "manage.py", "tablemigrate", "run", "--noinput"], cwd=example,
                              env=_env(example), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]
    assert all(rc == 0 for rc, _, _ in results), results
    db = example / "example_project" / "db.sqlite3"
    names = [r[0] for r in rows(db, "SELECT name FROM tablemigrate_history")]
    assert len(names) == len(set(names)) == 7
    assert sum(out.count("Applied") for _, out, _ in results) == 7


def test_bad_input_gets_one_line_and_an_exit_code(example):
    bad = example / "example_project" / "tablemigrations" / "99999999_999999_01_bad.py"
    bad.write_text("up = [\n")
    proc = manage(example, "run", "--noinput", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "99999999_999999_01_bad.py:1: syntax error" in proc.stderr
    assert not (example / "example_project" / "db.sqlite3").exists() or rows(
        example / "example_project" / "db.sqlite3", "SELECT count(*) FROM sqlite_master") == [(0,)]
    assert manage(example, "run", "--bogus", check=False).returncode == 2


def test_a_failed_run_logs_its_steps_and_prints_the_error_once(example):
    manage(example, "run", "--noinput")
    bad = example / "example_project" / "tablemigrations" / "99999999_999999_01_bad.py"
    db = example / "example_project" / "db.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO users_user VALUES (1, 'ann', 'a@x', '', 1, '2024-01-01')")
    conn.commit()
    conn.close()
    bad.write_text("up = ['CREATE TABLE extra (x)', 'UPDATE users_user SET display_name = 1', "
                   "'INSERT INTO users_user SELECT * FROM users_user']\n")  # fails on the real row only
    proc = manage(example, "run", "--noinput", check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert any(line.startswith("migration backup written to ") for line in lines), lines
    assert [line for line in lines if "failed at step" in line] == [lines[-1]]
    assert lines[-1].startswith("CommandError: migration 99999999_999999_01_bad (up) failed at step 3")
    assert "\r" not in proc.stderr  # not a terminal: no progress display
    assert rows(db, "SELECT count(*), display_name FROM users_user") == [(1, "")]
    assert rows(db, "SELECT name FROM sqlite_master WHERE name = 'extra'") == []
