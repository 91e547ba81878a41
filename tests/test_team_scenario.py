"""Every database a team has (issue 23), end to end through manage.py: a project on Django migrations
with data (a custom user model, an allauth-like app, an own data migration: tests/teamsite) adopts
tablemigrate on the developer's database; production and a teammate's older copy adopt from the committed
modules; CI and a new container create theirs from a history that drops a table and renames a model; a
second change then deploys to all of them. Each ends with the same schema, its own rows, the data step's
rows, the renamed model's content type (same id, its permission still granted), and `generate --check`
clean. Plain `manage.py migrate` builds an empty database and upgrades one that is behind."""

import shutil
import sqlite3
from pathlib import Path

import django
import pytest

from tablemigrate.sqlite.introspect import introspect

from . import helpers
from .helpers import ROOT, copy_fixture_site

pytestmark = pytest.mark.subprocess  # every test here starts the project's manage.py or a process

SITE = ROOT / "tests" / "teamsite"
# What Django's own `migrate` ends with after a RenameModel: the permission keeps its row and follows the
# content type; Django 6.1 also renames its codename (`rename_permissions_after_model_rename`).
CHANGE = "change_product" if django.VERSION >= (6, 1) else "change_item"
BEFORE = {"TEAMSITE_DJANGO_OWNS": "1"}  # the project before it adopted tablemigrate: Django owns every app


def manage(site: Path, db: Path, *args: str, check: bool = True, **env: str):
    """helpers.manage on teamsite, with the database `db` (the argument order of these tests)."""
    return helpers.manage(site, *args, prefix="TEAMSITE", db=str(db), check=check, **env)


def tm(site: Path, db: Path, *args: str, check: bool = True):
    return manage(site, db, "tablemigrate", *args, check=check)


def query(db: Path, sql: str, *params) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def schema_of(db: Path):
    conn = sqlite3.connect(db)
    try:
        schema = introspect(conn)
        return {name: table for name, table in schema.tables.items()}, schema.views, schema.triggers
    finally:
        conn.close()


def fill(db: Path, who: str, category: int) -> None:
    """This database's own rows: a user, two items in `category`, a tag on one of them."""
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("INSERT INTO accounts_user (password, is_superuser, username, first_name, last_name, email, "
                     "is_staff, is_active, date_joined) VALUES ('!', 0, ?, '', '', ?, 0, 1, '2026-01-01')",
                     (who, f"{who}@example.com"))
        conn.execute("INSERT INTO social_emailaddress (user_id, email, verified) VALUES "
                     "((SELECT id FROM accounts_user WHERE username = ?), ?, 1)", (who, f"{who}@example.com"))
        conn.execute("INSERT INTO shop_tag (name) VALUES (?)", (f"{who}-tag",))
        for n in (1, 2):
            conn.execute("INSERT INTO shop_item (name, category_id) VALUES (?, ?)", (f"{who}-item{n}", category))
        conn.execute("INSERT INTO shop_item_tags (item_id, tag_id) SELECT i.id, t.id FROM shop_item AS i, shop_tag AS t "
                     "WHERE i.name = ? AND t.name = ?", (f"{who}-item1", f"{who}-tag"))
    conn.close()


def own_rows(db: Path, table: str = "shop_product", join: str = "shop_product_tags", column: str = "product_id"):
    return (query(db, "SELECT username, email FROM accounts_user ORDER BY username"),
            query(db, f"SELECT i.name, c.name FROM {table} AS i JOIN shop_category AS c ON c.id = i.category_id "
                      "ORDER BY i.name"),
            query(db, f"SELECT i.name, t.name FROM {join} AS j JOIN {table} AS i ON i.id = j.{column} "
                      "JOIN shop_tag AS t ON t.id = j.tag_id ORDER BY i.name"))


def item_content_type(db: Path) -> list[tuple]:
    return query(db, "SELECT id, model FROM django_content_type WHERE app_label = 'shop' AND model IN ('item', 'product')")


def editors_may(db: Path) -> list[tuple]:
    return query(db, "SELECT p.codename, ct.model FROM auth_group AS g JOIN auth_group_permissions AS gp ON gp.group_id = g.id "
                     "JOIN auth_permission AS p ON p.id = gp.permission_id JOIN django_content_type AS ct "
                     "ON ct.id = p.content_type_id WHERE g.name = 'Editors' ORDER BY p.codename")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


