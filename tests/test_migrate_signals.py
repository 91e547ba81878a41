"""Django's pre_migrate and post_migrate on every `run` (issue 25), nothing pending included, as `migrate`
sends them: a model that needs no DDL (a proxy, an unmanaged model, `Meta.permissions`) gets its content
type and permissions from the next `run`, as it would from the next `migrate`."""

from __future__ import annotations

import json
import sqlite3

import pytest

from . import helpers

NO_DDL_MODELS = '''

class PostProxy(Post):
    class Meta:
        proxy = True


class Archive(models.Model):
    title = models.CharField(max_length=200)

    class Meta:
        managed = False
        db_table = "legacy_archive"


class Note(models.Model):
    text = models.TextField()

    class Meta:
        managed = False
        permissions = [("publish_note", "Can publish notes")]
'''

RECEIVER = '''
import json
import os

from django.apps import AppConfig
from django.db.models.signals import post_migrate, pre_migrate


def record(signal, **kwargs):
    with open(os.environ["SIGNALS_LOG"], "a") as log:
        log.write(json.dumps({
            "signal": "pre" if signal is pre_migrate else "post",
            "sender": kwargs["sender"].label, "app_config": kwargs["app_config"].label,
            "verbosity": kwargs["verbosity"], "interactive": kwargs["interactive"], "using": kwargs["using"],
            "plan": [[m.app_label, m.name, backwards] for m, backwards in kwargs["plan"]],
            "apps": kwargs["apps"].get_model("posts", "Post").__name__,
            "stdout": hasattr(kwargs["stdout"], "write"),
        }) + "\\n")


class PostsConfig(AppConfig):
    name = "example_project.posts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        pre_migrate.connect(record, dispatch_uid="signals-log-pre")
        post_migrate.connect(record, dispatch_uid="signals-log-post")
'''


def _permissions(db, app: str) -> dict[str, set[str]]:
    conn = sqlite3.connect(db)
    try:
        found: dict[str, set[str]] = {}
        for model, codename in conn.execute(
                "SELECT ct.model, p.codename FROM django_content_type ct LEFT JOIN auth_permission p "
                "ON p.content_type_id = ct.id WHERE ct.app_label = ?", (app,)):
            found.setdefault(model, set()).update([codename] if codename else [])
        return found
    finally:
        conn.close()


@pytest.mark.subprocess
def test_models_without_ddl_get_content_types_and_permissions_from_a_run_with_nothing_pending(tmp_path):
    site = helpers.copy_example_project(tmp_path)
    helpers.tablemigrate(site, "run", "--noinput")
    models = site / "example_project" / "posts" / "models.py"
    models.write_text(models.read_text() + NO_DDL_MODELS)
    assert "No changes" in helpers.tablemigrate(site, "generate", "--noinput").stdout
    out = helpers.tablemigrate(site, "run", "--noinput").stdout
    assert "No migrations to apply." in out
    found = _permissions(site / "example_project" / "db.sqlite3", "posts")
    assert found["postproxy"] == {"add_postproxy", "change_postproxy", "delete_postproxy", "view_postproxy"}
    assert found["archive"] == {"add_archive", "change_archive", "delete_archive", "view_archive"}
    assert "publish_note" in found["note"]


@pytest.mark.subprocess
def test_a_project_receiver_gets_djangos_arguments_once_per_app_on_a_run_with_nothing_pending(tmp_path):
    site = helpers.copy_example_project(tmp_path)
    (site / "example_project" / "posts" / "apps.py").write_text(RECEIVER)
    log = tmp_path / "signals.log"
    helpers.tablemigrate(site, "run", "--noinput", SIGNALS_LOG=str(log))
    first = [json.loads(line) for line in log.read_text().splitlines()]
    # The first run applied everything: pre_migrate came once per app, before anything, with the run's plan.
    assert [e["signal"] for e in first] == ["pre"] * 6 + ["post"] * 6
    assert ["contenttypes", "0001_initial", False] in first[0]["plan"]
    log.unlink()
    helpers.tablemigrate(site, "run", "--noinput", "-v", "2", SIGNALS_LOG=str(log))
    sent = [json.loads(line) for line in log.read_text().splitlines()]
    labels = ["contenttypes", "auth", "tablemigrate", "users", "posts", "chats"]  # every app config with models
    assert sent == [{"signal": signal, "sender": label, "app_config": label, "verbosity": 2, "interactive": False,
                     "using": "default", "plan": [], "apps": "Post", "stdout": True}
                    for signal in ("pre", "post") for label in labels]


