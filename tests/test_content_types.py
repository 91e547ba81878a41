"""Content types follow model renames (issue 23, item 5), as under Django's `migrate`.

Django's `migrate` renames a renamed model's ContentType row (contenttypes' RenameContentType, added after
every RenameModel): same id, so group and user permissions, admin log entries and generic foreign keys keep
pointing at it; post_migrate then adds the new model's permissions beside the old ones. tablemigrate's
`generate` records the model rename in the module (`model_renames`), `run` renames the content type in
the module's transaction and `revert` renames it back.

End to end on a small project in a temporary directory (contenttypes + auth installed, the app `blog` owned
by tablemigrate), through manage.py in subprocesses; the reference is the same project without tablemigrate,
`blog` with Django migrations (CreateModel, then RenameModel), built by Django's own `migrate`.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from unittest import mock

import django
import pytest
from django.apps.registry import Apps
from django.core.management import call_command
from django.db import connection, models
from django.db.models.signals import post_migrate
from django.test import override_settings

from tablemigrate.errors import ConfigurationError, MigrationFileError
from tablemigrate.generate.pipeline import Questioner, generate
from tablemigrate.history.loader import load_migrations, load_source
from tablemigrate.sqlite.diff import Renames

from . import helpers

SETTINGS = '''
import os

SECRET_KEY = "content-types-test-only"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "blog"]
if os.environ.get("CT_REFERENCE") == "1":  # plain Django: blog keeps Django migrations
    MIGRATION_MODULES = {"blog": "blog_migrations"}
else:
    INSTALLED_APPS.insert(0, "tablemigrate")
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["CT_DB"]}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TABLEMIGRATE_MIGRATIONS_DIR = os.environ.get("CT_MODULES", "tablemigrations")
'''

MANAGE = '''
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ctsite_settings")
from django.core.management import execute_from_command_line

execute_from_command_line(sys.argv)
'''


def blog_models(name: str) -> str:
    return f'''
from django.db import models


class {name}(models.Model):
    name = models.CharField(max_length=20)


class Post(models.Model):
    title = models.CharField(max_length=20)
    category = models.ForeignKey({name}, models.CASCADE)  # a model that points at it follows
'''


MIGRATION_0001 = '''
from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []
    operations = [
        migrations.CreateModel("Category", [
            ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
            ("name", models.CharField(max_length=20)),
        ]),
        migrations.CreateModel("Post", [
            ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
            ("title", models.CharField(max_length=20)),
            ("category", models.ForeignKey("blog.category", models.CASCADE)),
        ]),
    ]
'''

MIGRATION_0002 = '''
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("blog", "0001_initial")]
    operations = [
        migrations.RenameModel("Category", "Topic"),
    ]
'''


class Site:
    """The project in `root`: blog's models are written per step; `reference` is plain Django."""

    def __init__(self, root: Path, reference: bool = False):
        self.root, self.reference = root, reference
        self.db = root / "db.sqlite3"
        (root / "blog").mkdir(parents=True)
        (root / "blog" / "__init__.py").write_text("")
        (root / "ctsite_settings.py").write_text(SETTINGS)
        (root / "manage.py").write_text(MANAGE)
        if reference:
            (root / "blog_migrations").mkdir()
            (root / "blog_migrations" / "__init__.py").write_text("")
            (root / "blog_migrations" / "0001_initial.py").write_text(MIGRATION_0001)
        self.models("Category")

    def models(self, name: str) -> None:
        (self.root / "blog" / "models.py").write_text(blog_models(name))
        if self.reference and name == "Topic":
            (self.root / "blog_migrations" / "0002_rename.py").write_text(MIGRATION_0002)

    def manage(self, *args: str) -> str:
        proc = helpers.manage(self.root, *args, prefix="CT", CT_DB=str(self.db),
                              CT_MODULES=str(self.root / "tablemigrations"), CT_REFERENCE="1" if self.reference else "0")
        return proc.stdout + proc.stderr

    def migrate(self, *rename: str) -> None:
        """The project's migrations applied: Django's `migrate` (the reference), or tablemigrate's
        generate (with `rename`'s options) and run."""
        if self.reference:
            self.manage("migrate", "--noinput")
        else:
            self.manage("tablemigrate", "generate", "--noinput", *rename)
            self.manage("tablemigrate", "run", "--noinput")

    def rows(self, sql: str, *params) -> list[tuple]:
        conn = sqlite3.connect(self.db)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def execute(self, sql: str, *params) -> None:
        conn = sqlite3.connect(self.db)
        try:
            with conn:
                conn.execute(sql, params)
        finally:
            conn.close()

    def content_types(self) -> dict[str, int]:
        return dict(self.rows("SELECT model, id FROM django_content_type WHERE app_label = 'blog'"))

    def permissions(self) -> set[tuple]:
        """blog's permissions: (codename, name, the model of their content type)."""
        return set(self.rows("SELECT p.codename, p.name, c.model FROM auth_permission AS p JOIN django_content_type "
                             "AS c ON c.id = p.content_type_id WHERE c.app_label = 'blog'"))

    def group(self) -> None:
        """A group allowed to change categories (the permission row, by codename), as an admin sets it up."""
        self.execute("INSERT INTO auth_group (name) VALUES ('editors')")
        self.execute("INSERT INTO auth_group_permissions (group_id, permission_id) SELECT g.id, p.id FROM auth_group "
                     "AS g, auth_permission AS p WHERE g.name = 'editors' AND p.codename = 'change_category'")

    def group_permissions(self) -> list[tuple]:
        """The editors' permissions: (permission id, codename, its content type's id and model)."""
        return self.rows("SELECT p.id, p.codename, c.id, c.model FROM auth_group_permissions AS gp JOIN auth_permission "
                         "AS p ON p.id = gp.permission_id JOIN django_content_type AS c ON c.id = p.content_type_id")


