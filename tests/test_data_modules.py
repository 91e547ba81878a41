"""Data modules as Django's RunPython (issue 25): `generate --empty` starts one; its steps
(`RunPythonWithModels`) get `(apps, schema_editor)` with the models as the tables are at that module,
write into the module's transaction, and are reversed by `down` (or refused without one).

The models are tests.sampleapp's (Author: name; Book: author, title); the history below makes them in
three steps, so that the data module in the middle sees another Author than the current one: its table
has a column `legacy` (dropped by the last module) and no `name` (added by it).
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from tablemigrate.errors import ConfigurationError, MigrationFailed
from tablemigrate.history.loader import load_migration, migration_files
from tablemigrate.history.status import status
from tablemigrate.run import runner
from tablemigrate.run.dryrun import dry_run

from .helpers import module

#: What the data steps saw, appended by the modules below (they import this test module).
SEEN: list[dict] = []

CREATE = """
table = 'sampleapp_author'
up = [
    'CREATE TABLE "sampleapp_author" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "legacy" varchar(20) NULL)',
    'CREATE TABLE "sampleapp_book" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "title" varchar(200) NOT NULL, '
    '"author_id" bigint NOT NULL REFERENCES "sampleapp_author" ("id") DEFERRABLE INITIALLY DEFERRED)',
    "INSERT INTO sampleapp_author (legacy) VALUES ('ann'), ('bob'), (NULL)",
    "INSERT INTO sampleapp_book (title, author_id) VALUES ('', 1), ('', 2), ('', 1), ('', 3)",
]
down = ['DROP TABLE "sampleapp_book"', 'DROP TABLE "sampleapp_author"']
"""

LATER = """
table = 'sampleapp_author'
up = ['ALTER TABLE "sampleapp_author" ADD COLUMN "name" varchar(100) NOT NULL DEFAULT \\'\\'',
      'ALTER TABLE "sampleapp_author" DROP COLUMN "legacy"']
down = ['ALTER TABLE "sampleapp_author" ADD COLUMN "legacy" varchar(20) NULL',
        'ALTER TABLE "sampleapp_author" DROP COLUMN "name"']
"""

#: A per-row key fill (each author its own key, by save()) and a copy between the two tables (each book
#: gets its author's key, by bulk_update), through the historical models; the reverse undoes both.
FILL = """
from tablemigrate.operations import RunPythonWithModels
from tests import test_data_modules as seen


def forwards(apps, schema_editor):
    Author, Book = apps.get_model('sampleapp', 'Author'), apps.get_model('sampleapp', 'Book')
    seen.SEEN.append({'author': sorted(f.name for f in Author._meta.get_fields() if f.concrete),
                      'editor': schema_editor.connection.alias})
    for author in Author.objects.order_by('pk'):
        author.legacy = f'key-{author.pk}-{author.legacy or "none"}'
        author.save(update_fields=['legacy'])
    books = list(Book.objects.select_related('author').order_by('pk'))
    for book in books:
        book.title = f'{book.author.legacy}/{book.pk}'
    Book.objects.bulk_update(books, ['title'], batch_size=2)
    FAIL


def backwards(apps, schema_editor):
    apps.get_model('sampleapp', 'Book').objects.update(title='')
    for author in apps.get_model('sampleapp', 'Author').objects.all():
        old = author.legacy.split('-', 2)[2]
        author.legacy = None if old == 'none' else old
        author.save()