LABEL_0003 = '''
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("vendor", "0002_general_category"), ("shop", "__first__")]
    operations = [migrations.CreateModel("Label", [
        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
        ("text", models.CharField(max_length=20)),
    ])]
'''

RENAME_0004 = '''
from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("vendor", "0003_label")]
    operations = [migrations.RenameModel("Label", "Tagline")]
'''

COUNTER = '''
import json
import os

from django.apps import AppConfig
from django.db.models.signals import post_migrate, pre_migrate


def record(signal, sender, plan, **kwargs):
    with open(os.environ["SIGNALS_LOG"], "a") as log:
        log.write(json.dumps(["pre" if signal is pre_migrate else "post", sender.label,
                              [m.name for m, _backwards in plan]]) + "\\n")


class SignalLogConfig(AppConfig):
    name = "signallog"

    def ready(self):
        pre_migrate.connect(record, dispatch_uid="signallog-pre")
        post_migrate.connect(record, dispatch_uid="signallog-post")
'''


def _vendor_model(site, name: str) -> None:
    models = site / "vendor" / "models.py"
    kept = models.read_text().split("\n\nclass Label")[0].split("\n\nclass Tagline")[0]
    models.write_text(f"{kept}\n\nclass {name}(models.Model):\n    text = models.CharField(max_length=20)\n")


@pytest.mark.subprocess
def test_pre_migrate_comes_once_per_run_and_its_receivers_reach_the_django_migrations_after_the_owned_ones(
        tmp_path):
    from functools import partial

    site = helpers.copy_fixture_site(helpers.ROOT / "tests" / "mixedsite", tmp_path)
    tm = partial(helpers.tablemigrate, site, prefix="MIXEDSITE", db="db.sqlite3", SIGNALS_LOG=str(tmp_path / "log"))
    (site / "signallog").mkdir()
    (site / "signallog" / "__init__.py").write_text("")
    (site / "signallog" / "apps.py").write_text(COUNTER)
    settings = site / "mixedsite" / "settings.py"
    settings.write_text(settings.read_text() + '\nINSTALLED_APPS.append("signallog")\n')
    # vendor.0001-0002 run before shop's modules, 0003 (it depends on shop) after them: one run, one pre_migrate
    (site / "vendor" / "migrations" / "0003_label.py").write_text(LABEL_0003)
    _vendor_model(site, "Label")
    tm("generate", "--noinput")
    tm("run", "--noinput")
    sent = [json.loads(line) for line in (tmp_path / "log").read_text().splitlines()]
    pre = [s for s in sent if s[0] == "pre"]
    assert [s[1] for s in pre] == ["contenttypes", "auth", "tablemigrate", "vendor", "shop"]
    assert pre[0][2][0] == "0001_initial" and pre[0][2][-1] == "0003_label"  # the whole run's plan
    assert [s[0] for s in sent] == ["pre"] * 5 + ["post"] * 5
    db = site / "db.sqlite3"
    conn = sqlite3.connect(db)
    try:
        (label_id,) = conn.execute("SELECT id FROM django_content_type WHERE app_label = 'vendor' "
                                   "AND model = 'label'").fetchone()
    finally:
        conn.close()
    # A RenameModel in a Django migration that runs after the owned modules: the content type follows
    # (contenttypes' pre_migrate receiver added a RenameContentType to the migration it was told about).
    (site / "vendor" / "migrations" / "0004_rename.py").write_text(RENAME_0004)
    _vendor_model(site, "Tagline")
    tm("run", "--noinput")
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT model FROM django_content_type WHERE id = ?", (label_id,)).fetchone() == \
            ("tagline",)
    finally:
        conn.close()