def renamed(site: Site, *rename: str) -> tuple[int, list[tuple]]:
    """Category's content type id and the group's permissions before the model becomes Topic (then migrated)."""
    site.migrate()
    site.group()
    before = (site.content_types()["category"], site.group_permissions())
    site.models("Topic")
    site.migrate(*rename)
    return before


@pytest.mark.subprocess
@pytest.mark.parametrize("rename", [["--rename", "blog_category:blog_topic"], ["--rename", "blog.Category:blog.Topic"]],
                         ids=["table", "model-label"])
def test_a_model_rename_keeps_its_content_type_and_ends_as_djangos_migrate(tmp_path, rename):
    site = Site(tmp_path / "site")
    ct_id, group = renamed(site, *rename)
    [(perm_id, codename, _ct, model)] = group
    assert (codename, model) == ("change_category", "category")
    # the content type kept its id and took the new name; no orphan `category` is left
    assert site.content_types() == {"topic": ct_id, "post": site.content_types()["post"]}

    reference = Site(tmp_path / "reference", reference=True)
    ref_ct_id, [(ref_perm_id, *_)] = renamed(reference)
    assert reference.content_types() == {"topic": ref_ct_id, "post": reference.content_types()["post"]}
    [(same_perm, ref_codename, same_ct, ref_model)] = reference.group_permissions()
    assert (same_perm, same_ct, ref_model) == (ref_perm_id, ref_ct_id, "topic")
    # the group's permission is the same row, now on the renamed content type, named as Django names it
    assert site.group_permissions() == [(perm_id, ref_codename, ct_id, "topic")]
    # what Django's migrate ends with: up to Django 6.0 the old permissions stay on the renamed type and
    # the new model's are added; 6.1 renames the old ones
    assert site.permissions() == reference.permissions()
    expected = {("add_topic", "Can add topic", "topic")}
    if django.VERSION < (6, 1):
        expected.add(("add_category", "Can add category", "topic"))
    assert {p for p in site.permissions() if p[0].startswith("add_") and p[2] == "topic"} == expected


