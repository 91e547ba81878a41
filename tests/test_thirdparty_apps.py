"""Apps that keep their own Django migrations next to the apps tablemigrate owns (issue 12), end to end.

The fixture project tests/mixedsite has a "third-party" app `vendor` that ships Django migrations (0002 is a
RunPython data step that creates the "General" category; vendor_upgrade/ holds its next version, whose 0003
adds a NOT NULL slug filled by a data step) and the project's own app `shop` (no migrations folder; Item has
foreign keys to vendor.Category and auth.User, FeaturedCategory inherits from vendor.Category). The settings
declare the ownership: `TABLEMIGRATE_APPS = ["shop"]`. Every test works on a copy, through the copy's
manage.py in separate processes.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest

from . import helpers
from .helpers import copy_fixture_site, project_env

pytestmark = pytest.mark.subprocess  # every test here starts the project's manage.py or a process

SITE = Path(__file__).resolve().parent / "mixedsite"
SHOP_TABLES = {"shop_item", "shop_featuredcategory"}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return copy_fixture_site(SITE, tmp_path)


# The copy's environment and manage.py (tests/helpers.py): its database site/db.sqlite3, its modules
# site/tablemigrations.
site_env = partial(project_env, prefix="MIXEDSITE", db="db.sqlite3")
manage = partial(helpers.manage, prefix="MIXEDSITE", db="db.sqlite3")
tm = partial(helpers.tablemigrate, prefix="MIXEDSITE", db="db.sqlite3")


def orm(site: Path, code: str) -> dict:
    """Run `code` in `manage.py shell -c`; it ends by printing one JSON object, returned here."""
    out = manage(site, "shell", "-c", code).stdout
    return json.loads(out.strip().splitlines()[-1])


def rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def dump(db: Path) -> list[str]:
    """The whole database as SQL text: schema, every row, Django's and tablemigrate's histories."""
    conn = sqlite3.connect(db)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def applied(out: str) -> list[str]:
    return [line.split()[1] for line in out.splitlines() if line.startswith("Applied ")]


def modules(site: Path) -> set[str]:
    return {p.name for p in (site / "tablemigrations").glob("*.py")}


def module_tables(site: Path, names: set[str]) -> set[str]:
    found = set()
    for name in names:
        namespace: dict = {}
        exec((site / "tablemigrations" / name).read_text(), namespace)
        found.add(namespace["table"])
    return found


def install(site: Path) -> str:
    tm(site, "generate", "--noinput")
    return tm(site, "run", "--noinput").stdout


def add_rows(site: Path) -> dict:
    return orm(site, """
import json
from django.contrib.auth.models import User
from shop.models import FeaturedCategory, Item
from vendor.models import Category
ann = User.objects.create(username="ann")
Item.objects.create(title="tea", category=Category.objects.get(name="General"), owner=ann)
FeaturedCategory.objects.create(name="Big Sale", rank=3)
print(json.dumps({"items": list(Item.objects.values_list("title", "category__name", "owner__username")),
                  "featured": list(FeaturedCategory.objects.values_list("name", "rank"))}))
""")


def upgrade_vendor(site: Path) -> None:
    """Install the package's next version over the old one: its models and its new migrations."""
    shutil.copy(site / "vendor_upgrade" / "models.py", site / "vendor" / "models.py")
    for migration in (site / "vendor_upgrade" / "migrations").glob("0*.py"):
        shutil.copy(migration, site / "vendor" / "migrations" / migration.name)


def djangos_makemigrations(site: Path, app: str) -> None:
    """Django's own `makemigrations APP` (tablemigrate's refuses an app it owns, issue 25): Django migrations
    for an owned app, as a project made them before it adopted tablemigrate."""
    manage(site, "shell", "-c", "from django.core.management import call_command\n"
           "from django.core.management.commands.makemigrations import Command\n"
           f"call_command(Command(), {app!r})")


def vendor_migration(site: Path, name: str, body: str) -> None:
    (site / "vendor" / "migrations" / f"{name}.py").write_text(body)


