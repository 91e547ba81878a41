"""Objects made by SQL in an owned app's Django migrations, through adoption (issue 22, item 9).

The fixture project tests/searchsite has one app of its own, `notes`, whose Django migration made, as
Wagtail's SQLite search backend does, an FTS5 virtual table that a model stands for
(`SeparateDatabaseAndState` + `RunSQL`), the triggers on notes_note that fill it, and a view that a
managed model stands for. The path: Django's `migrate` builds the database (the project before it
adopted tablemigrate), `tablemigrate baseline` adopts it, the app gives up its Django migrations; then
`generate --check` must be clean, `run` must build a new database with the virtual table, its triggers
and the view, and a later change of another model must be the only thing `generate` writes. Every
command runs through the copy's manage.py in a separate process.
"""

from __future__ import annotations

import shutil
import sqlite3
from functools import partial
from pathlib import Path

import pytest

from . import helpers
from .helpers import copy_fixture_site, fts5_compiled

SITE = Path(__file__).resolve().parent / "searchsite"


pytestmark = [pytest.mark.subprocess, pytest.mark.skipif(not fts5_compiled(), reason="this Python's sqlite3 is built without FTS5")]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return copy_fixture_site(SITE, tmp_path)


manage = partial(helpers.manage, prefix="SEARCHSITE", db="db.sqlite3")


def rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def objects(db: Path) -> set[tuple[str, str]]:
    return {(kind, name) for kind, name in rows(db, "SELECT type, name FROM sqlite_master WHERE name LIKE 'notes%'")}


def adopted(site: Path) -> str:
    """Django's `migrate` builds the database, one note is written, `baseline` adopts it and the app's
    Django migrations go (as the README says); returns baseline's output."""
    manage(site, "migrate", "-v0", SEARCHSITE_DJANGO_OWNS="1")
    rows(site / "db.sqlite3", "INSERT INTO notes_note (title, body) VALUES ('old', 'written before the adoption')")
    out = manage(site, "tablemigrate", "baseline", "--noinput").stdout
    shutil.rmtree(site / "notes" / "migrations")
    return out


SEARCH = "SELECT title FROM notes_noteindex WHERE notes_noteindex MATCH '{}' ORDER BY rowid"


def test_an_adopted_fts5_table_its_triggers_and_a_view_are_carried_into_the_history(site):
    live = site / "db.sqlite3"
    out = adopted(site)
    check = manage(site, "tablemigrate", "generate", "--check", "--noinput", check=False)
    assert (check.returncode, check.stdout.strip()) == (0, "No changes detected"), check.stdout  # not a CREATE TABLE
    assert "create virtual table notes_noteindex (made by SQL)" in out
    assert "create view notes_notestats (made by SQL)" in out
    assert "create trigger notes_note_fts_insert (made by SQL)" in out
    assert "Kept in this database but not in the modules" not in out  # nothing of the project's is left out
    assert manage(site, "tablemigrate", "run", "--noinput").returncode == 0  # nothing to apply, no fight
    assert rows(live, SEARCH.format("adoption")) == [("old",)]

    # A new database from the history: the virtual table (its shadow tables made by FTS5 itself), the
    # triggers that fill it and the view, all working.
    fresh = site / "fresh.sqlite3"
    manage(site, "tablemigrate", "run", "--noinput", db=fresh.name)
    assert objects(fresh) == objects(live)
    assert rows(fresh, "SELECT sql FROM sqlite_master WHERE name = 'notes_noteindex'")[0][0].startswith(
        "CREATE VIRTUAL TABLE")
    manage(site, "shell", "-c", "from notes.models import Note\n"
                                "Note.objects.create(title='new', body='full text search on a new database')",
           db=fresh.name)
    assert rows(fresh, SEARCH.format("search")) == [("new",)]
    assert rows(fresh, "SELECT size FROM notes_notestats") == [(34,)]
    assert "Drift" not in manage(site, "tablemigrate", "show", db=fresh.name).stdout
    assert "Drift" not in manage(site, "tablemigrate", "show").stdout

    # A change of another model: only that change is written, and it runs on both databases.
    models = site / "notes" / "models.py"
    models.write_text(models.read_text().replace(
        "    name = models.CharField(max_length=50)\n",
        "    name = models.CharField(max_length=50)\n    color = models.CharField(max_length=20, default='')\n"))
    before = set((site / "tablemigrations").iterdir())
    manage(site, "tablemigrate", "generate", "AddColor", "--noinput")
    new = sorted(p.name for p in set((site / "tablemigrations").iterdir()) - before)
    assert len(new) == 1 and new[0].endswith("_update_notes_tag.py"), new
    for db in (live, fresh):
        manage(site, "tablemigrate", "run", "--noinput", db=db.name)
        assert ("color",) in rows(db, "SELECT name FROM pragma_table_info('notes_tag')")
    assert manage(site, "tablemigrate", "generate", "--check", "--noinput").stdout.strip() == "No changes detected"
    rows(live, "UPDATE notes_note SET body = 'rewritten after the change'")
    assert rows(live, SEARCH.format("rewritten")) == [("old",)]


def test_baseline_dry_run_prints_the_sql_objects_and_writes_nothing(site):
    manage(site, "migrate", "-v0", SEARCHSITE_DJANGO_OWNS="1")
    out = manage(site, "tablemigrate", "baseline", "--dry-run", "--noinput").stdout.lower()
    assert "create virtual table notes_noteindex using fts5(title, body);" in out
    assert "create view notes_notestats as select" in out
    assert "create trigger notes_note_fts_insert after insert on notes_note" in out
    assert not (site / "tablemigrations").exists()
