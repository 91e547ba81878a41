"""Upgrading real packages, then ONE `tablemigrate run` (issue 12, "Upgrades").

A Wagtail site with django-allauth's accounts (tests/upgrade_site; its own app `journal` is tablemigrate's) is
deployed with the OLD releases, gets real rows through the ORM, then the NEW releases are pip-installed into this
same environment while the project changes one of its own models. One `run` must apply the packages' new Django
migrations, data steps included, then the project's new modules, and keep every row.

The packages' migrations between the two releases:
- Wagtail 7.0.10 -> 7.4.4: new tables (wagtailadmin 0006, wagtailcore 0095), new indexes (wagtailcore 0096/0097),
  a column with a default on a table with rows (wagtailusers 0015), a no-op on SQLite (wagtailsearch 0010).
  None has a data step.
- django-allauth 0.62.1 -> 65.21.1: account 0006 lower-cases every e-mail address (RunPython), 0007 swaps the
  UPPER(email) index for a plain one, 0008 keeps one primary address per user (RunPython, preferring the one
  equal to the user's e-mail), 0009 adds the partial unique constraint that 0008 prepared the rows for.

Every outcome is compared with the same site without tablemigrate, upgraded by Django's own `migrate` (the
reference), and the packages' schema with a database Django's `migrate` builds from scratch on the new releases.

Needs network-free pip access to both releases and a throw-away environment: `tox -e upgrade`. The test installs
the old releases first, so a rerun starts from the same place (the normal suite skips this file).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from . import helpers

pytestmark = pytest.mark.subprocess  # every test here starts the project's manage.py or a process

pytest.importorskip("wagtail")
pytest.importorskip("allauth")

SITE = Path(__file__).resolve().parent / "upgrade_site"
OLD = ["wagtail==7.0.10", "django-allauth==0.62.1"]
NEW = ["wagtail==7.4.4", "django-allauth==65.21.1"]
# What the new releases add, in the apps this site installs (read from the wheels: see the module docstring)
NEW_DJANGO_MIGRATIONS = {
    "wagtailadmin.0006_formstate",
    "wagtailcore.0095_groupsitepermission",
    "wagtailcore.0096_referenceindex_referenceindex_source_object_and_more",
    "wagtailcore.0097_baselogentry_uuid_action_timestamp_indexes",
    "wagtailsearch.0010_add_text_fields",
    "wagtailusers.0015_userprofile_keyboard_shortcuts",
    "account.0006_emailaddress_lower",
    "account.0007_emailaddress_idx_email",
    "account.0008_emailaddress_unique_primary_email_fixup",
    "account.0009_emailaddress_unique_primary_email",
}
OWNED_PREFIXES = ("journal_", "tablemigrate_")
# Tables a run legitimately adds rows to (its history, post_migrate's content types and permissions for the
# new models); every other table must come out with exactly the rows it went in with.
GROWING = {"django_migrations", "tablemigrate_history", "django_content_type", "auth_permission", "sqlite_sequence"}
# The two tables allauth's data steps rewrite (e-mail case, primary flag): compared with the reference instead.
REWRITTEN = {"account_emailaddress": {"email", "primary"}, "auth_user": {"email"}}


def pip_install(*requirements: str) -> None:
    """Into this very environment (the site runs in subprocesses of this interpreter); Django stays pinned."""
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           f"Django=={version('Django')}", *requirements],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def site_vars(db: Path, *, plain: bool = False, release: int = 1) -> dict[str, str]:
    """The site's settings read these: the database `db`, its modules and media beside it, the release of the
    project's own models, and (`plain`) the same site without tablemigrate."""
    found = {"UPGRADE_SITE_DB": str(db), "UPGRADE_SITE_MIGRATIONS_DIR": str(db.parent / "tablemigrations"),
             "UPGRADE_SITE_MEDIA": str(db.parent / "media"), "UPGRADE_SITE_RELEASE": str(release)}
    if plain:
        found["UPGRADE_SITE_PLAIN"] = "1"
    return found


def manage(db: Path, *args: str, plain: bool = False, release: int = 1,
           check: bool = True) -> subprocess.CompletedProcess[str]:
    """The site's manage.py (tests/helpers.py); PYTHONPATH the site, then the environment's own (the
    tablemigrate and the packages it installed)."""
    return helpers.manage(SITE, *args, prefix="UPGRADE_SITE", path=[p for p in [os.environ.get("PYTHONPATH")] if p],
                          check=check, timeout=600, **site_vars(db, plain=plain, release=release))


