"""generate's rules, through the library and through the command."""

import sqlite3

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from tablemigrate.errors import ConfigurationError, GenerateError
from tablemigrate.generate.pipeline import Questioner, generate
from tablemigrate.history.loader import load_migrations
from tablemigrate.operations import RebuildTable
from tablemigrate.project.build import managed_models
from tablemigrate.run.apply import apply_migration
from tablemigrate.sqlite.diff import Renames

from .helpers import apply_new
from .modelgen import FieldSpec, ProjectSpec, TableSpec, build_models


def blog(**extra_post_fields) -> ProjectSpec:
    spec = ProjectSpec()
    spec.tables["Author"] = TableSpec("Author", "blog_author", [FieldSpec("name", "char")])
    post = TableSpec("Post", "blog_post", [FieldSpec("author", "fk", target="Author"), FieldSpec("title", "char")])
    post.fields += [FieldSpec(name, kind, **kw) for name, (kind, kw) in extra_post_fields.items()]
    spec.tables["Post"] = post
    return spec


class Answers(Questioner):
    def __init__(self, confirm=(), value=None):
        self.confirm_answers, self.value_answer, self.asked = list(confirm), value, []

    def confirm(self, question):
        self.asked.append(question)
        return self.confirm_answers.pop(0) if self.confirm_answers else False

    def value(self, question):
        self.asked.append(question)
        return self.value_answer


@pytest.fixture
def live(tmp_path):
    conn = sqlite3.connect(tmp_path / "live.sqlite3", isolation_level=None)
    yield conn
    conn.close()


def seeded(tmp_path, live):
    """The blog history generated and applied to `live`, with one author and one post."""
    d, applied = tmp_path / "m", set()
    generate(d, build_models(blog()))
    apply_new(live, d, applied)
    live.execute("INSERT INTO blog_author VALUES (1, 'a')")
    live.execute("INSERT INTO blog_post VALUES (1, 1, 't')")
    return d, applied


def test_fk_targets_are_created_first_and_dropped_last(tmp_path):
    d = tmp_path / "m"
    names = [m.name for m in generate(d, build_models(blog())).modules]
    assert [n.split("_", 3)[3] for n in names] == ["create_blog_author", "create_blog_post"]
    assert names == sorted(names)
    dropped = generate(d, build_models(ProjectSpec({"Other": TableSpec("Other", "other")}))).modules
    assert [m.name.split("_", 3)[3] for m in dropped] == ["create_other", "drop_blog_post", "drop_blog_author"]
    assert all(m.plan.destructive for m in dropped[1:])


def test_nullable_column_uses_native_add_column(tmp_path):
    d = tmp_path / "m"
    generate(d, build_models(blog()))
    (module,) = generate(d, build_models(blog(body=("text", {"null": True})))).modules
    assert module.plan.up == ['ALTER TABLE "blog_post" ADD COLUMN "body" text NULL']
    assert module.plan.down == ['ALTER TABLE "blog_post" DROP COLUMN "body"']


def test_not_null_column_backfills_the_python_default(tmp_path, live):
    d, applied = seeded(tmp_path, live)
    (module,) = generate(d, build_models(blog(score=("int", {"has_default": True})))).modules
    assert isinstance(module.plan.up[0], RebuildTable) and module.plan.up[0].copy["score"] == "5"
    apply_new(live, d, applied)
    assert live.execute("SELECT score FROM blog_post").fetchall() == [(5,)]


def test_not_null_column_without_default_asks_or_refuses(tmp_path):
    d = tmp_path / "m"
    generate(d, build_models(blog()))
    changed = build_models(blog(score=("int", {})))
    with pytest.raises(GenerateError, match="blog_post.score is NOT NULL with no default"):
        generate(d, changed)
    assert len(load_migrations(d)) == 2  # nothing written
    answers = Answers(value="42")
    (module,) = generate(d, changed, questioner=answers).modules
    assert module.plan.up[0].copy["score"] == "42" and "blog_post.score" in answers.asked[0]


def test_renames_are_asked_given_or_flagged_destructive(tmp_path):
    d = tmp_path / "m"
    generate(d, build_models(blog()))
    renamed = blog()
    renamed.tables["Post"].fields[1].name = "headline"
    models = build_models(renamed)
    refused = generate(d, models, questioner=Answers([False], value="''"), write=False).modules[0]
    assert any("drops column blog_post.title" in r for r in refused.plan.destructive)
    answers = Answers([True])
    accepted = generate(d, models, questioner=answers, write=False).modules[0]
    assert answers.asked == ["Did you rename column blog_post.title to blog_post.headline?"]
    assert accepted.plan.up == ['ALTER TABLE "blog_post" RENAME COLUMN "title" TO "headline"']
    assert not accepted.plan.destructive
    given = generate(d, models, renames=Renames.parse(["blog_post.title:headline"]), write=False).modules[0]
    assert given.plan.up == accepted.plan.up


