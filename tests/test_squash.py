"""Issue 25: `squash`, a checkpoint of the first modules (as Django's `squashmigrations`).

A history of several modules (generated ones, and a hand-written view and trigger) becomes one checkpoint
module; a new database built from it equals one built from the old history; a database that applied every
replaced module records the checkpoint in their place and applies nothing; one behind the checkpoint is
refused, nothing changed; the modules after the checkpoint keep applying; `generate` finds nothing to do.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from datetime import datetime, timezone

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings

from tablemigrate.errors import ConfigurationError, HistoryMismatch, MigrationFileError
from tablemigrate.generate.pipeline import generate
from tablemigrate.generate.squash import squash
from tablemigrate.history import applied as history
from tablemigrate.history.loader import load_migration, load_source, migration_files
from tablemigrate.history.status import Target, status
from tablemigrate.project.build import private_database, raw
from tablemigrate.run import runner
from tablemigrate.run.drift import drift
from tablemigrate.sqlite.introspect import introspect

from .helpers import AutoValue, fts5_compiled, module
from .modelgen import FieldSpec, ProjectSpec, TableSpec, build_models

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)

VIEW = '''up = [
    'CREATE VIEW "blog_titles" AS SELECT "title" FROM "blog_post"',
    'CREATE TRIGGER "blog_author_upper" AFTER INSERT ON "blog_author" BEGIN '
    'UPDATE "blog_author" SET "name" = upper("name") WHERE "id" = NEW."id"; END',
    'PRAGMA user_version = 7',
]
down = ['DROP TRIGGER "blog_author_upper"', 'DROP VIEW "blog_titles"', 'PRAGMA user_version = 0']
'''


def spec(*extra: str, other: bool = False) -> ProjectSpec:
    s = ProjectSpec()
    s.tables["Author"] = TableSpec("Author", "blog_author", [FieldSpec("name", "char")])
    s.tables["Post"] = TableSpec("Post", "blog_post", [FieldSpec("author", "fk", target="Author"),
                                                      FieldSpec("title", "char", index=True)]
                                 + [FieldSpec(name, "text", null=True) for name in extra])
    if other:
        s.tables["Tag"] = TableSpec("Tag", "blog_tag", [FieldSpec("label", "char", unique=True)])
    return s


def gen(d, s: ProjectSpec, minute: int) -> list[str]:
    result = generate(d, build_models(s), questioner=AutoValue(), now=NOW.replace(minute=minute))
    return [m.name for m in result.modules]


@pytest.fixture
def history_dir(tmp_path):
    """Five modules: two tables, a column added, a hand-written view, trigger and user_version, a third
    table; and the models they end at."""
    d = tmp_path / "tablemigrations"
    gen(d, spec(), 1)
    gen(d, spec("body"), 2)
    module(d, "20260501_120300_01_titles_view", VIEW)
    gen(d, spec("body"), 4)  # schema.sql for the hand-written module
    gen(d, spec("body", other=True), 5)
    assert len(migration_files(d)) == 5
    return d, spec("body", other=True)


@pytest.fixture
def fresh(tmp_path):
    """Opens a database file of tmp_path (by name) as tablemigrate opens it; all closed at the end."""
    with contextlib.ExitStack() as stack:
        def opened(name: str) -> Target:
            path = tmp_path / name
            return Target("default", raw(stack.enter_context(private_database(str(path)))), path)
        yield opened


def run_first(target: Target, d, n: int) -> None:
    """Apply the first `n` modules of `d` to `target` (as `run` does, recorded), from a copy of them."""
    part = d.parent / f"first{n}"
    part.mkdir()
    for p in migration_files(d)[:n]:
        shutil.copy(p, part)
    assert len(runner.run(target, part, take_backup=False)) == n


def schema_of(target: Target) -> tuple[str, int]:
    return introspect(target.conn).fingerprint(), target.conn.execute("PRAGMA user_version").fetchone()[0]


def names_recorded(target: Target) -> list[str]:
    return [a.name for a in history.applied(target.conn)]


def test_a_new_database_from_the_checkpoint_equals_one_from_the_old_history(history_dir, tmp_path, fresh):
    d, _models = history_dir
    old = tmp_path / "old"
    shutil.copytree(d, old)
    before = fresh("before.sqlite3")
    assert len(runner.run(before, old, take_backup=False)) == 5
    done = squash(d, now=NOW)
    files = migration_files(d)
    assert [p.stem for p in files] == [done.name] == ["20260501_120500_01_checkpoint"]
    # BASE: no squash module (ModuleNotFoundError)
    assert sorted(p.name for p in done.archive.iterdir()) == sorted(p.name for p in migration_files(old))
    after = fresh("after.sqlite3")
    applied = runner.run(after, d, take_backup=False)
    assert [m.name for m in applied] == [done.name]  # one module
    assert schema_of(after) == schema_of(before)
    view = after.conn.execute("SELECT sql FROM sqlite_master WHERE name = 'blog_titles'").fetchone()
    assert view is not None
    checkpoint = load_migration(files[0])
    assert checkpoint.module_format == 4 and checkpoint.down is None
    assert [r.name for r in checkpoint.replaces] == [p.stem for p in migration_files(old)]


def test_an_up_to_date_database_records_the_checkpoint_and_applies_nothing(history_dir, tmp_path, fresh):
    d, _models = history_dir
    target = fresh("app.sqlite3")
    runner.run(target, d, take_backup=False)
    first_applied_at = history.applied(target.conn)[0].applied_at
    schema = schema_of(target)
    done = squash(d, now=NOW)
    st = status(target.conn, d)
    assert st.pending == [] and st.checkpoint is not None and [a.name for a in st.applied] == [done.name]
    # BASE: the replaced modules are "missing" and `run` refuses (HistoryMismatch)
    assert drift(target, d) == []  # the applied history is the checkpoint's
    assert runner.run(target, d, take_backup=False) == []
    assert names_recorded(target) == [done.name]  # in their place
    assert schema_of(target) == schema
    assert history.applied(target.conn)[0].checksum == load_migration(migration_files(d)[0]).checksum
    assert first_applied_at  # the row kept its place (the first replaced one's)
    assert runner.run(target, d, take_backup=False) == []
    assert status(target.conn, d).checkpoint is None


def test_a_database_behind_the_checkpoint_is_refused_nothing_changed(history_dir, tmp_path, fresh):
    d, _models = history_dir
    target = fresh("app.sqlite3")
    run_first(target, d, 2)
    recorded = names_recorded(target)
    done = squash(d, now=NOW)
    with pytest.raises(HistoryMismatch, match=f"applied 2 of the 5 migrations checkpoint {done.name} replaces, but "
                                              "not 20260501_120200_01_update_blog_post and 2 more.*check out the commit"):
        runner.run(target, d, take_backup=False)
    assert names_recorded(target) == recorded


def test_a_database_that_applied_another_version_of_a_replaced_module_is_refused(history_dir, tmp_path, fresh):
    d, _models = history_dir
    target = fresh("app.sqlite3")
    runner.run(target, d, take_backup=False)
    edited = migration_files(d)[1].stem
    target.conn.execute("UPDATE tablemigrate_history SET checksum = ? WHERE name = ?", ("0" * 64, edited))
    squash(d, now=NOW)
    with pytest.raises(HistoryMismatch, match=f"applied another version of {edited} than the one checkpoint"):
        runner.run(target, d, take_backup=False)


def test_modules_after_the_checkpoint_keep_applying_and_reverting(history_dir, tmp_path, fresh):
    d, models = history_dir
    files = migration_files(d)
    target = fresh("app.sqlite3")  # applied up to the checkpoint's point only
    run_first(target, d, 3)
    done = squash(d, to=files[2].stem, now=NOW)
    assert [p.stem for p in migration_files(d)] == [done.name] + [p.stem for p in files[3:]]
    assert [m.name for m in runner.run(target, d, take_backup=False)] == [p.stem for p in files[3:]]
    assert names_recorded(target) == [done.name] + [p.stem for p in files[3:]]
    new = fresh("new.sqlite3")
    assert [m.name for m in runner.run(new, d, take_backup=False)] == [done.name] + [p.stem for p in files[3:]]
    assert schema_of(new) == schema_of(target)
    # revert: the later modules yes, the checkpoint no
    assert [m.name for m in runner.revert(target, d, to=done.name, take_backup=False)] == [files[4].stem, files[3].stem]
    with pytest.raises(ConfigurationError, match="is a checkpoint .* cannot be reverted"):
        runner.revert(target, d, take_backup=False)
    # generate after the squash: nothing to write; a model change gives a module that applies after it
    assert not generate(d, build_models(models), write=False).changed
    assert generate(d, build_models(models), write=False, markers=False).stale_snapshot is None
    assert gen(d, spec("body", "summary", other=True), 30)
    assert len(runner.run(new, d, take_backup=False)) == 1


def test_generate_after_squash_writes_nothing(history_dir):
    d, models = history_dir
    squash(d, now=NOW)
    before = {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}
    result = generate(d, build_models(models))
    assert not result.changed and result.stale_snapshot is None
    result = generate(d, build_models(models), markers=False)
    assert not result.changed and result.stale_snapshot is None
    assert {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()} == before


def test_a_data_step_in_the_range_is_refused_nothing_written(history_dir):
    d, models = history_dir
    module(d, "20260501_120600_01_data", "def up(db):\n    pass\n")
    gen(d, models, 7)
    before = sorted(p.name for p in d.iterdir())
    with pytest.raises(ConfigurationError, match="20260501_120600_01_data has a data step .*`squash --to "
                                                 "20260501_120500_01_create_blog_tag"):
        squash(d, now=NOW)
    assert sorted(p.name for p in d.iterdir()) == before
    assert squash(d, to="20260501_120500_01_create_blog_tag", now=NOW).name  # before it: fine


def test_rows_written_by_sql_are_refused_naming_the_module(history_dir):
    d, models = history_dir
    module(d, "20260501_120600_01_seed", "up = [\"INSERT INTO blog_tag (label) VALUES ('news')\"]\n")
    gen(d, models, 7)
    with pytest.raises(ConfigurationError, match="20260501_120600_01_seed writes rows \\(blog_tag"):
        squash(d, now=NOW)
    assert len(migration_files(d)) == 6


def test_squashing_a_checkpoint_again(history_dir, tmp_path, fresh):
    d, models = history_dir
    target = fresh("app.sqlite3")
    runner.run(target, d, take_backup=False)
    first = squash(d, now=NOW)
    runner.run(target, d, take_backup=False)  # records the first checkpoint
    gen(d, spec("body", "summary", other=True), 30)
    runner.run(target, d, take_backup=False)
    second = squash(d, now=NOW)
    assert [r.name for r in load_migration(migration_files(d)[0]).replaces][0] == first.name
    assert runner.run(target, d, take_backup=False) == []
    assert names_recorded(target) == [second.name]
    new = fresh("new.sqlite3")
    runner.run(new, d, take_backup=False)
    assert schema_of(new) == schema_of(target)


def test_refusals_before_anything_is_written(history_dir):
    d, _models = history_dir
    with pytest.raises(ConfigurationError, match="--to nosuch: no migration module"):
        squash(d, to="nosuch")
    with pytest.raises(ConfigurationError, match="nothing to squash: one module"):
        squash(d, to=migration_files(d)[0].stem)
    (d / "schema.sql").write_text((d / "schema.sql").read_text().replace("-- history: ", "-- history: x"))
    with pytest.raises(ConfigurationError, match="schema.sql does not record the modules"):
        squash(d)
    assert len(migration_files(d)) == 5


def test_the_checkpoint_format_is_refused_by_older_readers_and_checked():
    with pytest.raises(MigrationFileError, match="module format 5 is newer than this tablemigrate reads \\(up to 4\\)"):
        load_source(b"module_format = 5\nup = []\n", "x")
    with pytest.raises(MigrationFileError, match="`replaces` needs `module_format = 4`"):
        load_source(b"module_format = 3\nreplaces = [('a', '" + b"0" * 64 + b"')]\nup = []\n", "x")
    with pytest.raises(MigrationFileError, match="`replaces` must be a non-empty list"):
        load_source(b"module_format = 4\nreplaces = [('a', 'nothex')]\nup = []\n", "x")


def test_the_command(history_dir, tmp_path, fresh, capsys):
    d, _models = history_dir
    target = fresh("app.sqlite3")
    runner.run(target, d, take_backup=False)
    with override_settings(TABLEMIGRATE_MIGRATIONS_DIR=d):
        call_command("tablemigrate", "squash", "--dry-run")
        assert "replaces = [" in capsys.readouterr().out and len(migration_files(d)) == 5
        call_command("tablemigrate", "squash")
        assert "Wrote 20260501_120500_01_checkpoint: it replaces 5 modules" in capsys.readouterr().out
        with pytest.raises(CommandError, match="nothing to squash: one module"):
            call_command("tablemigrate", "squash")
    assert len(migration_files(d)) == 1
    conn = sqlite3.connect(tmp_path / "app.sqlite3")
    assert conn.execute("SELECT count(*) FROM tablemigrate_history").fetchone() == (5,)


@pytest.mark.skipif(not fts5_compiled(), reason="this Python's sqlite3 is built without FTS5")
def test_a_virtual_table_and_its_shadow_tables(history_dir, fresh):
    d, models = history_dir
    module(d, "20260501_120600_01_search", "up = [\"CREATE VIRTUAL TABLE blog_search USING fts5(title, "
                                           "content='blog_post', content_rowid='id')\"]\n")
    gen(d, models, 7)
    before = fresh("before.sqlite3")
    runner.run(before, d, take_backup=False)
    squash(d, now=NOW)
    assert "blog_search_data" not in migration_files(d)[0].read_text()  # made by the virtual table itself
    after = fresh("after.sqlite3")
    assert len(runner.run(after, d, take_backup=False)) == 1
    assert schema_of(after) == schema_of(before)
    assert runner.run(before, d, take_backup=False) == []


def test_the_adoption_point_is_kept_when_the_checkpoint_ends_there(tmp_path):
    d = tmp_path / "m"
    gen(d, spec(), 1)
    first = migration_files(d)[-1]
    first.write_text(first.read_text() + "adoption_point = [('blog', '0001_initial')]\n")
    gen(d, spec(), 2)  # schema.sql for the edit
    gen(d, spec("body"), 3)
    kept = squash(d, to=first.stem, now=NOW, write=False)
    assert load_source(kept.text.encode(), kept.name).adoption_point == (("blog", "0001_initial"),)
    assert not kept.notes
    past = squash(d, now=NOW, write=False)
    assert load_source(past.text.encode(), past.name).adoption_point is None
    assert past.notes and f"can no longer be adopted (`baseline`) from these modules (adopt every such database " \
                          f"first, or squash --to {first.stem})" in past.notes[0]


def test_rebuilt_tables_in_the_range(tmp_path, fresh):
    """A rebuild of an empty AUTOINCREMENT table leaves its counter at 0 in sqlite_sequence: the same as none."""
    d = tmp_path / "m"
    gen(d, spec(), 1)
    changed = spec()
    changed.tables["Author"].fields[0].unique = True
    changed.tables["Post"].fields[1].kind = "text"
    gen(d, changed, 2)
    assert "RebuildTable(" in "".join(p.read_text() for p in migration_files(d))
    before = fresh("before.sqlite3")
    runner.run(before, d, take_backup=False)
    squash(d, now=NOW)  # BASE of this fix: "writes rows (sqlite_sequence)"
    after = fresh("after.sqlite3")
    runner.run(after, d, take_backup=False)
    assert schema_of(after) == schema_of(before)
    assert runner.run(before, d, take_backup=False) == []


def test_an_autoincrement_counter_moved_by_sql_is_refused(tmp_path):
    d = tmp_path / "m"
    gen(d, spec(), 1)
    module(d, "20260501_120200_01_seed", "up = [\"INSERT INTO blog_author (name) VALUES ('x')\", "
                                         "'DELETE FROM blog_author']\n")
    gen(d, spec(), 3)
    with pytest.raises(ConfigurationError, match="20260501_120200_01_seed writes rows \\(sqlite_sequence\\)"):
        squash(d, now=NOW)