@pytest.mark.subprocess
def test_revert_renames_the_content_type_back(tmp_path):
    site = Site(tmp_path / "site")
    ct_id, [(perm_id, *_)] = renamed(site, "--rename", "blog_category:blog_topic")
    assert site.content_types()["topic"] == ct_id
    site.manage("tablemigrate", "revert", "--noinput")
    assert site.content_types()["category"] == ct_id
    # the permission is the group's still, on the content type named as before (6.1: its codename too)
    assert site.group_permissions() == [(perm_id, "change_category", ct_id, "category")]


@pytest.mark.subprocess
def test_a_new_content_type_already_there_is_left_as_djangos_rename_leaves_it(tmp_path):
    """Django's RenameContentType falls back on an IntegrityError: both rows stay (remove_stale_contenttypes
    asks about the old one). The module still applies."""
    site = Site(tmp_path / "site")
    site.migrate()
    site.execute("INSERT INTO django_content_type (app_label, model) VALUES ('blog', 'topic')")
    before = site.content_types()
    site.models("Topic")
    out = site.manage("tablemigrate", "generate", "--noinput", "--rename", "blog_category:blog_topic")
    out += site.manage("tablemigrate", "run", "--noinput", "-v", "2")
    assert site.content_types() == before
    assert site.rows("SELECT count(*) FROM tablemigrate_history")[0][0] == 3  # category, post, the rename
    assert "content type blog.category left as it is: blog.topic exists already" in out


# In this process: the test settings install neither contenttypes nor auth.

def blog(name: str, table: str | None = None) -> list[type[models.Model]]:
    registry = Apps()
    meta = {"app_label": "blog", "apps": registry, **({"db_table": table} if table else {})}
    model = type(name, (models.Model,), {"__module__": __name__, "Meta": type("Meta", (), meta),
                                         "name": models.CharField(max_length=20)})
    return [model]


def test_generate_records_the_model_rename_in_the_module(tmp_path):
    d = tmp_path / "m"
    generate(d, blog("Category"))
    [module] = generate(d, blog("Topic"), renames=Renames.parse(["blog_category:blog_topic"])).modules
    assert "model_renames = [\n    ('blog', 'category', 'topic'),\n]\n" in module.text
    assert "module_format = 2\n" in module.text
    assert load_migrations(d)[-1].model_renames == [("blog", "category", "topic")]


def test_a_table_rename_without_a_model_rename_records_none(tmp_path):
    """db_table changed, the model kept its name: its content type stays as it is."""
    d = tmp_path / "m"
    generate(d, blog("Category"))
    [module] = generate(d, blog("Category", "categories"), renames=Renames.parse(["blog_category:categories"])).modules
    assert "model_renames" not in module.text and "module_format = 1\n" in module.text


def test_an_old_name_the_table_does_not_give_is_declared_by_label_or_asked(tmp_path):
    d = tmp_path / "m"
    generate(d, blog("Category", "categories"))
    new = blog("Topic", "topics")
    # not Django's default table name: the old model is not known, and the summary says how to declare it
    [unknown] = generate(d, new, renames=Renames.parse(["categories:topics"]), write=False).modules
    assert "model_renames" not in unknown.text
    assert any("--rename blog.OLDNAME:blog.Topic" in line for line in unknown.plan.summary)
    # declared by label, with the table rename
    [declared] = generate(d, new, renames=Renames.parse(["categories:topics", "blog.Category:blog.Topic"]),
                          write=False).modules
    assert "('blog', 'category', 'topic')" in declared.text

    class Asked(Questioner):
        interactive = True
        questions: list[str] = []

        def confirm(self, question: str) -> bool:
            return question == "Did you rename table categories to topics?"

        def value(self, question: str) -> str | None:
            self.questions.append(question)
            return "Category"

    [asked] = generate(d, new, questioner=Asked(), write=False).modules
    assert "('blog', 'category', 'topic')" in asked.text
    assert Asked.questions == ["Table categories became topics, the table of blog.Topic. What was that model's name "
                               "before (for its content type and permissions)? Press Enter if it was Topic"]
    # a label alone cannot say which table was renamed when the new one is not Django's default name
    with pytest.raises(ConfigurationError, match="not Django's default name, so its old table is not known"):
        generate(d, new, renames=Renames.parse(["blog.Category:blog.Topic"]), write=False)