def orm(db: Path, code: str, **kw) -> dict:
    """Run `code` in `manage.py shell -c`; it ends by printing one JSON object, returned here."""
    out = manage(db, "shell", "-c", code, **kw).stdout
    return json.loads(out.strip().splitlines()[-1])


def query(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def tables(db: Path) -> list[str]:
    return [n for (n,) in query(db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]


def contents(db: Path) -> dict[str, tuple[list[str], list[tuple]]]:
    """Every table: its columns and its rows, sorted (a rebuilt table need not keep the physical order)."""
    found = {}
    for t in tables(db):
        columns = [r[1] for r in query(db, f'PRAGMA table_info("{t}")')]
        found[t] = (columns, sorted(query(db, f'SELECT * FROM "{t}"'), key=repr))
    return found


def rows_of(db: Path, table: str, columns: list[str]) -> list[tuple]:
    cols = ", ".join(f'"{c}"' for c in columns)
    return sorted(query(db, f'SELECT {cols} FROM "{table}"'), key=repr)


def schema(db: Path, names: set[str]) -> dict[str, dict]:
    """What SQLite says of each table: columns, indexes (with their columns and partial flag), foreign keys,
    triggers."""
    found = {}
    for t in sorted(names):
        indexes = []
        for _seq, name, unique, origin, partial in query(db, f'PRAGMA index_list("{t}")'):
            cols = [r[2] for r in query(db, f'PRAGMA index_xinfo("{name}")') if r[5]]  # key columns only
            indexes.append((name, unique, origin, partial, cols))
        found[t] = {
            "columns": query(db, f'PRAGMA table_info("{t}")'),
            "indexes": sorted(indexes, key=repr),
            "foreign_keys": sorted(query(db, f'PRAGMA foreign_key_list("{t}")'), key=repr),
            "triggers": sorted(query(db, "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' "
                                         f"AND tbl_name = '{t}'")),
        }
    return found


def package_tables(db: Path) -> set[str]:
    return {t for t in tables(db) if not t.startswith(OWNED_PREFIXES) and not t.startswith("sqlite_")}


def applied_lines(out: str) -> list[str]:
    return re.findall(r"^Applied (\S+)", out, flags=re.M)


# Rows a site has after some use. Ann has two primary addresses (allowed before account 0009) and the one
# equal to her User.email is the SECOND (0008 must prefer it over the first); Bob and Carol share an
# unverified address in different cases (equal once lower-cased, which 0009 allows); every address has
# capitals somewhere.
ROWS = """
import json
from django.apps import apps
from django.contrib.auth import get_user_model
from allauth.account.models import EmailAddress
from taggit.models import Tag, TaggedItem
from wagtail.models import Collection, Page
from wagtail.users.models import UserProfile
User = get_user_model()
ann = User.objects.create_user("ann", email="Ann@Example.COM", password="x")
bob = User.objects.create_user("bob", email="BOB@example.com", password="x")
carol = User.objects.create_user("carol", email="carol@Example.com", password="x")
EmailAddress.objects.create(user=ann, email="Ann.Work@Example.com", verified=False, primary=True)
EmailAddress.objects.create(user=ann, email="Ann@Example.COM", verified=True, primary=True)
EmailAddress.objects.create(user=bob, email="BOB@example.com", verified=True, primary=True)
EmailAddress.objects.create(user=bob, email="Shared@Example.com", verified=False, primary=False)
EmailAddress.objects.create(user=carol, email="shared@EXAMPLE.com", verified=False, primary=False)
EmailAddress.objects.create(user=carol, email="carol@Example.com", verified=True, primary=True)
EXTRA
for user in (ann, bob):
    UserProfile.get_for_user(user)  # wagtailusers 0015 adds a column with a default to this table
TaggedItem.objects.create(tag=Tag.objects.create(name="Upgrade"), content_object=bob)
Collection.get_first_root_node().add_child(name="Photos")
root = Page.get_first_root_node()
owned = apps.is_installed("journal")
if owned:
    from journal.models import ArticlePage, Bookmark
for n in range(3):
    fields = dict(title=f"Article {n}", slug=f"article-{n}")
    page = root.add_child(instance=ArticlePage(intro=f"intro {n}", **fields) if owned else Page(**fields))
    page.save_revision(user=ann).publish()  # revisions, log entries, reference index rows
    if owned:
        Bookmark.objects.create(user=ann if n % 2 else bob, page=page, note=f"note {n}")
print(json.dumps({"pages": Page.objects.count()}))
"""
# Two users holding verified addresses that differ only in case: account 0006's lower-casing then breaks the
# unique constraint on verified addresses (from account 0003). The upgrade cannot go through with these rows.
CONFLICT = ('EmailAddress.objects.create(user=bob, email="dana@example.com", verified=True, primary=False)\n'
            'EmailAddress.objects.create(user=carol, email="Dana@Example.com", verified=True, primary=False)')


@pytest.fixture(scope="module")
def upgrade(tmp_path_factory):
    """The whole flow; each test below reads one part of its record."""
    base = tmp_path_factory.mktemp("upgrade")
    dbs = {k: base / k / "db.sqlite3" for k in ("ours", "django", "ours_conflict", "django_conflict", "fresh")}
    for db in dbs.values():
        db.parent.mkdir()
    rec: dict = {"dbs": dbs}

    # (0) the old releases, whatever a previous run of this test left installed
    pip_install(*OLD)

    # (1) first deploy on the old releases: tablemigrate's generate + run; the reference: plain `migrate`
    for key in ("ours", "ours_conflict"):
        manage(dbs[key], "tablemigrate", "generate", "--noinput")
        manage(dbs[key], "tablemigrate", "run", "--noinput")
    for key in ("django", "django_conflict"):
        manage(dbs[key], "migrate", "--noinput", plain=True)
    for key in dbs.keys() - {"fresh"}:
        extra = CONFLICT if key.endswith("conflict") else ""
        orm(dbs[key], ROWS.replace("EXTRA", extra), plain=key.startswith("django"))
        rec[f"before_{key}"] = contents(dbs[key])
    for key in ("ours", "ours_conflict"):
        rec[f"old_modules_{key}"] = sorted(p.name for p in (dbs[key].parent / "tablemigrations").glob("2*.py"))

    # (2) the upgrade: new releases into this environment; the project's release 2 changes its own models
    pip_install(*NEW)
    for key in ("ours", "ours_conflict"):
        rec[f"generate_{key}"] = manage(dbs[key], "tablemigrate", "generate", "--noinput", release=2)
    rec["show"] = manage(dbs["ours"], "tablemigrate", "show", "--no-sql", release=2)

    # (3) ONE run; the reference upgraded by Django's `migrate`; a fresh database on the new releases
    rec["run"] = manage(dbs["ours"], "tablemigrate", "run", "--noinput", release=2, check=False)
    rec["after_ours"] = contents(dbs["ours"])  # before any test writes to it
    rec["migrate"] = manage(dbs["django"], "migrate", "--noinput", plain=True, check=False)
    manage(dbs["fresh"], "migrate", "--noinput", plain=True)
    rec["run_conflict"] = manage(dbs["ours_conflict"], "tablemigrate", "run", "--noinput", release=2, check=False)
    rec["migrate_conflict"] = manage(dbs["django_conflict"], "migrate", "--noinput", plain=True, check=False)
    return rec


def test_one_run_applies_the_packages_new_migrations_then_the_owned_module(upgrade):
    run = upgrade["run"]
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    applied = applied_lines(run.stdout)
    new_modules = sorted(set(p.name[:-3] for p in (upgrade["dbs"]["ours"].parent / "tablemigrations").glob("2*.py"))
                         - {n[:-3] for n in upgrade["old_modules_ours"]})
    assert new_modules and all("journal" in m for m in new_modules), upgrade["generate_ours"].stdout
    django_part = [a for a in applied if "." in a]
    assert set(django_part) == NEW_DJANGO_MIGRATIONS, applied
    assert applied == django_part + new_modules, applied  # the packages first, then the project's modules
    # allauth's in their own order, data steps included (Django's dependency order)
    assert [a for a in applied if a.startswith("account.")] == sorted(n for n in NEW_DJANGO_MIGRATIONS
                                                                     if n.startswith("account."))
    # `show` listed both kinds before the run
    shown = upgrade["show"].stdout
    assert {f"django: {n}" for n in NEW_DJANGO_MIGRATIONS} <= set(re.findall(r"\[ \] (django: \S+)", shown)), shown
    assert all(f"[ ] {m}" in shown for m in new_modules), shown
    db = upgrade["dbs"]["ours"]
    recorded = {f"{a}.{n}" for a, n in query(db, "SELECT app, name FROM django_migrations")}
    assert NEW_DJANGO_MIGRATIONS <= recorded
    assert query(db, "SELECT count(*) FROM django_migrations WHERE app = 'journal'") == [(0,)]


def test_every_row_is_kept(upgrade):
    before, after = upgrade["before_ours"], upgrade["after_ours"]
    assert upgrade["run"].returncode == 0
    assert set(before) <= set(after)

    def project(content: tuple[list[str], list[tuple]], kept: list[str]) -> list[tuple]:
        columns, rows = content
        return sorted((tuple(r[columns.index(c)] for c in kept) for r in rows), key=repr)

    for table, (columns, _rows) in before.items():
        kept = [c for c in columns if c not in REWRITTEN.get(table, ())]
        was, now = project(before[table], kept), project(after[table], kept)
        if table == "sqlite_sequence":  # the counters of growing tables move on: only the names are kept
            assert {r[0] for r in was} <= {r[0] for r in now}
        elif table in GROWING:
            assert set(was) <= set(now), table
        else:
            assert now == was, table
    # the flow's rows are really there: Wagtail's root and welcome page plus three articles, their bookmarks
    assert len(before["wagtailcore_page"][1]) == 5 and len(before["journal_bookmark"][1]) == 3
    assert len(before["account_emailaddress"][1]) == 6 and len(before["wagtailcore_revision"][1]) >= 3


def test_new_columns_give_existing_rows_their_defaults(upgrade):
    db = upgrade["dbs"]["ours"]
    assert upgrade["run"].returncode == 0
    # the package's AddField (wagtailusers 0015, default True) and the project's (subtitle, default "(none)")
    assert query(db, "SELECT keyboard_shortcuts FROM wagtailusers_userprofile") == [(1,), (1,)]
    assert sorted(query(db, "SELECT intro, subtitle FROM journal_articlepage")) == [
        (f"intro {n}", "(none)") for n in range(3)]
    found = orm(db, """
import json
from allauth.account.models import EmailAddress
from journal.models import ArticlePage, Subscription
from wagtail.models import GroupSitePermission, Page
address = EmailAddress.objects.get(email="ann@example.com")
page = ArticlePage.objects.get(slug="article-1")
Subscription.objects.create(address=address, page=page)
child = Page.get_first_root_node().add_child(instance=ArticlePage(title="After", slug="after", subtitle="new"))
print(json.dumps({
    "subscriptions": list(Subscription.objects.values_list("address__user__username", "page__title")),
    "child": [child.depth, ArticlePage.objects.get(slug="after").subtitle],
    "site_permissions": GroupSitePermission.objects.count(),
}))
""", release=2)
    assert found == {"subscriptions": [["ann", "Article 1"]], "child": [2, "new"], "site_permissions": 0}


def test_allauths_data_steps_give_the_same_rows_as_djangos_migrate(upgrade):
    ours, django = upgrade["dbs"]["ours"], upgrade["dbs"]["django"]
    assert upgrade["run"].returncode == 0
    assert upgrade["migrate"].returncode == 0, upgrade["migrate"].stdout[-3000:] + upgrade["migrate"].stderr
    addresses = "SELECT id, user_id, email, verified, \"primary\" FROM account_emailaddress ORDER BY id"
    users = "SELECT id, username, email FROM auth_user ORDER BY id"
    assert query(ours, addresses) == query(django, addresses)
    assert query(ours, users) == query(django, users)
    # what the data steps did: every address lower-cased (0006, User.email too), Ann's extra primary address
    # demoted in favour of the one equal to her e-mail (0008)
    assert query(ours, addresses) == [
        (1, 1, "ann.work@example.com", 0, 0),
        (2, 1, "ann@example.com", 1, 1),
        (3, 2, "bob@example.com", 1, 1),
        (4, 2, "shared@example.com", 0, 0),
        (5, 3, "shared@example.com", 0, 0),
        (6, 3, "carol@example.com", 1, 1),
    ]
    assert query(ours, users) == [(1, "ann", "ann@example.com"), (2, "bob", "bob@example.com"),
                                  (3, "carol", "carol@example.com")]


def test_the_packages_schema_is_the_one_djangos_migrate_makes(upgrade):
    ours, django, fresh = (upgrade["dbs"][k] for k in ("ours", "django", "fresh"))
    assert upgrade["run"].returncode == 0 and upgrade["migrate"].returncode == 0
    names = package_tables(fresh)
    assert package_tables(ours) == names == package_tables(django)
    assert schema(ours, names) == schema(fresh, names)
    assert schema(ours, names) == schema(django, names)
    # the same statements: tablemigrate ran the packages' migrations through Django's executor
    sql = "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE tbl_name IN ({}) ORDER BY type, name"
    listed = ", ".join(f"'{n}'" for n in sorted(names))
    assert query(ours, sql.format(listed)) == query(django, sql.format(listed))
    index = [r for r in schema(ours, {"account_emailaddress"})["account_emailaddress"]["indexes"]
             if r[0] == "unique_primary_email"]
    assert index == [("unique_primary_email", 1, "c", 1, ["user_id", "primary"])]


def test_afterwards_generate_check_is_clean_show_has_no_drift_and_a_second_run_has_nothing_to_do(upgrade):
    db = upgrade["dbs"]["ours"]
    assert upgrade["run"].returncode == 0
    check = manage(db, "tablemigrate", "generate", "--check", "--noinput", release=2)
    assert check.stdout.strip() == "No changes detected"
    shown = manage(db, "tablemigrate", "show", release=2)
    assert "Drift" not in shown.stdout and "[ ]" not in shown.stdout, shown.stdout
    history = query(db, "SELECT name FROM tablemigrate_history ORDER BY name")
    recorded = query(db, "SELECT app, name FROM django_migrations ORDER BY id")
    again = manage(db, "tablemigrate", "run", "--noinput", release=2)
    assert again.stdout.strip() == "No migrations to apply."
    assert query(db, "SELECT name FROM tablemigrate_history ORDER BY name") == history
    assert query(db, "SELECT app, name FROM django_migrations ORDER BY id") == recorded
    # Django agrees nothing is pending, and tablemigrate's system checks have nothing to say
    assert manage(db, "migrate", "--check", release=2).returncode == 0
    assert "tablemigrate." not in manage(db, "check", release=2).stderr


def test_rows_the_data_step_cannot_fix_fail_the_run_as_they_fail_djangos_migrate(upgrade):
    """Two verified addresses that differ only in case: 0006's lower-casing violates account 0003's unique
    constraint on verified addresses. Django's `migrate` and tablemigrate's `run` both stop at 0006 with that
    IntegrityError, in one line for `run`, and the address rows end the same: untouched."""
    run, migrate = upgrade["run_conflict"], upgrade["migrate_conflict"]
    ours, django = upgrade["dbs"]["ours_conflict"], upgrade["dbs"]["django_conflict"]
    assert migrate.returncode == 1 and "UNIQUE constraint failed: account_emailaddress.email" in migrate.stderr
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    line = run.stderr.strip().splitlines()[-1]
    assert line.startswith("CommandError: Django migration account.0006_emailaddress_lower failed: IntegrityError: "
                           "UNIQUE constraint failed: account_emailaddress.email"), run.stderr
    addresses = "SELECT id, user_id, email, verified, \"primary\" FROM account_emailaddress ORDER BY id"
    assert query(ours, addresses) == query(django, addresses)
    columns, rows = upgrade["before_ours_conflict"]["account_emailaddress"]
    assert rows_of(ours, "account_emailaddress", columns) == rows  # not one address lower-cased
    for db in (ours, django):
        recorded = {f"{a}.{n}" for a, n in query(db, "SELECT app, name FROM django_migrations")}
        assert "account.0006_emailaddress_lower" not in recorded
    # the project's new modules were not started: the packages' migrations come first
    assert query(ours, "SELECT name FROM tablemigrate_history ORDER BY name") == [
        (n[:-3],) for n in upgrade["old_modules_ours_conflict"]]


def test_rows_the_data_step_cannot_fix_fail_the_run_and_the_backup_is_restored(upgrade):
    """Issue 12: 'A failure anywhere restores both'. The failed run must leave the database exactly as it was
    before it: no Wagtail migration of the upgrade applied, every row as it was."""
    run, ours = upgrade["run_conflict"], upgrade["dbs"]["ours_conflict"]
    assert run.returncode == 1
    # Restored when a migration of the run had committed before the failing one; else nothing changed.
    restored = "the database was restored from backup" in run.stderr
    assert restored == ("Applied " in run.stdout), run.stdout + run.stderr
    assert restored or "rolled back, the database is unchanged" in run.stderr, run.stderr
    assert contents(ours) == upgrade["before_ours_conflict"]
