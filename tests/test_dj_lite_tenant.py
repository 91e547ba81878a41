"""dj-lite-tenant's per-user databases migrated by tablemigrate (issue 26), end to end.

The fixture project tests/djltsite is dj-lite-tenant's README set-up (users in `default`, the app `notes`
in one database per user, created at run time) plus tablemigrate's recipe: an alias `tenant` whose NAME
lies in DJ_LITE_TENANT["DIR"] (dj-lite-tenant's router gives it the tenant apps), a history per alias, and
the tenant files as the fleet of `tenant`. A user signs up: dj-lite-tenant registers `tenant_<pk>` and
calls `migrate --database tenant_<pk>`, which tablemigrate's `migrate` makes a `run` of the tenant history
on the new file (tests/test_fleet_runtime_aliases.py has the rule in process). A model change of `notes`
(a rebuild) is generated for `tenant` and `run --all-databases --jobs 2` migrates every tenant, rows
intact; the application reads and writes through dj-lite-tenant's `tenant_db()`.

dj-lite-tenant needs Python >= 3.11 and Django >= 5.1 (installed by the `djlt` extra, and by
`tox -e py312-django52-djlt`); without it the file is skipped. Every test works on a copy of the project,
through its manage.py in subprocesses.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.helpers import ROOT, copy_fixture_site
from tests.helpers import manage as site_manage

pytest.importorskip("dj_lite_tenant", reason="dj-lite-tenant is not installed (Python >= 3.11, Django >= 5.1: "
                                              "pip install -e '.[djlt]' or tox -e py312-django52-djlt)")

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

#: Users sign up (dj-lite-tenant makes each one's database), each writes a note in it; then every user's
#: notes, through tenant_db(): {username: [[text, pinned or None], ...]} on the last line.
SIGN_UP_AND_READ = """
import json, os
from django.contrib.auth import get_user_model
from dj_lite_tenant.middleware import tenant_db
from notes.models import Note
User = get_user_model()
pinned = hasattr(Note, "pinned")
for name in filter(None, os.environ["DJLTSITE_NEW_USERS"].split(",")):
    user = User.objects.create(username=name)
    with tenant_db(user):
        Note.objects.create(user=user, text=f"by {name}", **({"pinned": True} if pinned else {}))
found = {}
for user in User.objects.order_by("pk"):
    with tenant_db(user):
        found[user.username] = [[n.text, getattr(n, "pinned", None)] for n in Note.objects.order_by("pk")]
print(json.dumps(found))
"""

#: The model change: `text` may be NULL (SQLite rebuilds the table for it) and a new column.
NOTE_CHANGED = ("    text = models.TextField(null=True)\n"
                "    pinned = models.BooleanField(default=False)\n")


def manage(site: Path, *args: str, template: bool = False, **extra: str):
    """The project's manage.py; `template`: with dj-lite-tenant's USE_DATABASE_TEMPLATE."""
    return site_manage(site, *args, prefix="DJLTSITE", DJLTSITE_TEMPLATE="1" if template else "0", **extra)


def users_and_notes(site: Path, *new_users: str, template: bool = False) -> dict[str, list]:
    """New users sign up and each writes a note; every user's notes as the application reads them."""
    proc = manage(site, "shell", "-c", SIGN_UP_AND_READ, template=template, DJLTSITE_NEW_USERS=",".join(new_users))
    return json.loads(proc.stdout.strip().splitlines()[-1])


