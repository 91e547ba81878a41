"""A new Wagtail 7 site end to end (issue 12), through the site's own manage.py in separate processes.

The site (tests/wagtail_site) is what `wagtail start` makes, plus "tablemigrate" in INSTALLED_APPS and nothing
else about migrations. Its own app `home` (HomePage inherits from Wagtail's Page; Bookmark points at auth.User)
is tablemigrate's; Wagtail, taggit and Django's contrib apps keep their Django migrations, data steps included.
One `tablemigrate run` must leave a site Wagtail can work with: root page, default site, root collection, default
locale. Needs wagtail installed: `tox -e wagtail` (the normal suite skips this file).
"""

from __future__ import annotations

import json
import os
import runpy
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

import pytest

from . import helpers
from .helpers import project_env

pytestmark = pytest.mark.subprocess  # every test here starts the project's manage.py or a process

pytest.importorskip("wagtail")

SITE = Path(__file__).resolve().parent / "wagtail_site"
OWNED_PREFIX = "home_"


PATH = [p for p in [os.environ.get("PYTHONPATH")] if p]  # the environment's own: the tablemigrate it installed


def site_vars(tmp: Path, db: str = "db.sqlite3") -> dict[str, str]:
    """The site's settings read its database, modules and media from these: all in `tmp`."""
    return {"WAGTAIL_SITE_DB": str(tmp / db), "WAGTAIL_SITE_MIGRATIONS_DIR": str(tmp / "tablemigrations"),
            "WAGTAIL_SITE_MEDIA": str(tmp / "media")}


def manage(tmp: Path, *args: str, check: bool = True, db: str = "db.sqlite3", path: Iterable[Path] = (),
           **env: str) -> subprocess.CompletedProcess[str]:
    """The site's manage.py (tests/helpers.py) on `site_vars(tmp, db)`; PYTHONPATH the site, PATH, `path`."""
    return helpers.manage(SITE, *args, prefix="WAGTAIL_SITE", path=[*PATH, *path], check=check, timeout=300,
                          **site_vars(tmp, db), **env)


def orm(tmp: Path, code: str) -> dict:
    """Run `code` in `manage.py shell -c`; it ends by printing one JSON object, returned here."""
    out = manage(tmp, "shell", "-c", code).stdout
    return json.loads(out.strip().splitlines()[-1])


def rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A fresh site's first `generate`: (the temporary directory, its output)."""
    tmp = tmp_path_factory.mktemp("wagtail_site")
    return tmp, manage(tmp, "tablemigrate", "generate", "--noinput")


@pytest.fixture(scope="module")
def site(generated):
    """Then ONE `run` on the fresh database: the state a new site is in after its first deploy."""
    tmp, _ = generated
    return tmp, manage(tmp, "tablemigrate", "run", "--noinput")


def test_one_run_gives_wagtails_initial_data(site):
    tmp, _ = site
    found = orm(tmp, """
import json
from django.contrib.auth.models import Group, Permission
from wagtail.models import Collection, Locale, Page, Site
root = Page.get_first_root_node()
site = Site.objects.get(is_default_site=True)
collection = Collection.get_first_root_node()
print(json.dumps({
    "root": [root.depth, root.path, root.title],
    "site": [site.hostname, site.port, site.root_page.get_parent().id == root.id],
    "collection": [collection.depth, collection.name],
    "locale": Locale.get_default().language_code,
    "groups": sorted(Group.objects.values_list("name", flat=True)),
    "admin_access": Permission.objects.filter(content_type__app_label="wagtailadmin",
                                              codename="access_admin").count(),
    "home_perms": sorted(Permission.objects.filter(content_type__app_label="home")
                         .values_list("codename", flat=True)),
}))
""")
    assert found["root"] == [1, "0001", "Root"]
    assert found["site"] == ["localhost", 80, True]
    assert found["collection"] == [1, "Root"]
    assert found["locale"] == "en"
    assert found["groups"] == ["Editors", "Moderators"]  # Wagtail's data step in auth's table
    assert found["admin_access"] == 1
    # post_migrate ran for the owned app too, as after `migrate`: the Wagtail admin needs these
    assert {"add_homepage", "change_homepage", "add_bookmark"} <= set(found["home_perms"])
    db = tmp / "db.sqlite3"
    assert ("wagtailcore", "0002_initial_data") in rows(db, "SELECT app, name FROM django_migrations")
    assert rows(db, "SELECT count(*) FROM django_migrations WHERE app = 'home'") == [(0,)]
    # Wagtail's own SQL (wagtailsearch 0006_customise_indexentry) made the FTS5 table and its triggers
    fts = rows(db, "SELECT sql FROM sqlite_master WHERE name = 'wagtailsearch_indexentry_fts'")
    assert len(fts) == 1 and "VIRTUAL TABLE" in fts[0][0].upper()
    assert rows(db, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' "
                    "AND tbl_name = 'wagtailsearch_indexentry'") == [(3,)]