up = [RunPythonWithModels(forwards)]
DOWN
"""


def fill(*, fails: bool = False, reversible: bool = True) -> str:
    text = FILL.replace("FAIL", "raise RuntimeError('the step failed after its writes')" if fails else "")
    return text.replace("DOWN", "down = [RunPythonWithModels(backwards)]" if reversible else "")


def rows(target) -> dict[str, list[tuple]]:
    conn = target.conn
    authors = [c[1] for c in conn.execute("PRAGMA table_info(sampleapp_author)")]
    key = "legacy" if "legacy" in authors else "name"
    return {"author": conn.execute(f"SELECT id, {key} FROM sampleapp_author ORDER BY id").fetchall(),
            "book": conn.execute("SELECT id, title, author_id FROM sampleapp_book ORDER BY id").fetchall()}


@pytest.fixture
def project(tmp_path):
    """A database file opened as `manage.py tablemigrate run` opens it: Django's connection of the alias
    `default` (here a file, in place of the tests' in-memory one while the test runs), whose raw
    connection the target is; and an empty modules directory."""
    from django.db import connections
    from django.db.backends.sqlite3.base import DatabaseWrapper
    from django.db.utils import ConnectionHandler

    from tablemigrate.history.status import Target
    from tablemigrate.project.build import raw, registered

    migrations, path = tmp_path / "tablemigrations", tmp_path / "app.sqlite3"
    migrations.mkdir()
    settings = ConnectionHandler().configure_settings(
        {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(path)}})["default"]
    with registered(DatabaseWrapper(settings, "default"), previous=connections["default"]) as wrapper:
        yield Target("default", raw(wrapper), path), migrations


@pytest.fixture(autouse=True)
def _seen():
    SEEN.clear()
    yield
    SEEN.clear()


def applied(target, d) -> list[str]:
    return [a.name for a in status(target.conn, d).applied]


FILLED = {
    "author": [(1, "key-1-ann"), (2, "key-2-bob"), (3, "key-3-none")],
    "book": [(1, "key-1-ann/1", 1), (2, "key-2-bob/2", 2), (3, "key-1-ann/3", 1), (4, "key-3-none/4", 3)],
}


def test_a_step_fills_each_row_its_own_key_and_copies_it_to_another_table_with_historical_models(project):
    target, d = project
    module(d, "0001_create", CREATE)
    module(d, "0002_fill", fill())
    runner.run(target, d, take_backup=False)
    assert rows(target) == FILLED
    assert applied(target, d) == ["0001_create", "0002_fill"]


def test_the_step_sees_the_models_as_the_history_has_them_at_its_module(project):
    target, d = project
    module(d, "0001_create", CREATE)
    module(d, "0002_fill", fill())
    module(d, "0003_later", LATER)
    runner.run(target, d, take_backup=False)
    # `name` is added by the later module (the current model has it, the step's does not); `legacy` is
    # dropped by it (the current model never had it, the step's has it as inspectdb reads the column).
    assert SEEN == [{"author": ["id", "legacy"], "editor": "default"}]  # the schema editor of the alias
    assert [c[1] for c in target.conn.execute("PRAGMA table_info(sampleapp_author)")] == ["id", "name"]
    assert target.conn.execute("SELECT title FROM sampleapp_book WHERE id = 4").fetchone() == ("key-3-none/4",)


def created(project, *then: tuple[str, str]) -> dict[str, list[tuple]]:
    """Run the module that makes the tables, write the modules `then` (name, text): the rows before them."""
    target, d = project
    module(d, "0001_create", CREATE)
    runner.run(target, d, take_backup=False)
    for name, text in then:
        module(d, name, text)
    return rows(target)


def test_revert_runs_the_reverse_and_run_applies_it_again(project):
    target, d = project
    before = created(project, ("0002_fill", fill()))
    runner.run(target, d, take_backup=False)
    runner.revert(target, d, take_backup=False)
    assert rows(target) == before and applied(target, d) == ["0001_create"]
    runner.run(target, d, take_backup=False)
    assert rows(target) == FILLED


def test_revert_of_a_step_without_reverse_is_refused_and_changes_nothing(project):
    target, d = project
    module(d, "0001_create", CREATE)
    module(d, "0002_fill", fill(reversible=False))
    runner.run(target, d, take_backup=False)
    with pytest.raises(ConfigurationError) as refused:
        runner.revert(target, d, take_backup=False)
    assert refused.value.exit_code == 2 and "\n" not in str(refused.value)
    assert "0002_fill has no `down`: it cannot be reverted" in str(refused.value)
    assert rows(target) == FILLED and applied(target, d) == ["0001_create", "0002_fill"]


def test_a_failing_step_rolls_back_the_whole_module_and_the_run_restores_the_backup(project):
    target, d = project
    before = created(project, ("0002_pre", "up = [\"UPDATE sampleapp_book SET title = 'touched'\"]\ndown = []\n"),
                     ("0003_fill", fill(fails=True)))
    with pytest.raises(MigrationFailed, match="0003_fill.*RuntimeError: the step failed after its writes"):
        runner.run(target, d)
    assert SEEN  # it ran, and wrote, before it failed
    assert rows(target) == before and applied(target, d) == ["0001_create"]


#: A data step that changes the schema through Django's schema editor: replays of the history (database A,
#: the rehearsal, drift, the test database) never run it, so every real database would differ from A.
SCHEMA_CHANGE = """
from django.db import models
from tablemigrate.operations import RunPythonWithModels


def forwards(apps, schema_editor):
    Author = apps.get_model('sampleapp', 'Author')
    field = models.IntegerField(null=True)
    field.set_attributes_from_name('sneaky')
    schema_editor.add_field(Author, field)


up = [RunPythonWithModels(forwards)]
"""


def columns(target) -> list[str]:
    return [c[1] for c in target.conn.execute("PRAGMA table_info(sampleapp_author)")]


@pytest.mark.parametrize("atomic", ["", "atomic = False\n"])
def test_a_data_step_that_changes_the_schema_fails_its_module_and_the_backup_is_restored(project, atomic):
    """(review of issue 25) Found by SQLite's schema cookie and rows, whatever the step calls."""
    target, d = project
    module(d, "0001_create", CREATE)
    runner.run(target, d, take_backup=False)
    module(d, "0002_data", atomic + SCHEMA_CHANGE)
    with pytest.raises(MigrationFailed, match=r"^migration 0002_data \(up\) step 1 RunPythonWithModels\('forwards'\) "
                       r"changed the database's schema \(table sampleapp_author\): a Python step may change data "
                       "only") as failed:
        runner.run(target, d)
    assert failed.value.exit_code == 1 and "\n" not in str(failed.value)
    assert "sneaky" not in columns(target) and applied(target, d) == ["0001_create"]


def test_a_function_step_that_makes_an_index_fails_but_a_helper_table_dropped_again_or_a_temp_one_does_not(project):
    target, d = project
    module(d, "0001_create", CREATE)
    module(d, "0002_helper", "def up(db):\n"
                             "    db.execute('CREATE TABLE helper AS SELECT id FROM sampleapp_author')\n"
                             "    db.execute('CREATE TEMP TABLE scratch (x)')\n"
                             "    db.execute('DROP TABLE helper')\n")
    runner.run(target, d, take_backup=False)
    module(d, "0003_index", "def up(db):\n    db.execute('CREATE INDEX sneaky ON sampleapp_author (legacy)')\n")
    with pytest.raises(MigrationFailed, match=r"0003_index \(up\) step 1 RunPython\('up'\) changed the "
                       r"database's schema \(index sneaky\)"):
        runner.run(target, d, take_backup=False)
    assert target.conn.execute("SELECT name FROM sqlite_master WHERE name IN ('sneaky', 'helper')").fetchall() == []
    assert applied(target, d) == ["0001_create", "0002_helper"]


def test_a_step_asking_for_a_model_whose_table_a_later_module_makes_by_a_rename_is_told_why(project):
    """(review of issue 25) Django's RunPython would get the model with its old db_table; here the table
    under its old name cannot be told (the step runs without the later modules), so the model is not in
    `apps`, and the LookupError names it and says why, on one line."""
    target, d = project
    module(d, "0001_old", "up = ['CREATE TABLE \"old_author\" (\"id\" integer NOT NULL PRIMARY KEY, \"name\" text)']\n")
    module(d, "0002_read", "from tablemigrate.operations import RunPythonWithModels\n\n\n"
                           "def forwards(apps, schema_editor):\n    apps.get_model('sampleapp.Author')\n\n\n"
                           "up = [RunPythonWithModels(forwards)]\n")
    module(d, "0003_rename", "up = ['ALTER TABLE \"old_author\" RENAME TO \"sampleapp_author\"']\n")
    with pytest.raises(MigrationFailed, match=r"^migration 0002_read \(up\) failed at step 1 RunPythonWithModels"
                       r"\('forwards'\): LookupError: model sampleapp.Author is not in this step's apps: its table "
                       r"sampleapp_author does not exist at this point of the history \(a later module creates it, "
                       r"or renames another table to it") as failed:
        runner.run(target, d, take_backup=False)
    assert "\n" not in str(failed.value) and applied(target, d) == ["0001_old"]


def test_generate_empty_starts_a_data_module_after_the_latest_that_run_and_revert_take(project, capsys):
    target, _ = project
    d = target.path.parent / "m"
    with override_settings(TABLEMIGRATE_MIGRATIONS_DIR=d):
        call_command("tablemigrate", "generate", "--noinput", verbosity=0)
        first = [p.stem for p in migration_files(d)]
        call_command("tablemigrate", "generate", "--empty", "fill_keys", "--table", "sampleapp_book", "--noinput")
        names = [p.stem for p in migration_files(d)]
        assert names[:-1] == first and names[-1] > first[-1] and names[-1].endswith("_data_sampleapp_book")
        assert "Created" in capsys.readouterr().out
        call_command("tablemigrate", "generate", "--check", "--noinput", verbosity=0)  # exit 0: nothing to flag
        call_command("tablemigrate", "generate", "--noinput")
        assert "No changes detected" in capsys.readouterr().out and [p.stem for p in migration_files(d)] == names
        call_command("tablemigrate", "generate", "--empty", "--noinput", "", "sampleapp", verbosity=0)  # for an app
        assert len(migration_files(d)) == len(names) + 1
    from tablemigrate.operations import RunPythonWithModels

    data = load_migration(d / f"{names[-1]}.py")
    assert data.label == "fill_keys" and data.table is None and data.before is None
    assert [type(s) for s in data.up + data.down] == [RunPythonWithModels, RunPythonWithModels]
    text = (d / f"{names[-1]}.py").read_text()
    assert "def forwards(apps, schema_editor):" in text and "apps.get_model('sampleapp', 'Book')" in text
    runner.run(target, d)
    assert applied(target, d)[-2] == names[-1]
    runner.revert(target, d, to=names[-1], take_backup=False)
    runner.revert(target, d, take_backup=False)
    assert applied(target, d) == first


@pytest.mark.parametrize("args, message", [
    (["--empty", "x"], "needs an app label or --table"),
    (["--empty", "x", "sampleapp", "--table", "sampleapp_book"], "needs an app label or --table"),
    (["--empty", "x", "--table", "nope"], "--table nope: no model of the apps tablemigrate owns"),
    (["--empty", "x", "auth"], "auth: not an app whose tables tablemigrate makes"),
    (["--empty", "x", "sampleapp", "--check"], "takes neither --check nor --rename"),
    (["x", "sampleapp"], "only with --empty"),
])
def test_generate_empty_refuses_what_it_cannot_write_with_exit_2_and_writes_nothing(tmp_path, args, message):
    d = tmp_path / "m"
    with override_settings(TABLEMIGRATE_MIGRATIONS_DIR=d):
        call_command("tablemigrate", "generate", "--noinput", verbosity=0)
        before = sorted(p.name for p in d.iterdir())
        with pytest.raises(CommandError, match=message) as refused:
            call_command("tablemigrate", "generate", *args, "--noinput", verbosity=0)
        assert refused.value.returncode == 2 and sorted(p.name for p in d.iterdir()) == before


def test_generate_empty_without_a_history_refuses(tmp_path):
    with override_settings(TABLEMIGRATE_MIGRATIONS_DIR=tmp_path / "m"):
        with pytest.raises(CommandError, match="no migration module in .* yet") as refused:
            call_command("tablemigrate", "generate", "--empty", "x", "sampleapp", "--noinput", verbosity=0)
    assert refused.value.returncode == 2 and not (tmp_path / "m").exists()


def test_a_dry_run_runs_the_step_on_its_copy_only(project):
    target, d = project
    before = created(project, ("0002_fill", fill()))
    dry_run(target, d)
    assert SEEN and rows(target) == before and applied(target, d) == ["0001_create"]


def test_the_models_follow_the_tables_that_exist_their_columns_and_types():
    from tablemigrate.project.build import private_database, raw
    from tablemigrate.project.historical import models_as_tables

    with private_database() as wrapper:
        raw(wrapper).execute('CREATE TABLE "sampleapp_author" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, '
                             '"Old Name" varchar(20) NULL)')
        apps = models_as_tables(wrapper)
        author = apps.get_model("sampleapp", "Author")
        fields = {f.name: f for f in author._meta.get_fields()}
        assert set(fields) == {"id", "old_name"}  # `name` comes later; the dropped column as inspectdb names it
        assert (type(fields["old_name"]).__name__, fields["old_name"].column, fields["old_name"].max_length,
                fields["old_name"].null) == ("CharField", "Old Name", 20, True)
        for later in ("Book", "BookProxy"):  # no table yet: not there, as in Django's historical apps
            with pytest.raises(LookupError):
                apps.get_model("sampleapp", later)
        raw(wrapper).execute('CREATE TABLE "sampleapp_book" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, '
                             '"title" integer NOT NULL, "author_id" bigint NOT NULL)')
        book = models_as_tables(wrapper).get_model("sampleapp", "Book")
        assert type(book._meta.get_field("title")).__name__ == "IntegerField"  # the column's type, not the model's
        assert book._meta.get_field("author").related_model._meta.label == "sampleapp.Author"
