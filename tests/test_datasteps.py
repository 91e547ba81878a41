"""The project's own Django data steps survive adoption (issue 23, item 4).

The fixture project tests/datasite has one app of its own, `blog`, whose Django migrations write default
rows: 0002 a `RunPython` (historical models: two categories and an auth group, with a reverse) and a
`RunSQL` (a settings row); 0003 then adds `Category.position` (NOT NULL, default 0) and makes a view
by SQL. The current `Category.save` numbers new rows, so a step run with the current classes instead of
the historical models writes other rows than Django's `migrate` did. The path: `migrate` builds db1 (the
project before it adopted tablemigrate), `tablemigrate baseline` adopts it, blog/migrations is deleted,
and `tablemigrate run` builds new databases. Every command runs through the copy's manage.py in a
separate process.
"""

from __future__ import annotations

import shutil
import sqlite3
from datetime import datetime, timezone
from functools import partial
from pathlib import Path

import pytest
from django.db import migrations

from tablemigrate.generate import datasteps
from tablemigrate.history.loader import load_source
from tablemigrate.operations import DjangoDataStep
from tablemigrate.project.build import private_database, raw

from . import helpers
from .helpers import copy_fixture_site

SITE = Path(__file__).resolve().parent / "datasite"
ROWS = {
    "blog_category": "SELECT id, name, position FROM blog_category ORDER BY id",
    "blog_setting": "SELECT key, value FROM blog_setting ORDER BY id",
    "auth_group": "SELECT name FROM auth_group ORDER BY id",
}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return copy_fixture_site(SITE, tmp_path)


manage = partial(helpers.manage, prefix="DATASITE", db="db.sqlite3")