def test_a_page_of_the_own_app_is_created_under_the_root_and_served(site):
    tmp, _ = site
    found = orm(tmp, """
import json
from django.contrib.auth import get_user_model
from django.test import Client
from wagtail.models import Page, Site
from home.models import Bookmark, HomePage
root = Page.get_first_root_node()
page = root.add_child(instance=HomePage(title="Hello Wagtail", slug="hello", intro="from tablemigrate"))
page.save_revision().publish()
site = Site.objects.get(is_default_site=True)
site.root_page = page
site.save()
ann = get_user_model().objects.create_user("ann", password="x")
Bookmark.objects.create(user=ann, page=page, note="mine")
back = HomePage.objects.get(slug="hello")
response = Client().get("/", HTTP_HOST="localhost")
print(json.dumps({
    "page": [back.title, back.intro, back.depth, back.get_parent().id == root.id, back.live, back.url_path],
    "as_page": Page.objects.get(id=back.id).specific_class.__name__,
    "bookmark": list(Bookmark.objects.values_list("user__username", "page__title", "note")),
    "served": [response.status_code, "Hello Wagtail" in response.content.decode()],
}))
""")
    assert found["page"] == ["Hello Wagtail", "from tablemigrate", 2, True, True, "/hello/"]
    assert found["as_page"] == "HomePage"
    assert found["bookmark"] == [["ann", "Hello Wagtail", "mine"]]
    assert found["served"] == [200, True]
    db = tmp / "db.sqlite3"
    assert rows(db, "PRAGMA foreign_key_check") == []


def test_the_generated_modules_create_only_the_own_apps_tables(generated):
    tmp, out = generated
    written = _tables_written_by_modules(tmp / "tablemigrations")
    assert {"home_homepage", "home_bookmark"} <= written
    assert sorted(t for t in written if not t.startswith(OWNED_PREFIX)) == []
    assert "wagtailcore_" not in out.stdout and "auth_" not in out.stdout, out.stdout  # no module for them


def test_after_the_run_generate_check_is_clean_and_a_second_run_has_nothing_to_do(site):
    tmp, _ = site
    db = tmp / "db.sqlite3"
    before = rows(db, "SELECT app, name FROM django_migrations ORDER BY id")
    history = rows(db, "SELECT name FROM tablemigrate_history ORDER BY name")
    assert history and all("_home_" in name for (name,) in history), history  # only the owned app's modules
    assert manage(tmp, "tablemigrate", "generate", "--check", "--noinput").stdout.strip() == "No changes detected"
    again = manage(tmp, "tablemigrate", "run", "--noinput")
    assert "Applied" not in again.stdout, again.stdout
    assert rows(db, "SELECT app, name FROM django_migrations ORDER BY id") == before
    assert rows(db, "SELECT name FROM tablemigrate_history ORDER BY name") == history
    assert manage(tmp, "tablemigrate", "show").returncode == 0
    assert "Drift" not in manage(tmp, "tablemigrate", "show").stdout


def test_show_and_dry_run_on_a_fresh_database_list_both_kinds(tmp_path):
    """Before the first deploy: Wagtail's Django migrations and the owned app's modules, neither applied.
    (taggit 0006 renames an index it finds by introspection, so its SQL cannot be shown before the tables
    exist; `show` must say so, not fail.)"""
    manage(tmp_path, "tablemigrate", "generate", "--noinput")
    shown = manage(tmp_path, "tablemigrate", "show", check=False)
    assert shown.returncode == 0, shown.stdout[-2000:] + shown.stderr[-3000:]
    assert "wagtailcore.0054_initial_locale" in shown.stdout and "create_home_homepage" in shown.stdout
    dry = manage(tmp_path, "tablemigrate", "run", "--dry-run", "--noinput")
    assert "wagtailcore.0054_initial_locale" in dry.stdout and "create_home_homepage" in dry.stdout
    assert not (tmp_path / "db.sqlite3").exists()


def test_the_test_database_has_wagtails_initial_data_under_both_runners(tmp_path):
    """Django's test runner and pytest-django build the test database: Wagtail's apps by their migrations
    (with their data steps), the owned app from its models. (Django's own `migrate` cannot render HomePage's
    state: it inherits from a model of an app with migrations.)"""
    proc = manage(tmp_path, "test", "home", "-v", "1")
    assert "Ran 1 test" in proc.stderr and "OK" in proc.stderr, proc.stderr
    pytest_run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--ds=wagtail_site.settings",
         "--rootdir", str(SITE), "-c", os.devnull, "home/tests.py"],
        cwd=SITE, env=project_env(SITE, "WAGTAIL_SITE", path=PATH, **site_vars(tmp_path)), capture_output=True,
        text=True, timeout=300)
    assert pytest_run.returncode == 0 and "1 passed" in pytest_run.stdout, pytest_run.stdout + pytest_run.stderr


