"""Adopting every further database (issue 23, item 1).

The team's path, in separate processes through the fixture project tests/searchsite (its own app
`notes`, whose Django migrations made an FTS5 table, its triggers and a view): Django's `migrate`
builds the developer's database and production's (and a teammate's older copy, behind), each with its
own rows; `baseline` on the developer's writes the first modules; the migrations folder goes. Then
`baseline` on every other database adopts it from those modules, or refuses with the difference
named (exit 2, nothing changed), or with the steps that bring a database that is behind to the
adoption point; `run` then applies only the later modules, everywhere alike.
"""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from pathlib import Path

import pytest

from tablemigrate.history.loader import load_migration, migration_files
from tests.helpers import fts5_compiled
from tests.test_sql_made_objects import SITE, manage, rows

pytestmark = [pytest.mark.subprocess, pytest.mark.skipif(not fts5_compiled(), reason="this Python's sqlite3 is built without FTS5")]

OWNS = {"SEARCHSITE_DJANGO_OWNS": "1"}  # the project before it adopted tablemigrate

PRIORITY = '''from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("notes", "0001_initial")]
    operations = [migrations.AddField("tag", "priority", models.IntegerField(default=0))]
'''

# Another developer's branch, applied to one database only: it is ahead of the adoption point.
COLOR = '''from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("notes", "0002_tag_priority")]
    operations = [migrations.AddField("tag", "color", models.CharField(max_length=20, default=""))]
'''

NOTES = "SELECT title, body FROM notes_note ORDER BY id"
SEARCH = "SELECT title FROM notes_noteindex WHERE notes_noteindex MATCH '{}' ORDER BY rowid"


def write(db: Path, *titles: str) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        for title in titles:
            conn.execute("INSERT INTO notes_note (title, body) VALUES (?, ?)", (title, f"{title} searchable text"))
            conn.execute("INSERT INTO notes_tag (name, priority) VALUES (?, 1)", (title,))
    finally:
        conn.close()


def digest(db: Path) -> str:
    return hashlib.sha256(db.read_bytes()).hexdigest()


def schema(db: Path) -> list[tuple]:
    """Every object's type, name and stored SQL, tablemigrate's own tables left out."""
    return rows(db, "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'tablemigrate%' "
                    "ORDER BY name")