def test_every_database_a_team_has(tmp_path):
    site = copy_fixture_site(SITE, tmp_path)
    dev, prod, mate, ci, fresh = (tmp_path / f"{n}.sqlite3" for n in ("dev", "prod", "mate", "ci", "fresh"))
    old_site = tmp_path / "old"  # the commit before the project deleted its apps' migrations folders
    shutil.copytree(site, old_site)

    # Before adoption: Django's migrate builds dev and production; the teammate's copy stops before the
    # shop's data migration. Each gets rows of its own.
    for db in (dev, prod):
        manage(site, db, "migrate", "--noinput", **BEFORE)
    for app in ("accounts", "social"):
        manage(site, mate, "migrate", app, "--noinput", **BEFORE)
    manage(site, mate, "migrate", "shop", "0001", "--noinput", **BEFORE)
    fill(dev, "dana", 1)
    fill(prod, "paul", 1)
    query(mate, "INSERT INTO shop_category (name) VALUES ('Mine')")
    fill(mate, "mia", 1)
    item_type = {db: item_content_type(db) for db in (dev, prod)}
    granted = "SELECT gp.permission_id FROM auth_group_permissions AS gp JOIN auth_group AS g ON g.id = gp.group_id " \
              "WHERE g.name = 'Editors'"
    grant = {db: query(db, granted) for db in (dev, prod)}

    # Dev adopts and commits: the modules, the data step carried with them, the migrations folders gone.
    tm(site, dev, "baseline")
    for app in ("accounts", "shop"):
        shutil.rmtree(site / app / "migrations")
    tm(site, dev, "generate", "--check")

    # Production adopts from the committed modules; the teammate's older copy is told the steps first.
    tm(site, prod, "baseline")
    assert "[ ]" not in tm(site, prod, "show").stdout  # every module recorded, the carried data step's too
    refused = tm(site, mate, "baseline", check=False)
    assert refused.returncode == 2 and "0002_default_rows" in refused.stderr, refused.stderr
    manage(old_site, mate, "migrate", "shop", "0002_default_rows", "--noinput", **BEFORE)  # the steps it gave
    tm(site, mate, "baseline")
    assert "[ ]" not in tm(site, mate, "show").stdout

    # First change on dev: the junk model goes (its table is empty everywhere), Item becomes Product.
    models = site / "shop" / "models.py"
    edit(models, "class Junk(models.Model):\n    note = models.TextField(blank=True)\n", "")
    edit(models, "class Item(models.Model):", "class Product(models.Model):")
    tm(site, dev, "generate", "--noinput", "--rename", "shop_item:shop_product")
    for db in (dev, ci, prod, mate):  # CI and every deploy without --allow-destructive
        tm(site, db, "run", "--noinput")

    # Second change, deployed everywhere; a copy of production one change behind is kept for `migrate`.
    behind = tmp_path / "behind.sqlite3"
    shutil.copy(prod, behind)
    edit(models, "class Category(models.Model):\n    name = models.CharField(max_length=50, unique=True)\n",
         "class Category(models.Model):\n    name = models.CharField(max_length=50, unique=True)\n"
         "    slug = models.SlugField(default='')\n")
    tm(site, dev, "generate", "--noinput")
    for db in (dev, ci, prod, mate):
        tm(site, db, "run", "--noinput")
    manage(site, fresh, "migrate", "--noinput")  # a new container whose release phase runs `migrate`
    manage(site, behind, "migrate", "--noinput")  # and an upgrade through `migrate`
    tm(site, dev, "generate", "--check")

    everyone = (dev, prod, mate, ci, fresh, behind)
    reference = schema_of(ci)
    for db in everyone:
        assert schema_of(db) == reference, db.name
        assert not query(db, "SELECT name FROM sqlite_master WHERE name IN ('shop_item', 'shop_junk', 'shop_item_tags')")
        assert query(db, "SELECT name, slug FROM shop_category WHERE name = 'General'") == [("General", "")]
        assert editors_may(db) == [(CHANGE, "product")], db.name  # the data step's group, its permission kept
        assert [m for _id, m in item_content_type(db)] == ["product"], db.name
        assert tm(site, db, "show").returncode == 0
    for db in (dev, prod):  # the content type was renamed in place: same id, the same permission row granted
        assert item_content_type(db) == [(item_type[db][0][0], "product")]
        assert query(db, granted) == grant[db]
    assert own_rows(dev) == ([("dana", "dana@example.com")], [("dana-item1", "General"), ("dana-item2", "General")],
                             [("dana-item1", "dana-tag")])
    assert own_rows(prod)[1:] == ([("paul-item1", "General"), ("paul-item2", "General")], [("paul-item1", "paul-tag")])
    assert own_rows(behind) == own_rows(prod)
    assert own_rows(mate)[2] == [("mia-item1", "mia-tag")]
    assert query(ci, "SELECT count(*) FROM shop_product") == [(0,)]