OWN_ALL = ("from wagtail_site.settings import *  # noqa\n"
           "from tablemigrate.coexist import DjangoMigrationsDisabled\n"
           "MIGRATION_MODULES = DjangoMigrationsDisabled()\n")


def test_a_site_adopted_the_01_way_keeps_wagtails_fts5_search_index(tmp_path):
    """Issue 22, item 9: a database whose Wagtail search index Wagtail's migration made (an FTS5 virtual table
    that SQLiteFTSIndexEntry stands for, and the triggers on wagtailsearch_indexentry that fill it), adopted
    by `baseline` when the project owns every app the 0.1 way: the history carries the virtual table, so
    `generate` writes no CREATE TABLE for it, and a new database built by `run` has a working index."""
    manage(tmp_path, "tablemigrate", "generate", "--noinput")
    manage(tmp_path, "tablemigrate", "run", "--noinput")  # Wagtail's own migrations make the index
    shutil.rmtree(tmp_path / "tablemigrations")
    rows(tmp_path / "db.sqlite3", "DROP TABLE tablemigrate_history")
    (tmp_path / "own_all_settings.py").write_text(OWN_ALL)

    def own_all(*args: str, db: str = "db.sqlite3", check: bool = True) -> subprocess.CompletedProcess[str]:
        return manage(tmp_path, "tablemigrate", *args, db=db, check=check, path=[tmp_path],
                      DJANGO_SETTINGS_MODULE="own_all_settings")

    own_all("baseline", "--noinput")
    generated = own_all("generate", "--check", "--noinput", check=False)
    assert (generated.returncode, generated.stdout.strip()) == (0, "No changes detected"), generated.stdout
    own_all("run", "--noinput", db="fresh.sqlite3")
    fresh = sqlite3.connect(tmp_path / "fresh.sqlite3", isolation_level=None)
    try:
        [(sql,)] = fresh.execute("SELECT sql FROM sqlite_master WHERE name = 'wagtailsearch_indexentry_fts'")
        assert sql.startswith("CREATE VIRTUAL TABLE")
        fresh.execute("INSERT OR IGNORE INTO django_content_type (app_label, model) VALUES ('home', 'homepage')")
        fresh.execute("INSERT INTO wagtailsearch_indexentry (content_type_id, object_id, title_norm, title, body, "
                      "autocomplete) SELECT id, '1', 1.0, 'Hello Wagtail', 'a searchable body', '' FROM "
                      "django_content_type WHERE model = 'homepage'")
        assert fresh.execute("SELECT title FROM wagtailsearch_indexentry_fts WHERE wagtailsearch_indexentry_fts "
                             "MATCH 'searchable'").fetchall() == [("Hello Wagtail",)]
    finally:
        fresh.close()


def _tables_written_by_modules(directory: Path) -> set[str]:
    """Every table the modules' `up` steps create, alter, index or write, as SQLite's authorizer reports them
    while the steps run, in order, on an empty database (the modules must not need any other table)."""
    actions = {sqlite3.SQLITE_CREATE_TABLE: 0, sqlite3.SQLITE_CREATE_INDEX: 1, sqlite3.SQLITE_DROP_TABLE: 0,
               sqlite3.SQLITE_ALTER_TABLE: 1, sqlite3.SQLITE_INSERT: 0, sqlite3.SQLITE_UPDATE: 0,
               sqlite3.SQLITE_DELETE: 0, sqlite3.SQLITE_CREATE_TRIGGER: 1, sqlite3.SQLITE_CREATE_VTABLE: 0}
    written: set[str] = set()

    def authorizer(action, arg1, arg2, _db, _trigger):
        if action in actions:
            name = (arg1, arg2)[actions[action]]
            if name and not name.startswith("sqlite_"):
                written.add(name)
        return sqlite3.SQLITE_OK

    modules = sorted(p for p in directory.glob("*.py") if not p.name.startswith("__"))
    assert modules, f"no modules in {directory}"
    conn = sqlite3.connect(":memory:")
    conn.set_authorizer(authorizer)
    try:
        for module in modules:
            for step in runpy.run_path(str(module))["up"]:
                assert isinstance(step, str), f"{module.name}: a step that is not SQL: {step!r}"
                conn.execute(step)
    finally:
        conn.close()
    return written