def rows(db: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        return {table: conn.execute(sql).fetchall() for table, sql in ROWS.items()}
    finally:
        conn.close()


def history(db: Path) -> list[str]:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        return [name for (name,) in conn.execute("SELECT name FROM tablemigrate_history ORDER BY name")]
    finally:
        conn.close()


def adopt(site: Path) -> str:
    """Django's `migrate` builds db1, `baseline` adopts it, blog's Django migrations go (as the README
    says); returns baseline's output."""
    manage(site, "migrate", "-v0", DATASITE_DJANGO_OWNS="1")
    out = manage(site, "tablemigrate", "baseline", "--noinput").stdout
    shutil.rmtree(site / "blog" / "migrations")
    return out


@pytest.mark.subprocess
def test_a_database_built_after_adoption_gets_the_rows_djangos_migrate_wrote(site):
    db1 = site / "db.sqlite3"
    out = adopt(site)
    by_django = rows(db1)
    assert by_django["blog_category"] == [(1, "General", 0), (2, "News", 0)]  # the fixture is what it says

    # A new database: the other apps' Django migrations, the tables, then the data steps, with the
    # historical models (position 0 as AddField gave it, not the current save()'s numbering).
    manage(site, "tablemigrate", "run", "--noinput", db="db2.sqlite3")
    db2 = site / "db2.sqlite3"
    assert rows(db2) == by_django
    assert "RunPython blog.migrations.0002_default_rows.create_defaults (operation 1)" in out
    assert "RunSQL (operation 2)" in out
    carried = [p for p in (site / "tablemigrations").glob("*_data_blog_0002_default_rows.py")]
    assert len(carried) == 1, out
    assert (site / "tablemigrations" / "django" / "blog" / "0002_default_rows.py").is_file()
    # The view 0003 made by SQL is made once, by the baseline module (its RunSQL is not carried too).
    assert "DjangoDataStep('blog', '0003" not in carried[0].read_text()
    assert manage(site, "tablemigrate", "run", "--noinput", db="db2.sqlite3").stdout.strip() == \
        "No migrations to apply."
    assert rows(db2) == by_django

    # db1 records the carried module as applied: the steps ran there already, and do not run again.
    assert carried[0].stem in history(db1)
    assert manage(site, "tablemigrate", "run", "--noinput").stdout.strip() == "No migrations to apply."
    assert rows(db1) == by_django
    check = manage(site, "tablemigrate", "generate", "--check", "--noinput", check=False)
    assert (check.returncode, check.stdout.strip()) == (0, "No changes detected"), check.stdout + check.stderr

    # A later model change generates one module, which runs on both databases.
    models = site / "blog" / "models.py"
    models.write_text(models.read_text().replace(
        "    value = models.TextField()\n",
        "    value = models.TextField()\n    note = models.CharField(max_length=20, default='')\n"))
    before = set((site / "tablemigrations").iterdir())
    manage(site, "tablemigrate", "generate", "AddNote", "--noinput")
    new = sorted(p.name for p in set((site / "tablemigrations").iterdir()) - before)
    assert len(new) == 1 and new[0].endswith("_update_blog_setting.py"), new
    for db in (db1, db2):
        manage(site, "tablemigrate", "run", "--noinput", db=db.name)
        assert rows(db) == by_django


@pytest.mark.subprocess
def test_revert_runs_the_reverse_code_and_run_writes_the_rows_again(site):
    adopt(site)
    manage(site, "tablemigrate", "run", "--noinput", "-v0", db="db2.sqlite3")
    db2 = site / "db2.sqlite3"
    made = rows(db2)
    out = manage(site, "tablemigrate", "revert", "--noinput", db="db2.sqlite3").stdout
    assert "_data_blog_0002_default_rows" in out
    assert rows(db2) == {"blog_category": [], "blog_setting": [], "auth_group": []}
    manage(site, "tablemigrate", "run", "--noinput", "-v0", db="db2.sqlite3")
    assert [r[1:] for r in rows(db2)["blog_category"]] == [r[1:] for r in made["blog_category"]]


@pytest.mark.subprocess
def test_a_failing_data_step_is_one_line_exit_1_and_names_its_own_line_with_traceback(site):
    adopt(site)
    failed = manage(site, "tablemigrate", "run", "--noinput", db="db3.sqlite3", check=False, DATASITE_FAIL_STEP="1")
    assert failed.returncode == 1, failed.stderr
    line = failed.stderr.strip().splitlines()[-1]  # before it: "migration backup written to ..."
    assert line.startswith("CommandError: ") and "Traceback" not in failed.stderr, failed.stderr
    assert "RuntimeError: the default rows cannot be written" in line
    assert "restored" in line
    assert history(site / "db3.sqlite3") == []  # restored: no module applied, no table of blog made
    assert "blog_category" not in {n for (n,) in sqlite3.connect(site / "db3.sqlite3").execute(
        "SELECT name FROM sqlite_master")}
    traced = manage(site, "tablemigrate", "--traceback", "run", "--noinput", db="db3.sqlite3", check=False,
                    DATASITE_FAIL_STEP="1")
    assert traced.returncode == 1
    archived = site / "tablemigrations" / "django" / "blog" / "0002_default_rows.py"
    number = archived.read_text().splitlines().index('        raise RuntimeError("the default rows cannot be written")') + 1
    assert f'File "{archived}", line {number}, in create_defaults' in traced.stderr, traced.stderr

    # An archived migration edited after baseline copied it: refused, nothing applied.
    archived.write_text(archived.read_text().replace('"News"', '"Events"'))
    edited = manage(site, "tablemigrate", "run", "--noinput", db="db3.sqlite3", check=False)
    assert edited.returncode == 1 and "0002_default_rows.py is changed" in edited.stderr, edited.stderr


# --- in-process: what baseline carries, and how ------------------------------------------------------


def _found(tmp_path: Path, op: object) -> datasteps.Found:
    source = tmp_path / "0002_x.py"
    source.write_text("# the migration\n")
    return datasteps.Found("blog", "0002_x", [0], op, source)


def test_a_step_django_cannot_reverse_gives_a_module_without_down(tmp_path):
    now = datetime(2026, 1, 2, tzinfo=timezone.utc)
    one_way = _found(tmp_path, migrations.RunPython(lambda apps, editor: None))
    both = _found(tmp_path, migrations.RunSQL("INSERT INTO t VALUES (1)", "DELETE FROM t"))
    [module] = datasteps.modules([one_way], "Baseline", now, ["20260102_000000_01_create_t"])
    loaded = load_source(module.text.encode(), module.name)
    assert module.name == "20260102_000001_01_data_blog_0002_x"
    assert loaded.down is None and [type(s) for s in loaded.up] == [DjangoDataStep]
    [module] = datasteps.modules([both], "Baseline", now, [])
    loaded = load_source(module.text.encode(), module.name)
    assert [(s.operation, s.reverse) for s in loaded.down] == [(0, True)]


@pytest.mark.parametrize("sql, carried", [
    ("INSERT INTO t (a) VALUES (1)", True),
    ("UPDATE t SET a = 2", True),
    ("CREATE VIEW v AS SELECT a FROM t", False),
    ("CREATE TRIGGER tr AFTER INSERT ON t BEGIN DELETE FROM t WHERE a < 0; END", False),
    ("CREATE INDEX t_a ON t (a)", False),
    ("CREATE TABLE t (a)", False),  # exists already: SQLite asks the authorizer before it looks
    ("ALTER TABLE t ADD COLUMN b", False),
    (["INSERT INTO t (a) VALUES (1)", "DROP TABLE t"], False),
])
def test_runsql_is_carried_only_when_sqlite_says_it_changes_no_schema(sql, carried):
    with private_database() as wrapper:
        scratch = raw(wrapper)
        scratch.execute("CREATE TABLE t (a)")
        why = datasteps._sql_changes_schema(migrations.RunSQL(sql), "blog", scratch, wrapper)
    assert (why is None) is carried and why in (None, "")


def test_runsql_that_does_not_compile_on_the_adopted_schema_is_left_out_and_said():
    with private_database() as wrapper:
        why = datasteps._sql_changes_schema(migrations.RunSQL("INSERT INTO gone (a) VALUES (1)"), "blog",
                                            raw(wrapper), wrapper)
    assert why and "no such table: gone" in why