def test_install_applies_the_vendors_migrations_then_the_own_modules(site):
    db = site / "db.sqlite3"
    tm(site, "generate", "--noinput")
    assert module_tables(site, modules(site)) == SHOP_TABLES  # never vendor_, auth_ or django_ tables
    out = tm(site, "run", "--noinput").stdout
    names = applied(out)
    shop = [n for n in names if "_create_shop_" in n]
    assert len(shop) == 2 and names[-2:] == shop, names  # Django's migrations first, the own modules last
    for first in ("contenttypes.0001_initial", "auth.0001_initial", "vendor.0001_initial"):
        assert first in names
    assert names.index("vendor.0001_initial") < names.index("vendor.0002_general_category") < names.index(shop[0])
    assert rows(db, "SELECT name FROM vendor_category") == [("General",)]  # the data step ran
    assert ("vendor", "0002_general_category") in rows(db, "SELECT app, name FROM django_migrations")
    # post_migrate: content types and permissions of both kinds of app
    assert {("shop", "item"), ("shop", "featuredcategory"), ("vendor", "category")} <= set(
        rows(db, "SELECT app_label, model FROM django_content_type"))
    assert rows(db, "SELECT count(*) FROM auth_permission WHERE codename = 'add_item'") == [(1,)]
    parents = {(r[2], r[3], r[4]) for r in rows(db, "PRAGMA foreign_key_list(shop_item)")}
    assert {("vendor_category", "category_id", "id"), ("auth_user", "owner_id", "id")} <= parents
    assert add_rows(site) == {"items": [["tea", "General", "ann"]], "featured": [["Big Sale", 3]]}
    assert rows(db, "SELECT c.name FROM shop_featuredcategory f JOIN vendor_category c "
                    "ON c.id = f.category_ptr_id") == [("Big Sale",)]
    assert rows(db, "PRAGMA foreign_key_check") == []
    assert tm(site, "generate", "--check", "--noinput").stdout.strip() == "No changes detected"
    assert tm(site, "run", "--noinput").stdout.strip() == "No migrations to apply."
    stats = tm(site, "stats").stdout.splitlines()
    assert stats[-2:] == ["tablemigrate owns (TABLEMIGRATE_APPS): shop",
                          "Django migrations own: auth, contenttypes, vendor"]
    assert "Drift" not in tm(site, "show").stdout