def test_a_model_label_rename_is_checked():
    with pytest.raises(ValueError, match="in one app"):
        Renames.parse(["blog.Category:shop.Topic"])
    assert Renames.parse(["blog.Category:blog.Topic"]).models == {("blog", "topic"): "category"}
    with pytest.raises(ConfigurationError, match="no model blog.topic"):
        generate(Path("/nonexistent"), blog("Post"), renames=Renames.parse(["blog.Category:blog.Topic"]), write=False)


def test_model_renames_in_a_module_are_checked():
    text = b"module_format = 2\nup = []\nmodel_renames = [('blog', 'category')]\n"
    with pytest.raises(MigrationFileError, match="`model_renames` must be a list"):
        load_source(text, "x")
    with pytest.raises(MigrationFileError, match="`model_renames` needs `module_format = 2`"):
        load_source(b"up = []\nmodel_renames = [('blog', 'Category', 'Topic')]\n", "x")
    module = load_source(b"module_format = 2\nup = []\ndown = []\nmodel_renames = [('blog', 'Category', 'Topic')]\n", "x")
    assert module.model_renames == [("blog", "category", "topic")]


@pytest.fixture
def command(tmp_path):
    current: list = []

    def tablemigrate(models_: list, *args: str) -> None:
        current[:] = models_
        call_command("tablemigrate", *args, "--noinput", verbosity=0)

    tablemigrate.directory = tmp_path / "m"
    with override_settings(TABLEMIGRATE_MIGRATIONS_DIR=tmp_path / "m"), \
            mock.patch("tablemigrate.project.build.managed_models", lambda alias="default": list(current)):
        yield tablemigrate
    with connection.cursor() as cursor:
        for table in ("blog_category", "blog_topic", "tablemigrate_history"):
            cursor.execute(f'DROP TABLE IF EXISTS "{table}"')


def test_a_rename_on_a_database_without_contenttypes_does_nothing_and_fails_nothing(command):
    command(blog("Category"), "generate")
    command(blog("Category"), "run", "--no-backup")
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO blog_category (name) VALUES ('news')")
    command(blog("Topic"), "generate", "--rename", "blog_category:blog_topic")
    assert load_migrations(command.directory)[-1].model_renames == [("blog", "category", "topic")]
    sent: list[list[tuple[str, str, str, str, bool]]] = []

    def receiver(sender, plan=None, **kwargs):
        if sender.label == "tablemigrate":  # once per run: one app's receivers see what every app's do
            sent.append([(m.app_label, m.name, op.old_name, op.new_name, backward)
                         for m, backward in plan for op in m.operations])

    post_migrate.connect(receiver, weak=False)
    try:
        command(blog("Topic"), "run", "--no-backup")
        with connection.cursor() as cursor:
            cursor.execute("SELECT name FROM blog_topic")
            assert cursor.fetchall() == [("news",)]
            cursor.execute("SELECT name FROM sqlite_master WHERE name = 'django_content_type'")
            assert cursor.fetchall() == []
        command(blog("Topic"), "revert", "--no-backup")
    finally:
        post_migrate.disconnect(receiver)
    with connection.cursor() as cursor:
        cursor.execute("SELECT name FROM blog_category")
        assert cursor.fetchall() == [("news",)]
    # post_migrate's plan says which models the run renamed, as `migrate`'s does (Django 6.1's auth
    # renames their permissions from it)
    module = load_migrations(command.directory)[-1].name
    assert sent == [[("blog", module, "category", "topic", False)], [("blog", module, "category", "topic", True)]]