def test_table_rename_is_native_and_keeps_children_pointing_at_it(tmp_path, live):
    d, applied = seeded(tmp_path, live)
    renamed = blog()
    renamed.tables["Author"].db_table = "blog_writer"
    (module,) = generate(d, build_models(renamed), questioner=Answers([True])).modules
    assert module.plan.up[0] == 'ALTER TABLE "blog_author" RENAME TO "blog_writer"'
    apply_new(live, d, applied)
    assert live.execute("SELECT \"table\" FROM pragma_foreign_key_list('blog_post')").fetchall() == [("blog_writer",)]


def test_dry_run_and_check_write_nothing_and_snapshot_is_refreshed(tmp_path):
    d = tmp_path / "m"
    result = generate(d, build_models(blog()), write=False)
    assert result.changed and not d.exists()
    generate(d, build_models(blog()))
    snapshot = (d / "schema.sql").read_text()
    assert 'CREATE TABLE "blog_post" (' in snapshot and "-- history: " in snapshot
    (d / "schema.sql").write_text("stale")
    assert not generate(d, build_models(blog())).changed
    assert (d / "schema.sql").read_text() == snapshot


def test_generated_module_text_is_readable(tmp_path):
    d = tmp_path / "m"
    generate(d, build_models(blog()), label="Initial")
    text = next(d.glob("*_create_blog_post.py")).read_text()
    assert text.startswith('"""Create table blog_post.')
    for line in ("table = 'blog_post'", "label = 'Initial'", "destructive = []", "Label:       Initial"):
        assert line in text
    compile(text, "m.py", "exec")


def test_models_db_skips_proxy_and_unmanaged_models_and_honours_routers():
    tables = {m._meta.db_table for m in managed_models()}
    assert tables == {"sampleapp_author", "sampleapp_book"}

    class NoBooks:
        def allow_migrate(self, db, app_label, model_name=None, **hints):
            return model_name != "book"

    with override_settings(DATABASE_ROUTERS=[NoBooks()]):
        assert {m._meta.db_table for m in managed_models()} == {"sampleapp_author"}


def test_command_errors_are_one_line_with_exit_codes(tmp_path, settings):
    settings.TABLEMIGRATE_MIGRATIONS_DIR = tmp_path / "m"
    with pytest.raises(CommandError) as info:
        call_command("tablemigrate", "generate", "--check", "--noinput")
    assert info.value.returncode == 1
    call_command("tablemigrate", "generate", "--noinput")
    call_command("tablemigrate", "generate", "--check", "--noinput")  # clean now
    with pytest.raises(CommandError) as info:
        call_command("tablemigrate", "generate", "--rename", "nocolon")
    assert info.value.returncode == 2
    settings.DATABASES["pg"] = {"ENGINE": "django.db.backends.postgresql", "NAME": "x"}
    with pytest.raises(CommandError, match="tablemigrate works only with SQLite") as info:
        call_command("tablemigrate", "generate", "--database", "pg")
    assert info.value.returncode == 2


def test_nullable_to_not_null_asks_for_a_value_for_existing_nulls(tmp_path, live):
    d = tmp_path / "m"
    applied = set()
    generate(d, build_models(blog(body=("int", {"null": True}))))
    apply_new(live, d, applied)
    live.execute("INSERT INTO blog_author VALUES (1, 'a')")
    live.execute("INSERT INTO blog_post VALUES (1, 1, 't', NULL)")
    strict = build_models(blog(body=("int", {})))
    kept = generate(d, strict, write=False).modules[0]  # --noinput: NULLs kept, the run would fail safely
    assert kept.plan.up[-1].copy["body"] == '"body"' and not kept.plan.destructive
    assert len(kept.plan.up) == 1 and kept.plan.up[0].check  # in place, the rows proved at run time
    answers = Answers(value="-1")
    (module,) = generate(d, strict, questioner=answers).modules
    assert "blog_post.body becomes NOT NULL" in answers.asked[0]
    # in place: the NULLs take the value first (the copy has it too, should the table be rebuilt after all)
    assert module.plan.up[0] == 'UPDATE "blog_post" SET "body" = -1 WHERE "body" IS NULL'
    assert module.plan.up[-1].copy["body"] == 'COALESCE("body", -1)'
    assert module.plan.destructive == ["NULLs in blog_post.body become -1"]
    apply_new(live, d, applied)
    assert live.execute("SELECT body FROM blog_post").fetchall() == [(-1,)]