def test_run_with_nothing_pending_imports_no_migration_module(site):
    install(site)
    (site / "probe.py").write_text(
        "import os, sys\nimport django\nos.environ['DJANGO_SETTINGS_MODULE'] = 'mixedsite.settings'\n"
        "django.setup()\nfrom django.core.management import call_command\n"
        "call_command('tablemigrate', 'run', '--noinput')\n"
        "print('imported', sorted(m for m in sys.modules if '.migrations.0' in m))\n")
    proc = subprocess.run([sys.executable, "probe.py"], cwd=site, env=site_env(site), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    # The packages' file names are compared with django_migrations; no migration module is imported.
    assert proc.stdout.splitlines()[-1] == "imported []", proc.stdout


def test_system_check_warns_about_unapplied_django_migrations_of_other_apps(site):
    def warnings() -> str:
        return manage(site, "check").stderr

    tm(site, "generate", "--noinput")
    (site / "db.sqlite3").touch()  # an empty database: nothing applied
    assert "tablemigrate.W004" in warnings() and "auth.0001_initial" in warnings()
    tm(site, "run", "--noinput")
    assert "tablemigrate.W004" not in warnings()
    vendor_migration(site, "0003_more", BROKEN.format(atomic=True).replace('    raise RuntimeError("boom")\n', ""))
    assert "vendor.0003_more" in warnings()


def test_upgrade_one_run_applies_the_package_data_step_and_the_own_module(site):
    db = site / "db.sqlite3"
    install(site)
    add_rows(site)
    before = modules(site)
    upgrade_vendor(site)
    models = site / "shop" / "models.py"
    models.write_text(models.read_text().replace(
        '    title = models.CharField(max_length=100)\n',
        '    title = models.CharField(max_length=100)\n    note = models.CharField(max_length=50, default="")\n'))
    tm(site, "generate", "AddNote", "--noinput")
    new = modules(site) - before
    assert len(new) == 1 and module_tables(site, new) == {"shop_item"}  # vendor's slug is not ours
    names = applied(tm(site, "run", "--noinput").stdout)
    assert names == ["vendor.0003_category_slug", new.pop()[:-3]]
    assert rows(db, "SELECT name, slug FROM vendor_category ORDER BY id") == [("General", "general"),
                                                                           ("Big Sale", "big-sale")]
    assert [r[3] for r in rows(db, "PRAGMA table_info(vendor_category)") if r[1] == "slug"] == [1]  # NOT NULL
    assert rows(db, "SELECT i.title, i.note, c.name, u.username FROM shop_item i JOIN vendor_category c "
                    "ON c.id = i.category_id JOIN auth_user u ON u.id = i.owner_id") == [("tea", "", "General", "ann")]
    assert rows(db, "SELECT rank FROM shop_featuredcategory") == [(3,)]
    assert rows(db, "PRAGMA foreign_key_check") == []
    assert tm(site, "generate", "--check", "--noinput").stdout.strip() == "No changes detected"
    assert tm(site, "run", "--noinput").stdout.strip() == "No migrations to apply."


BROKEN = '''
from django.db import migrations, models


def boom(apps, schema_editor):
    Category = apps.get_model("vendor", "Category")
    Category.objects.using(schema_editor.connection.alias).filter(name="General").update(name="renamed")
    raise RuntimeError("boom")


class Migration(migrations.Migration):
    atomic = {atomic}
    dependencies = [("vendor", "0002_general_category")]
    operations = [
        migrations.AddField("category", "extra", models.IntegerField(default=0)),
        migrations.RunPython(boom),
    ]
'''


def _one_error_line(proc: subprocess.CompletedProcess[str]) -> str:
    errors = [line for line in proc.stderr.splitlines() if line.startswith("CommandError: ")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def _named_backup(error: str) -> Path:
    backup = Path(error.split("the database was restored from backup ", 1)[1].split(";", 1)[0])
    assert backup.is_file()
    return backup


@pytest.mark.parametrize("atomic", [True, False])
def test_a_failing_django_data_step_restores_the_database(site, atomic):
    """With `atomic = False` Django leaves the AddField committed when the data step raises: the backup
    covers what Django does not roll back."""
    db = site / "db.sqlite3"
    install(site)
    add_rows(site)
    before = dump(db)
    vendor_migration(site, "0003_broken", BROKEN.format(atomic=atomic))
    proc = tm(site, "run", "--noinput", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    error = _one_error_line(proc)
    assert "Django migration vendor.0003_broken failed" in error and "RuntimeError: boom" in error
    if atomic:  # Django rolled it back whole: nothing to restore
        assert "rolled back, the database is unchanged (backup: " in error
    else:  # its AddField committed without a record: the backup is restored
        assert _named_backup(error).parent == site / "backups"
    assert dump(db) == before  # schema, rows and django_migrations as before the run
    assert "extra" not in {r[1] for r in rows(db, "PRAGMA table_info(vendor_category)")}
    assert ("vendor", "0003_broken") not in rows(db, "SELECT app, name FROM django_migrations")


def test_a_data_step_database_error_is_reported_not_djangos_transaction_error(site):
    """Django's SQLite schema editor checks constraints on exit inside the broken transaction, which
    raises TransactionManagementError; the line names the IntegrityError that caused it."""
    db = site / "db.sqlite3"
    install(site)
    before = dump(db)
    duplicate = BROKEN.format(atomic=True).replace(
        '    raise RuntimeError("boom")',
        '    Category.objects.using(schema_editor.connection.alias).create(name="renamed")')
    vendor_migration(site, "0003_broken", duplicate)
    proc = tm(site, "run", "--noinput", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    error = _one_error_line(proc)
    assert "Django migration vendor.0003_broken failed: IntegrityError: UNIQUE constraint failed" in error
    assert dump(db) == before


UPDATE_CLASH = '''
from django.db import migrations


def clash(apps, schema_editor):
    Category = apps.get_model("vendor", "Category")
    Category.objects.using(schema_editor.connection.alias).update(name="same")  # UNIQUE: two rows


class Migration(migrations.Migration):
    dependencies = [("vendor", "0003_more")]
    operations = [migrations.RunPython(clash)]
'''


def test_a_database_error_in_a_data_step_after_a_committed_migration_restores_the_backup(site):
    """Like upgrading django-allauth over two addresses differing in case: the data step's UPDATE
    breaks a UNIQUE constraint; Django's schema editor leaves its atomic block (and the transaction)
    open; the run still restores the backup taken before vendor.0003, which had committed."""
    db = site / "db.sqlite3"
    install(site)
    add_rows(site)
    before = dump(db)
    vendor_migration(site, "0003_more", BROKEN.format(atomic=True).replace('    raise RuntimeError("boom")\n', ""))
    vendor_migration(site, "0004_clash", UPDATE_CLASH)
    proc = tm(site, "run", "--noinput", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    error = _one_error_line(proc)
    assert "Django migration vendor.0004_clash failed: IntegrityError: UNIQUE constraint failed" in error
    assert _named_backup(error).parent == site / "backups"
    assert dump(db) == before  # vendor.0003's column and record are gone too
    assert rows(db, "PRAGMA foreign_key_check") == []


def test_a_failing_own_module_after_a_django_migration_restores_both(site):
    db = site / "db.sqlite3"
    install(site)
    add_rows(site)
    before = dump(db)
    upgrade_vendor(site)
    (site / "tablemigrations" / "99999999_999999_01_bad.py").write_text(
        "up = ['INSERT INTO shop_item SELECT * FROM shop_item']\ndown = []\n")  # fails on the real row only
    proc = tm(site, "run", "--noinput", check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    error = _one_error_line(proc)
    assert "migration 99999999_999999_01_bad (up) failed" in error
    _named_backup(error)
    assert dump(db) == before  # vendor.0003's column and data step are gone too
    assert "slug" not in {r[1] for r in rows(db, "PRAGMA table_info(vendor_category)")}
    assert ("vendor", "0003_category_slug") not in rows(db, "SELECT app, name FROM django_migrations")
    (site / "tablemigrations" / "99999999_999999_01_bad.py").unlink()  # fixed: the next run does both
    assert applied(tm(site, "run", "--noinput").stdout) == ["vendor.0003_category_slug"]


def test_dry_run_and_show_list_both_kinds_and_change_nothing(site):
    db = site / "db.sqlite3"
    tm(site, "generate", "--noinput")
    shop = sorted(n[:-3] for n in modules(site))
    out = tm(site, "run", "--dry-run").stdout
    headings = [line.split()[2] for line in out.splitlines() if line.startswith("would apply ")]
    assert headings[-4:] == ["vendor.0001_initial", "vendor.0002_general_category", *shop], headings
    step = out.split("would apply vendor.0002_general_category", 1)[1].split("would apply ", 1)[0]
    assert "rows vendor_category: 0 -> 1   (changed)" in step
    # the data step's INSERT, not Django's lookups, savepoints or bookkeeping
    listed = [line.split("ms  ", 1)[1] for line in step.splitlines() if " ms  " in line]
    assert len(listed) == 1 and listed[0].startswith('INSERT INTO "vendor_category"'), listed
    assert not db.exists()
    show = tm(site, "show").stdout
    assert "tablemigrate owns (TABLEMIGRATE_APPS): shop" in show
    assert "Django migrations own: auth, contenttypes, vendor" in show
    vendor = show.split("[ ] django: vendor.0001_initial", 1)[1].split("[ ] ", 1)[0]
    assert 'CREATE TABLE "vendor_category"' in vendor
    assert "[ ] django: vendor.0002_general_category" in show and f"[ ] {shop[0]}" in show
    bare = tm(site, "show", "--no-sql").stdout
    assert "[ ] django: vendor.0001_initial" in bare and "CREATE TABLE" not in bare
    assert not db.exists()
    tm(site, "run", "--noinput")  # and on a live database with the package's upgrade pending
    add_rows(site)
    before = dump(db)
    upgrade_vendor(site)
    out = tm(site, "run", "--dry-run").stdout
    assert [line.split()[2] for line in out.splitlines() if line.startswith("would apply ")] == [
        "vendor.0003_category_slug"]
    assert "[ ] django: vendor.0003_category_slug" in tm(site, "show", "--no-sql").stdout
    assert dump(db) == before


@pytest.mark.parametrize("history", ["0", "1"])
def test_the_test_database_has_the_vendors_data_under_both_runners(site, history):
    tm(site, "generate", "--noinput")
    test_db = site / "test.sqlite3"

    def run(*args: str, **env: str) -> str:
        proc = subprocess.run([sys.executable, *args], cwd=site, capture_output=True, text=True, timeout=120,
                              env=site_env(site, MIXEDSITE_TEST_MIGRATIONS=history, **env))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout + proc.stderr

    def built_by() -> tuple[list, list]:
        return (rows(test_db, "SELECT name FROM django_migrations WHERE app = 'vendor' ORDER BY name"),
                rows(test_db, "SELECT count(*) FROM sqlite_master WHERE name = 'tablemigrate_history'"))

    assert "Ran 4 tests" in run("manage.py", "test", "shop")  # in memory
    for _ in range(2):
        assert "Ran 4 tests" in run("manage.py", "test", "shop", "--keepdb", MIXEDSITE_TEST_DB=str(test_db))
    vendor = [("0001_initial",), ("0002_general_category",)]
    assert built_by() == (vendor, [(int(history),)])  # Django's migrations; the history only when asked
    test_db.unlink()
    pytest_args = ("-m", "pytest", "-q", "-p", "no:cacheprovider", "--ds=mixedsite.settings", "shop/tests.py")
    stamps = []
    for flags in (["--reuse-db"], ["--reuse-db"], ["--reuse-db", "--create-db"]):
        assert "4 passed" in run(*pytest_args, *flags, MIXEDSITE_TEST_DB=str(test_db))
        assert built_by() == (vendor, [(int(history),)])
        stamps.append(rows(test_db, "SELECT applied FROM django_migrations ORDER BY id"))
    assert stamps[0] == stamps[1] != stamps[2]  # reused as it was, then built again
    if history == "1":
        assert len(rows(test_db, "SELECT name FROM tablemigrate_history")) == 2


def test_an_empty_migrations_package_as_startapp_makes_it_is_no_django_migrations(site):
    """`manage.py startapp` creates `migrations/__init__.py`: Django would count the app as migrated with
    no migrations, and neither its test database nor `migrate --run-syncdb` would build its tables."""
    (site / "shop" / "migrations").mkdir()
    (site / "shop" / "migrations" / "__init__.py").write_text("")
    assert "tablemigrate.W003" not in manage(site, "check").stderr
    install(site)
    assert add_rows(site)["items"] == [["tea", "General", "ann"]]
    proc = manage(site, "test", "shop", check=False)
    assert proc.returncode == 0 and "Ran 4 tests" in proc.stderr, proc.stdout + proc.stderr


NEEDS_SHOP = '''
from django.db import migrations


def count_items(apps, schema_editor):
    Item = apps.get_model("shop", "Item")
    Category = apps.get_model("vendor", "Category")
    n = Item.objects.using(schema_editor.connection.alias).count()
    Category.objects.using(schema_editor.connection.alias).create(name=f"items: {n}")


class Migration(migrations.Migration):
    dependencies = [("vendor", "0002_general_category"), ("shop", "__first__")]
    operations = [migrations.RunPython(count_items, migrations.RunPython.noop)]
'''


def test_a_django_migration_that_depends_on_an_owned_app_runs_after_its_tables_exist(site):
    """Like a third-party migration on the project's own (swappable) user model: Django's order puts
    apps without migrations first, so the owned modules run before it, the rest of Django's after."""
    vendor_migration(site, "0003_needs_shop", NEEDS_SHOP)
    tm(site, "generate", "--noinput")
    shown = tm(site, "show", "--no-sql").stdout  # in the order run applies them
    assert shown.index("django: vendor.0002_general_category") < shown.index("_create_shop_item") \
        < shown.index("django: vendor.0003_needs_shop")
    dry = tm(site, "run", "--dry-run", "--noinput").stdout
    assert dry.index("_create_shop_item") < dry.index("would apply vendor.0003_needs_shop")
    assert not (site / "db.sqlite3").exists()
    names = applied(tm(site, "run", "--noinput").stdout)
    assert names.index("vendor.0002_general_category") < names.index(
        [n for n in names if "_create_shop_item" in n][0]) < names.index("vendor.0003_needs_shop")
    assert ("items: 0",) in rows(site / "db.sqlite3", "SELECT name FROM vendor_category")


LOCKER = '''
import sqlite3

from django.apps import AppConfig
from django.conf import settings

HOLDERS = []


def take_the_write_lock(sender, name, **kwargs):
    """Another writer takes SQLite's write lock just as the Django migration starts."""
    if name == "vendor.0003_more":
        holder = sqlite3.connect(settings.DATABASES["default"]["NAME"], isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        HOLDERS.append(holder)


class LockerConfig(AppConfig):
    name = "locker"

    def ready(self):
        from tablemigrate.signals import pre_migration

        pre_migration.connect(take_the_write_lock)
'''


def test_a_write_lock_held_past_the_busy_timeout_in_the_django_phase_exits_3(site):
    db = site / "db.sqlite3"
    install(site)
    before = dump(db)
    vendor_migration(site, "0003_more", BROKEN.format(atomic=True).replace('    raise RuntimeError("boom")\n', ""))
    (site / "locker").mkdir()
    (site / "locker" / "__init__.py").write_text("")
    (site / "locker" / "apps.py").write_text(LOCKER)
    (site / "impatient.py").write_text("from mixedsite.settings import *  # noqa\nTABLEMIGRATE_BUSY_TIMEOUT = 0.5\n"
                                       "INSTALLED_APPS = [*INSTALLED_APPS, 'locker.apps.LockerConfig']\n")
    proc = manage(site, "tablemigrate", "run", "--noinput", check=False, DJANGO_SETTINGS_MODULE="impatient")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Django migration vendor.0003_more: the database stayed locked" in _one_error_line(proc)
    assert dump(db) == before


def test_migrate_is_run_and_refuses_owned_apps_django_migrations(site):
    """tablemigrate's `migrate` (issue 23) applies the vendor's migrations and the owned modules, as `run`."""
    db = site / "db.sqlite3"
    tm(site, "generate", "--noinput")
    names = applied(manage(site, "migrate").stdout)
    assert "vendor.0002_general_category" in names and sum("_create_shop_" in n for n in names) == 2
    assert rows(db, "SELECT name FROM vendor_category") == [("General",)]
    add_rows(site)
    djangos_makemigrations(site, "shop")  # the owned app gets a Django migrations folder
    assert (site / "shop" / "migrations" / "0001_initial.py").exists()
    before = dump(db)
    refused = manage(site, "migrate", check=False)  # Django's while shop has Django migrations: it refuses
    assert refused.returncode == 1 and "tablemigrate.W003" in refused.stderr  # the system check warned
    assert _one_error_line(refused).startswith("CommandError: tablemigrate owns app shop")
    assert dump(db) == before


def test_run_refuses_while_an_owned_app_has_django_migrations(site):
    db = site / "db.sqlite3"
    install(site)
    djangos_makemigrations(site, "shop")
    before = dump(db)
    refused = tm(site, "run", "--noinput", check=False)
    assert refused.returncode == 2 and "shop" in refused.stderr and "nothing was changed" in refused.stderr
    assert dump(db) == before


def test_a_refused_first_run_creates_no_database_file(site):
    djangos_makemigrations(site, "shop")  # an owned app with Django migrations: run refuses
    for leftover in site.glob("db.sqlite3*"):
        leftover.unlink()  # makemigrations' consistency check opened (and so created) it
    tm(site, "generate", "--noinput")
    refused = tm(site, "run", "--noinput", check=False)
    assert refused.returncode == 2 and "nothing was changed" in _one_error_line(refused)
    assert not list(site.glob("db.sqlite3*")) and not list(site.glob("*.lock"))


def test_a_database_django_built_without_a_migrations_directory_points_at_baseline(site):
    install(site)
    shutil.rmtree(site / "tablemigrations")
    rows(site / "db.sqlite3", "DROP TABLE tablemigrate_history")
    for command in ("run", "show", "generate"):  # never "create the first migrations with generate"
        proc = tm(site, command, "--noinput", check=False)
        assert proc.returncode == 2 and "adopt it with `manage.py tablemigrate baseline`" in _one_error_line(proc)
        assert "create the first migrations" not in proc.stderr
    assert not (site / "tablemigrations").exists()
    tm(site, "baseline", "--noinput")
    assert tm(site, "generate", "--check", "--noinput").stdout.strip() == "No changes detected"


def test_hooks_fire_for_a_real_run_and_never_for_a_dry_run(site):
    install(site)
    vendor_migration(site, "0003_more", BROKEN.format(atomic=True).replace('    raise RuntimeError("boom")\n', ""))
    (site / "probe.py").write_text(
        "import os\nimport django\nos.environ['DJANGO_SETTINGS_MODULE'] = 'mixedsite.settings'\ndjango.setup()\n"
        "from django.core.management import call_command\nfrom tablemigrate import signals\n"
        "from tablemigrate.project.djangoapps import DjangoMigration\nseen = []\n"
        "def hook(sender, name, **kwargs):\n    seen.append((sender is DjangoMigration, name))\n"
        "signals.pre_migration.connect(hook)\nsignals.post_migration.connect(hook)\n"
        "call_command('tablemigrate', 'run', '--dry-run', '--noinput')\nprint('dry', seen)\n"
        "call_command('tablemigrate', 'run', '--noinput')\nprint('real', seen)\n")
    proc = subprocess.run([sys.executable, "probe.py"], cwd=site, env=site_env(site), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "dry []" in lines
    assert "real [(True, 'vendor.0003_more'), (True, 'vendor.0003_more')]" in lines


def test_a_kept_test_database_built_from_the_models_follows_a_model_change(site):
    """Django's syncdb creates missing tables but never alters one: a kept test database would keep the
    old owned tables. They are rebuilt when the models' fingerprint differs from the recorded one."""
    test_db = site / "test.sqlite3"
    tm(site, "generate", "--noinput")

    def keepdb_tests(last_field: str) -> subprocess.CompletedProcess[str]:
        (site / "shop" / "test_fields.py").write_text(
            "from django.test import TestCase\n\nfrom shop.models import Item\n\n\n"
            "class FieldsTest(TestCase):\n    def test_fields(self):\n"
            f"        self.assertEqual(Item._meta.fields[-1].name, {last_field!r})\n"
            "        Item.objects.filter(pk=0).exists()  # a query on the table as the models see it\n")
        return manage(site, "test", "shop.test_fields", "--keepdb", check=False, MIXEDSITE_TEST_DB=str(test_db))

    assert keepdb_tests("owner").returncode == 0
    models = site / "shop" / "models.py"
    owner = '    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="items")\n'
    models.write_text(models.read_text().replace(owner, owner + "    price = models.IntegerField(default=0)\n"))
    tm(site, "generate", "--noinput")
    proc = keepdb_tests("price")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Using existing test database" in proc.stderr and "tablemigrate.W001" not in proc.stderr
    assert "price" in [r[1] for r in rows(test_db, "PRAGMA table_info(shop_item)")]
    assert rows(test_db, "SELECT count(*) FROM vendor_category WHERE name = 'General'") == [(1,)]  # vendor's kept