def history(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return [r[0].split("_", 3)[-1] for r in conn.execute("SELECT name FROM tablemigrate_history ORDER BY id")]
    finally:
        conn.close()


@pytest.fixture
def site(tmp_path):
    """The project copied, its two histories generated and `default` built by `run --all-databases`."""
    site = copy_fixture_site(ROOT / "tests" / "djltsite", tmp_path)
    (site / "db" / "tenants").mkdir(parents=True)
    # Without --database, each history: default's (no owned table changed) and the tenant's first module.
    out = manage(site, "tablemigrate", "generate", "--noinput").stdout
    assert "database 'default'" in out and "No changes detected" in out and "create table notes_note" in out
    assert "No changes detected" in manage(site, "tablemigrate", "generate", "--database", "tenant",
                                           "--noinput").stdout
    assert manage(site, "tablemigrate", "run", "--all-databases", "--noinput").stdout.splitlines()[-1] == \
        "1 database: 1 migrated"  # default only: no tenant yet, and `tenant`'s own file is no member
    return site


@pytest.mark.parametrize("template", [False, True], ids=["migrate", "template"])
def test_tenants_made_at_sign_up_follow_a_model_change_through_run_all_databases(site, template):
    tenants = site / "db" / "tenants"
    # Sign-up: dj-lite-tenant's setup_tenant_db calls `migrate --database tenant_<pk>` on a new file
    # (with USE_DATABASE_TEMPLATE the second one is a copy of the first).
    assert users_and_notes(site, "ann", "bob", template=template) == {"ann": [["by ann", None]],
                                                                      "bob": [["by bob", None]]}
    assert sorted(p.name for p in tenants.glob("tenant_*.sqlite3")) == ["tenant_1.sqlite3", "tenant_2.sqlite3"]
    assert (tenants / ".template.sqlite3").exists() == template
    assert history(tenants / "tenant_1.sqlite3") == history(tenants / "tenant_2.sqlite3") == ["create_notes_note"]

    models = site / "notes" / "models.py"
    models.write_text(models.read_text().replace("    text = models.TextField()\n", NOTE_CHANGED))
    generated = manage(site, "tablemigrate", "generate", "--database", "tenant", "--noinput").stdout
    assert "rebuild table" in generated
    assert "No changes detected" in manage(site, "tablemigrate", "generate", "--noinput").stdout

    ran = manage(site, "tablemigrate", "run", "--all-databases", "--jobs", "2", "--noinput", "--format", "json",
                 template=template)
    assert {d["name"]: d["status"] for d in json.loads(ran.stdout)["databases"]} == {
        "default": "current", "tenant:db/tenants/tenant_1.sqlite3": "migrated",
        "tenant:db/tenants/tenant_2.sqlite3": "migrated"}
    assert history(tenants / "tenant_1.sqlite3") == ["create_notes_note", "update_notes_note"]

    # Rows intact and the new column there; a user signing up now gets the current schema (the template,
    # if any, was dropped by the run's post_migrate and made again from a migrated database).
    assert users_and_notes(site, "cat", template=template) == {
        "ann": [["by ann", False]], "bob": [["by bob", False]], "cat": [["by cat", True]]}
    assert history(tenants / "tenant_3.sqlite3") == ["create_notes_note", "update_notes_note"]
    shown = manage(site, "tablemigrate", "show", "--all-databases", "--no-sql", template=template)
    assert shown.stdout.splitlines()[-1] == "4 databases: 4 already current"


def test_dj_lite_tenant_s_migrate_tenant_dbs_after_tablemigrate_changes_nothing(site):
    users_and_notes(site, "ann", "bob")
    models = site / "notes" / "models.py"
    models.write_text(models.read_text().replace("    text = models.TextField()\n", NOTE_CHANGED))
    manage(site, "tablemigrate", "generate", "--database", "tenant", "--noinput")
    manage(site, "tablemigrate", "run", "--all-databases", "--noinput")
    tenants = site / "db" / "tenants"
    before = {p.name: history(p) for p in tenants.glob("tenant_*.sqlite3")}
    out = manage(site, "migrate_tenant_dbs").stdout
    assert "Done: 2 ok, 0 failed." in out
    assert {p.name: history(p) for p in tenants.glob("tenant_*.sqlite3")} == before
    assert users_and_notes(site) == {"ann": [["by ann", False]], "bob": [["by bob", False]]}