def test_database_a_comes_from_the_snapshot_or_its_cached_copy_and_never_from_a_wrong_one(tmp_path, monkeypatch, full_comparison):
    generate = full_comparison  # the whole schemas compared
    import os
    import stat

    from tablemigrate.generate import pipeline as gen
    from tablemigrate.sqlite.cache import path as cache_path

    d = tmp_path / "m"
    generate(d, build_models(blog()))
    replays = []
    real_load = gen.load_migrations
    monkeypatch.setattr(gen, "load_migrations", lambda directory: replays.append(1) or real_load(directory))
    changed = build_models(blog(body=("text", {"null": True})))
    from datetime import datetime, timezone

    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    first = generate(d, changed, write=False, now=now)  # the snapshot matches: no module imported
    assert replays == [] and [m.plan.summary for m in first.modules] == [["add column body"]]
    cached = list(cache_path(d, "").parent.glob(cache_path(d, "").name + "-A-*.sqlite3"))
    assert len(cached) == 1 and stat.S_IMODE(os.stat(cached[0]).st_mode) == 0o600
    # the cached copy is tampered with: its fingerprint no longer matches, so the history is replayed
    conn = sqlite3.connect(cached[0])
    conn.execute("CREATE TABLE intruder (x)")
    conn.commit()
    conn.close()
    second = generate(d, changed, write=False, now=now)
    assert replays == [1] and [m.text for m in second.modules] == [m.text for m in first.modules]
    # so is the snapshot itself: same
    (d / "schema.sql").write_text((d / "schema.sql").read_text().replace('"title"', '"titel"'))
    assert [m.text for m in generate(d, changed, write=False, now=now).modules] == [m.text for m in first.modules]
    assert replays == [1, 1]


def test_a_child_changed_in_the_same_batch_as_its_parents_rename_reverts_with_rows(tmp_path, live):
    """Up renames the parent, then rebuilds the child; down rebuilds the child first, while the parent
    still has its new name, so the child's FK must name it as it is then (found by the round trip)."""
    d, applied = seeded(tmp_path, live)
    spec = blog()
    spec.tables["Author"].db_table = "blog_writer"
    spec.tables["Post"].field("title").null = True  # a rebuild of the child
    renames = Renames()
    renames.add_table("blog_author", "blog_writer")
    generate(d, build_models(spec), renames=renames)
    new = apply_new(live, d, applied)
    assert live.execute("SELECT author_id, title FROM blog_post").fetchall() == [(1, "t")]
    for m in reversed(new):
        apply_migration(live, m, "down")  # raised "would leave 1 foreign key violation(s)" before
    assert live.execute("SELECT id, author_id, title FROM blog_post").fetchall() == [(1, 1, "t")]
    assert live.execute("SELECT name FROM sqlite_master WHERE name = 'blog_author'").fetchall() == [("blog_author",)]
    assert live.execute("PRAGMA foreign_key_check").fetchall() == []


def test_check_with_nothing_to_do_never_builds_database_a(tmp_path, monkeypatch, full_comparison):
    generate = full_comparison  # the whole schemas compared
    from tablemigrate.generate import pipeline as gen

    d = tmp_path / "m"
    models = build_models(blog())
    generate(d, models)
    real = gen._database_a
    built = []
    monkeypatch.setattr(gen, "_database_a", lambda *a: built.append(1) or real(*a))
    assert not generate(d, models, write=False).changed and built == []  # the snapshot header says it all
    changed = build_models(blog(body=("text", {"null": True})))
    assert [m.plan.summary for m in generate(d, changed, write=False).modules] == [["add column body"]]
    assert built == [1]  # a model change: the full comparison
    with pytest.raises(ConfigurationError, match="rename blog_post -> nosuch"):  # a rename asked for is checked
        generate(d, models, write=False, renames=Renames.parse(["blog_post:nosuch"]))
    (d / sorted(p.name for p in d.glob("*.py"))[0]).write_text("up = []\n")  # the history is not the snapshot's
    generate(d, models, write=False)
    assert len(built) == 3


def test_a_writing_generate_leaves_database_a_for_the_schema_it_wrote(tmp_path, monkeypatch, full_comparison):
    """The edit loop (issue 13): the cache a generate leaves is the one the next generate needs, database
    A after the modules it just wrote, keyed by the new schema.sql; the next generate neither replays
    the history nor runs schema.sql's statements."""
    generate = full_comparison  # the whole schemas compared
    from tablemigrate.generate import pipeline as gen
    from tablemigrate.sqlite import cache
    from tablemigrate.sqlite.introspect import introspect

    d = tmp_path / "m"
    generate(d, build_models(blog()))
    generate(d, build_models(blog(body=("text", {"null": True}))), write=False)  # caches A for this schema.sql
    started_from = cache.database_a_path(d, (d / "schema.sql").read_bytes())
    generate(d, build_models(blog(body=("text", {"null": True}))))  # writes a module and a new schema.sql
    kept = cache.database_a_path(d, (d / "schema.sql").read_bytes())
    cached = set(kept.parent.glob(kept.name.split("-A-")[0] + "-A-*.sqlite3"))
    assert cached == {kept, started_from}  # the new one, and the one it started from (modules thrown away)
    replayed = sqlite3.connect(":memory:", isolation_level=None)
    for m in load_migrations(d):
        apply_migration(replayed, m, "up")
    assert introspect(sqlite3.connect(kept)).fingerprint() == introspect(replayed).fingerprint()
    monkeypatch.setattr(gen, "load_migrations", lambda directory: pytest.fail("replayed the history"))
    third = generate(d, build_models(blog(body=("text", {"null": True}), rank=("text", {"null": True}))),
                     write=False)
    assert [m.plan.summary for m in third.modules] == [["add column rank"]]
