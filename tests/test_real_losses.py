"""Confirm only real losses (issue 23, item 2): a module's `destructive` flag says what it *can* lose;
`run` and `revert` ask only about what this database *would* lose. A migration whose every table it can
lose rows from is certainly empty when it runs (empty now, or created earlier in the same run with
nothing written into it since) needs no confirmation; anything the data check cannot prove empty keeps
its flag. `run --dry-run` refuses what `run` refuses, with the same line, and a refused first run leaves
no file behind. Through the management command, in-process, on a database file in tmp_path."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest
from django.core.management import CommandError

from .test_edges_command import edge, modules, rows, tm  # noqa: F401 (the fixture)

CREATE = "0001_create_junk"
DROP = "0002_drop_junk"
# As `generate` writes them: a create whose `down` drops, a drop flagged destructive.
CREATE_JUNK = ("table = 'junk'\nup = ['CREATE TABLE \"junk\" (\"id\" integer NOT NULL PRIMARY KEY, \"v\" text)']\n"
               "down = ['DROP TABLE \"junk\"']\ndown_destructive = ['drops table junk and all its rows']\n")
DROP_JUNK = ("table = 'junk'\nup = ['DROP TABLE \"junk\"']\n"
             "down = ['CREATE TABLE \"junk\" (\"id\" integer NOT NULL PRIMARY KEY, \"v\" text)']\n"
             "destructive = ['drops table junk and all its rows']\n")


def refusal(*args: str) -> CommandError:
    with pytest.raises(CommandError) as info:
        tm(*args)
    return info.value


def left_in(db) -> list[str]:
    """The files next to the database, but the migrations directory."""
    return sorted(p.name for p in db.parent.iterdir() if p.name != "m")


def digest(db) -> str:
    return hashlib.sha256(db.read_bytes()).hexdigest()


def add_rows(db, n: int = 3) -> None:
    conn = sqlite3.connect(db)
    conn.executemany("INSERT INTO junk (v) VALUES (?)", [(f"row {i}",) for i in range(n)])
    conn.commit()
    conn.close()


# (a) a new environment applies a history that creates a table and later drops it ----------------------------

def test_a_new_database_applies_a_history_that_drops_a_table_it_created_without_confirmation(edge):
    modules(edge.parent / "m", **{CREATE: CREATE_JUNK, DROP: DROP_JUNK})
    out, _ = tm("run", "--noinput")  # no --allow-destructive
    assert f"Applied {CREATE}" in out and f"Applied {DROP}" in out
    assert rows(edge, "SELECT name FROM tablemigrate_history ORDER BY name") == [(CREATE,), (DROP,)]
    assert rows(edge, "SELECT name FROM sqlite_master WHERE name = 'junk'") == []


def test_an_empty_table_is_dropped_without_confirmation_and_dry_run_agrees(edge):
    modules(edge.parent / "m", **{CREATE: CREATE_JUNK})
    tm("run", "--noinput", verbosity=0)
    modules(edge.parent / "m", **{DROP: DROP_JUNK})
    out, _ = tm("run", "--noinput", "--dry-run")
    assert f"would apply {DROP}" in out
    out, _ = tm("run", "--noinput")
    assert f"Applied {DROP}" in out


# (b) the same history where the table holds rows: refused with the count, by run and by --dry-run ------------

def test_a_table_with_rows_is_refused_with_the_count_and_dry_run_refuses_with_the_same_line(edge):
    modules(edge.parent / "m", **{CREATE: CREATE_JUNK})
    tm("run", "--noinput", verbosity=0)
    add_rows(edge)
    modules(edge.parent / "m", **{DROP: DROP_JUNK})
    before, files = digest(edge), left_in(edge)
    dry = refusal("run", "--noinput", "--dry-run")
    real = refusal("run", "--noinput")
    assert real.returncode == dry.returncode == 1
    assert str(real) == str(dry)
    assert str(real).startswith("refusing destructive migrations without --allow-destructive; nothing was changed")
    assert f"{DROP}: drops table junk and all its rows" in str(real)
    assert f"{DROP}: dropping junk deletes 3 rows (found in the database)" in str(real)
    assert digest(edge) == before and left_in(edge) == files  # nothing changed, no backup taken
    assert rows(edge, "SELECT count(*) FROM junk") == [(3,)]
    tm("run", "--noinput", "--allow-destructive", verbosity=0)  # the way through stays
    assert rows(edge, "SELECT name FROM sqlite_master WHERE name = 'junk'") == []


# (c) rows written into the table earlier in the same run: a real possible loss --------------------------------

WRITERS = {
    "INSERT": "up = [\"INSERT INTO junk (v) VALUES ('kept?')\"]\n",
    "trigger": "up = ['CREATE TABLE log (x)', 'CREATE TRIGGER fill AFTER INSERT ON log BEGIN "
               "INSERT INTO junk (v) VALUES (new.x); END', 'INSERT INTO log VALUES (1)']\n",
}


@pytest.mark.parametrize("flagged", [True, False], ids=["flagged drop", "unflagged drop"])
@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_rows_written_earlier_in_the_run_make_the_drop_a_loss_and_a_refused_first_run_leaves_no_file(
        edge, writer, flagged):
    drop = DROP_JUNK if flagged else "up = ['DROP TABLE junk']\n"  # hand-written, never flagged
    modules(edge.parent / "m", **{CREATE: CREATE_JUNK, "0002_write": WRITERS[writer], "0003_drop": drop})
    dry = refusal("run", "--noinput", "--dry-run")
    real = refusal("run", "--noinput")
    assert real.returncode == dry.returncode == 1 and str(real) == str(dry)
    assert "0003_drop: dropping junk deletes the rows earlier steps of this run write into it" in str(real)
    assert ("0003_drop: drops table junk and all its rows" in str(real)) == flagged
    # (d) the refused first run leaves nothing: no database file, no 0-byte file, no lock file
    assert left_in(edge) == []


PYTHON_WRITES_JUNK = "def up(db):\n    db.execute(\"INSERT INTO junk (v) VALUES ('kept?')\")\n"


@pytest.mark.parametrize("dry", [False, True], ids=["run", "dry run"])
def test_rows_a_python_step_writes_before_the_drop_stop_the_run_when_it_gets_there(edge, dry):
    """What a Python step writes is known only when it has run: the drop's transaction finds junk holding
    rows (StillEmpty), and the run stops there, restored, having dropped nothing (a data step that writes
    other tables, as a carried Django data migration does, no longer costs every new database a
    --allow-destructive). The dry run, which runs the step on its copy, stops the same way."""
    modules(edge.parent / "m", **{CREATE: CREATE_JUNK, "0002_write": PYTHON_WRITES_JUNK, "0003_drop": DROP_JUNK})
    err = refusal("run", "--noinput", *(["--dry-run"] if dry else []))
    assert err.returncode == 1
    assert "0003_drop" in str(err) and "junk was empty when the data check ran and has rows now" in str(err)
    if not dry:
        assert "restored" in str(err)
        assert rows(edge, "SELECT name FROM sqlite_master WHERE name = 'junk'") == []  # back to before the run


def test_a_table_created_by_create_table_as_select_holds_rows(edge):
    modules(edge.parent / "m", **{
        "0001_src": "up = ['CREATE TABLE src (v)', \"INSERT INTO src VALUES ('a')\"]\n",
        "0002_copy": "up = ['CREATE TABLE junk AS SELECT v FROM src']\n",
        "0003_drop": "destructive = ['drops table junk']\nup = ['DROP TABLE junk']\n"})
    err = refusal("run", "--noinput")
    assert "0003_drop: dropping junk deletes the rows earlier steps of this run write into it" in str(err)
    assert left_in(edge) == []


# (d) a refused first run leaves no file; a confirmed one asks once --------------------------------------------

@pytest.fixture
def answers(monkeypatch):
    """What the human types at each prompt; records the prompts."""
    asked: list[str] = []
    replies: list[str] = []

    def fake_input(prompt: str = "") -> str:
        asked.append(prompt)
        return replies.pop(0)

    monkeypatch.setattr("builtins.input", fake_input)
    return asked, replies


def test_a_first_run_refused_at_the_prompt_leaves_no_file_and_one_confirmed_asks_once(edge, answers):
    asked, replies = answers
    modules(edge.parent / "m", **{CREATE: CREATE_JUNK, "0002_write": WRITERS["INSERT"], "0003_drop": DROP_JUNK})
    replies.append("no")
    err = refusal("run")
    assert err.returncode == 1 and "refusing destructive migrations" in str(err)
    assert len(asked) == 1 and "0003_drop: drops table junk and all its rows" in asked[0]
    assert left_in(edge) == []
    replies.append("yes")
    tm("run", verbosity=0)
    assert len(asked) == 2  # asked before the file was created, not again on the new file
    assert rows(edge, "SELECT name FROM tablemigrate_history ORDER BY name") == [(CREATE,), ("0002_write",),
                                                                                ("0003_drop",)]


# (e) revert ------------------------------------------------------------------------------------------------

def test_revert_of_a_create_whose_table_is_empty_needs_no_confirmation_and_with_rows_is_refused(edge):
    modules(edge.parent / "m", **{CREATE: CREATE_JUNK})
    tm("run", "--noinput", verbosity=0)
    add_rows(edge, 2)
    before = digest(edge)
    err = refusal("revert", "--noinput")
    assert err.returncode == 1
    assert f"{CREATE}: drops table junk and all its rows" in str(err)
    assert f"{CREATE}: dropping junk deletes 2 rows (found in the database)" in str(err)
    assert digest(edge) == before
    conn = sqlite3.connect(edge)
    conn.execute("DELETE FROM junk")
    conn.commit()
    conn.close()
    out, _ = tm("revert", "--noinput")
    assert f"Reverted {CREATE}" in out
    assert rows(edge, "SELECT name FROM sqlite_master WHERE name = 'junk'") == []