def refused(site: Path, db: Path) -> str:
    """`baseline` on `db`: exit 2, the database unchanged (byte for byte); returns the one error line."""
    before = digest(db)
    proc = manage(site, "tablemigrate", "baseline", "--noinput", db=db.name, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert digest(db) == before and history(db) == []
    (line,) = proc.stderr.strip().splitlines()
    return line


def history(db: Path) -> list[str]:
    if not rows(db, "SELECT 1 FROM sqlite_master WHERE name = 'tablemigrate_history'"):
        return []
    return [name for (name,) in rows(db, "SELECT name FROM tablemigrate_history ORDER BY id")]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`site`: the project after the adoption on the developer's database (db.sqlite3), its migrations
    folder deleted, with databases Django's `migrate` built before that: prod (the same migrations,
    its own rows), behind (a teammate's copy without notes.0002), ahead (with a notes.0003 that was
    never merged). `old`: the project as it was before the migrations folder went."""
    base = tmp_path_factory.mktemp("adopt")
    site = base / "site"
    shutil.copytree(SITE, site, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3*", "tablemigrations"))
    (site / "notes" / "migrations" / "0002_tag_priority.py").write_text(PRIORITY)
    models = site / "notes" / "models.py"
    models.write_text(models.read_text().replace(
        "    name = models.CharField(max_length=50)\n",
        "    name = models.CharField(max_length=50)\n    priority = models.IntegerField(default=0)\n"))
    for db in ("db.sqlite3", "prod.sqlite3"):
        manage(site, "migrate", "-v0", db=db, **OWNS)
    write(site / "db.sqlite3", "dev")
    write(site / "prod.sqlite3", "first in production", "second in production")
    manage(site, "migrate", "notes", "0001", "-v0", db="behind.sqlite3", **OWNS)
    rows(site / "behind.sqlite3", "INSERT INTO notes_note (title, body) VALUES ('teammate', 'an older copy')")
    manage(site, "tablemigrate", "baseline", "--noinput")
    shutil.copytree(site, base / "old", ignore=shutil.ignore_patterns("__pycache__", "tablemigrations"))
    (base / "old" / "notes" / "migrations" / "0003_tag_color.py").write_text(COLOR)
    manage(base / "old", "migrate", "-v0", db="ahead.sqlite3", **OWNS)
    shutil.copy(base / "old" / "ahead.sqlite3", site / "ahead.sqlite3")
    shutil.rmtree(site / "notes" / "migrations")
    return base


@pytest.fixture
def project(prepared: Path, tmp_path: Path) -> Path:
    shutil.copytree(prepared, tmp_path / "p", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path / "p"


def test_baseline_records_the_adoption_point_in_its_last_module(project):
    site = project / "site"
    modules = [load_migration(p) for p in migration_files(site / "tablemigrations")]
    assert [m.adoption_point for m in modules[:-1]] == [None] * (len(modules) - 1)
    assert modules[-1].adoption_point == (("notes", "0001_initial"), ("notes", "0002_tag_priority"))
    assert history(site / "db.sqlite3") == [m.name for m in modules]


def test_a_second_database_is_adopted_and_then_upgraded_like_the_first(project):
    site = project / "site"
    dev, prod = site / "db.sqlite3", site / "prod.sqlite3"
    modules = [p.stem for p in migration_files(site / "tablemigrations")]

    fight = manage(site, "tablemigrate", "run", "--noinput", db=prod.name, check=False)
    assert fight.returncode == 2, fight.stderr
    assert "adopt it with `manage.py tablemigrate baseline`, which checks that they are exactly what the modules " \
           f"up to the adoption point ({modules[-1]}) build" in fight.stderr
    assert history(prod) == []

    dry = manage(site, "tablemigrate", "baseline", "--dry-run", "--noinput", db=prod.name)
    assert f"baseline would record these {len(modules)} as applied" in dry.stdout and history(prod) == []

    adopted = manage(site, "tablemigrate", "baseline", "--noinput", db=prod.name)
    assert f"Adopted: the tables are what the modules up to the adoption point ({modules[-1]}) build" in adopted.stdout
    assert history(prod) == modules
    assert sorted(p.stem for p in migration_files(site / "tablemigrations")) == modules  # nothing written
    assert manage(site, "tablemigrate", "generate", "--check", "--noinput",
                  db=prod.name).stdout.strip() == "No changes detected"
    shown = manage(site, "tablemigrate", "show", db=prod.name).stdout
    assert "Drift" not in shown and "[ ]" not in shown and shown.count("[X]") == len(modules), shown

    again = manage(site, "tablemigrate", "baseline", "--noinput", db=prod.name)
    assert "already has tablemigrate history" in again.stdout and history(prod) == modules

    # A model change made on the developer's machine: `run` applies it to both databases alike.
    models = site / "notes" / "models.py"
    models.write_text(models.read_text().replace(
        "    body = models.TextField()\n\n\nclass NoteIndex",
        "    body = models.TextField()\n    pinned = models.BooleanField(default=False)\n\n\nclass NoteIndex"))
    manage(site, "tablemigrate", "generate", "Pinned", "--noinput")
    new = [p.stem for p in migration_files(site / "tablemigrations")][len(modules):]
    assert len(new) == 1 and new[0].endswith("_update_notes_note"), new
    for db in (dev, prod):
        out = manage(site, "tablemigrate", "run", "--noinput", db=db.name).stdout
        assert f"Applied {new[0]}" in out and out.count("Applied ") == 1, out
        assert history(db) == modules + new
    assert schema(prod) == schema(dev)
    assert ("pinned",) in rows(prod, "SELECT name FROM pragma_table_info('notes_note')")
    assert rows(dev, NOTES) == [("dev", "dev searchable text")]
    assert rows(prod, NOTES) == [("first in production", "first in production searchable text"),
                                 ("second in production", "second in production searchable text")]
    assert rows(prod, SEARCH.format("second")) == [("second in production",)]  # its index came along
    assert manage(site, "tablemigrate", "generate", "--check", "--noinput").stdout.strip() == "No changes detected"


def test_a_column_changed_by_hand_or_a_database_ahead_is_refused_with_the_difference(project):
    site = project / "site"
    prod = site / "prod.sqlite3"
    conn = sqlite3.connect(prod, isolation_level=None)
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'notes_tag'").fetchone()
    conn.execute("PRAGMA writable_schema = ON")  # varchar(50) -> varchar(80): a hand edit, rows untouched
    conn.execute("UPDATE sqlite_master SET sql = ? WHERE name = 'notes_tag'", (sql.replace("(50)", "(80)"),))
    conn.close()
    error = refused(site, prod)
    assert "cannot be adopted; nothing was changed" in error
    assert "table notes_tag: alter column name: varchar(50) → varchar(80)" in error

    error = refused(site, site / "ahead.sqlite3")
    assert "table notes_tag: add column color" in error
    assert "Django migrations applied here and not at the adoption point: notes.0003_tag_color" in error


def test_a_database_behind_the_adoption_point_gets_the_steps_that_bring_it_there(project):
    site, old = project / "site", project / "old"
    behind = site / "behind.sqlite3"
    error = refused(site, behind)
    assert "behind the adoption point" in error and "it lacks the Django migrations notes.0002_tag_priority" in error
    assert "`manage.py migrate notes 0002_tag_priority`" in error

    # The steps, taken: the older project (migrations still there, tablemigrate not owning notes).
    shutil.move(behind, old / behind.name)
    manage(old, "migrate", "notes", "0002_tag_priority", "-v0", db=behind.name, **OWNS)
    shutil.move(old / behind.name, behind)
    manage(site, "tablemigrate", "baseline", "--noinput", db=behind.name)
    assert history(behind) == [p.stem for p in migration_files(site / "tablemigrations")]
    assert rows(behind, "SELECT title FROM notes_note") == [("teammate",)]


def test_a_history_baselined_before_the_point_was_recorded_compares_the_tables_alone(project):
    site = project / "site"
    last = migration_files(site / "tablemigrations")[-1]
    text = last.read_text()
    if "# The adoption point" in text:  # as baseline wrote it before it recorded the point
        start = text.index("# The adoption point")
        last.write_text(text[:start] + text[text.index("]\n", start) + 2:])
    assert getattr(load_migration(last), "adoption_point", None) is None

    assert "table notes_tag: drop column priority" in refused(site, site / "behind.sqlite3")
    manage(site, "tablemigrate", "baseline", "--noinput", db="prod.sqlite3")
    assert history(site / "prod.sqlite3") == [p.stem for p in migration_files(site / "tablemigrations")]


def test_an_empty_database_is_not_adopted_run_builds_it(project):
    site = project / "site"
    empty = site / "empty.sqlite3"
    sqlite3.connect(empty).execute("PRAGMA user_version = 1").connection.close()
    out = manage(site, "tablemigrate", "baseline", "--noinput", db=empty.name)
    assert "none of the tables the migration modules make: nothing to adopt" in out.stdout
    assert history(empty) == []
    manage(site, "tablemigrate", "run", "--noinput", db=empty.name)
    assert [r[:3] for r in schema(empty) if r[1].startswith("notes")] == \
        [r[:3] for r in schema(site / "db.sqlite3") if r[1].startswith("notes")]


def test_modules_generate_wrote_have_no_adoption_point_and_baseline_says_what_to_do():
    from tablemigrate.errors import ConfigurationError
    from tablemigrate.run.adopt import adoption_point

    example = Path(__file__).resolve().parent.parent / "example_project" / "tablemigrations"  # label 'Initial'
    with pytest.raises(ConfigurationError, match="do not start with modules `baseline` wrote .*if `generate` wrote "
                                                 "them for this database, delete them and schema.sql"):
        adoption_point(example)


def test_differences_name_each_object_the_modules_make_and_leave_the_others_alone():
    from tablemigrate.run.adopt import differences
    from tablemigrate.sqlite.introspect import introspect

    def built(*statements: str):
        conn = sqlite3.connect(":memory:")
        for sql in statements:
            conn.execute(sql)
        return introspect(conn)

    note = "CREATE TABLE note (id integer PRIMARY KEY, body text NOT NULL)"
    view = "CREATE VIEW sizes AS SELECT id, length(body) AS size FROM note"
    trigger = "CREATE TRIGGER stamp AFTER INSERT ON note BEGIN SELECT 1; END"
    expected = built(note, "CREATE TABLE tag (id integer PRIMARY KEY)", view, trigger)
    assert differences(expected, built(note, "CREATE TABLE tag (id integer PRIMARY KEY)", view, trigger,
                                       "CREATE TABLE legacy (x)", "CREATE TRIGGER kept AFTER DELETE ON note BEGIN "
                                       "SELECT 2; END"), owned={"note", "tag"}) == []  # not the modules': left alone
    live = built("CREATE TABLE note (id integer PRIMARY KEY, body text)", "CREATE TABLE extra (id integer)",
                 "CREATE VIEW sizes AS SELECT id FROM note")
    assert differences(expected, live, owned={"note", "tag", "extra"}) == [
        "table note: alter column body: NOT NULL dropped",
        "table extra is here, but the modules do not make it",
        "table tag is missing (the modules make it)",
        "view sizes differs from the one the modules make",
        "trigger stamp is missing (the modules make it)",
    ]
