"""Two branches from one history, merged (issue 14): every generated module states the shape of its
table before and after it, and a module whose table is not in that shape is refused, so a rebuild
from one branch never drops what the other branch added."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from tablemigrate.errors import GenerateError, ShapeMismatch
from tablemigrate.generate.pipeline import generate
from tablemigrate.generate.writer import render_module
from tablemigrate.history.loader import load_migrations
from tablemigrate.history.status import Target
from tablemigrate.project.build import private_database, raw
from tablemigrate.run import runner

from .modelgen import FieldSpec, ProjectSpec, TableSpec, build_models
from .test_example_e2e import example  # noqa: F401 (the fixture)

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)


def users(username: int = 30, nickname: bool = False, posts: bool = False, post_title: int = 30) -> list:
    spec = ProjectSpec()
    fields = [FieldSpec("username", "char", max_length=username)]
    if nickname:
        fields.append(FieldSpec("nickname", "char", null=True))
    spec.tables["User"] = TableSpec("User", "app_user", fields)
    if posts:
        spec.tables["Post"] = TableSpec("Post", "app_post", [FieldSpec("title", "char", max_length=post_title)])
    return build_models(spec)


def branches(tmp_path, base, left, right, left_later: bool = False):
    """A history generated from `base`, then a module on each branch: `left` generated at T0 + 1 h,
    `right` at T0 + 2 h (or the other way round). Returns (main, merged) directories."""
    main = tmp_path / "main"
    generate(main, base, now=T0)
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(main, a)
    shutil.copytree(main, b)
    generate(a, left, now=T0 + timedelta(hours=2 if left_later else 1))
    generate(b, right, now=T0 + timedelta(hours=1 if left_later else 2))
    merged = tmp_path / "merged"
    shutil.copytree(main, merged)
    for branch in (a, b):
        for p in branch.glob("*.py"):
            shutil.copy(p, merged / p.name)
    return main, a, b, merged


@pytest.fixture
def database(tmp_path):
    with private_database(str(tmp_path / "app.sqlite3")) as db:
        yield Target("default", raw(db), tmp_path / "app.sqlite3")


def rows(target):
    return target.conn.execute("SELECT * FROM app_user ORDER BY id").fetchall()


@pytest.mark.parametrize("nicknames", [["ann", None], [None, None]], ids=["with values", "only NULLs"])
def test_a_rebuild_from_one_branch_never_drops_a_column_the_other_added(tmp_path, database, nicknames):
    _main, a, _b, merged = branches(tmp_path, users(), users(nickname=True), users(username=60))
    runner.run(database, a)  # staging: branch A's module is applied and rows get nicknames
    for i, nick in enumerate(nicknames, 1):
        database.conn.execute("INSERT INTO app_user (id, username, nickname) VALUES (?, ?, ?)", (i, f"u{i}", nick))
    database.conn.commit()
    before = rows(database)
    [widen] = [m for m in load_migrations(merged) if m.name not in {p.stem for p in a.glob("*.py")}]
    with pytest.raises(ShapeMismatch, match=rf"app_user has column nickname that {widen.name} did not expect; "
                                            "nothing was changed") as refused:
        runner.run(database, merged, allow_destructive=True)
    assert refused.value.exit_code == 2 and "delete it and run `manage.py tablemigrate generate` again" in str(refused.value)
    assert rows(database) == before  # the column and every value in it are still there
    assert [r[0] for r in database.conn.execute("SELECT name FROM tablemigrate_history")] == \
        sorted(p.stem for p in a.glob("*.py"))


def test_the_merged_history_is_refused_by_generate_until_one_side_is_regenerated(tmp_path):
    _main, a, b, merged = branches(tmp_path, users(), users(nickname=True), users(username=60))
    both = users(username=60, nickname=True)
    with pytest.raises(GenerateError, match="conflicts with itself: .*app_user has column nickname that .* did not expect"):
        generate(merged, both, write=False)
    # The way out: delete the unapplied module of one branch, generate again on the merged history.
    b_only = sorted({p.name for p in b.glob("*.py")} - {p.name for p in a.glob("*.py")})
    for name in b_only:
        (merged / name).unlink()
    result = generate(merged, both, now=T0 + timedelta(hours=3))
    assert [m.plan.summary for m in result.modules] == [["alter column username: varchar(30) → varchar(60)",
                                                         "change the table's definition in place (no row is copied)"]]
    assert "nickname" in result.modules[0].text  # the new rebuild keeps the other branch's column


def test_branches_that_changed_different_tables_need_nothing_and_apply_out_of_order(tmp_path, database):
    """The later module (by name) is applied on staging first; the earlier one, merged in afterwards,
    sorts before an applied module. It applies, and `show`'s status says it is out of order."""
    from tablemigrate.history.status import out_of_order, status

    _main, a, b, merged = branches(tmp_path, users(posts=True), users(posts=True, username=60),
                                   users(posts=True, post_title=80), left_later=True)
    assert not generate(merged, users(posts=True, username=60, post_title=80), write=False).changed
    runner.run(database, a)  # branch A's module (named later) is applied first
    database.conn.execute("INSERT INTO app_user (username) VALUES ('kept')")
    database.conn.commit()
    st = status(database.conn, merged)
    assert [p.stem for p in out_of_order(st)] == [p.stem for p in st.pending] and len(st.pending) == 1
    applied = runner.run(database, merged)
    assert [m.name for m in applied] == [p.stem for p in st.pending]
    assert rows(database) == [(1, "kept")]
    assert database.conn.execute("SELECT sql FROM sqlite_master WHERE name = 'app_post'").fetchone()[0].count("80")


def test_revert_refuses_a_module_whose_table_another_module_changed_since(tmp_path, database):
    main = tmp_path / "m"
    generate(main, users(), now=T0)
    generate(main, users(nickname=True), now=T0 + timedelta(hours=1))
    runner.run(database, main)
    # By hand, outside any module: the table is no longer as the last module left it.
    database.conn.execute("ALTER TABLE app_user ADD COLUMN extra text")
    database.conn.commit()
    with pytest.raises(ShapeMismatch, match="app_user has column extra that .* did not expect; nothing was "
                                            "changed. The table is no longer as"):
        runner.revert(database, main, allow_destructive=True)
    assert "extra" in [r[1] for r in database.conn.execute("PRAGMA table_info(app_user)")]


def test_frozen_modules_of_format_1_and_unnumbered_modules_keep_loading(tmp_path):
    """Generated modules are committed: their format is public. A module written by this version (format
    1, frozen here as text) and one from before formats were numbered both load and run."""
    d = tmp_path / "m"
    d.mkdir()
    (d / "20260101_000000_01_create_t.py").write_text('''"""Create table t."""

module_format = 1
table = 't'
label = ''
before = None
after = {
    'table': 't',
    'columns': ['id', 'v'],
    'fingerprint': 'not checked when applying up',
}
destructive = []
down_destructive = [
    'drops table t and all its rows',
]

up = [
    """CREATE TABLE "t" (
    "id" integer NOT NULL PRIMARY KEY,
    "v" text
)""",
]

down = [
    'DROP TABLE "t"',
]
''')
    (d / "20260102_000000_01_update_t.py").write_text(
        "table = 't'\nup = ['ALTER TABLE \"t\" ADD COLUMN \"w\" text']\ndown = ['ALTER TABLE \"t\" DROP COLUMN \"w\"']\n")
    first, second = load_migrations(d)
    assert (first.module_format, first.before, first.after["columns"]) == (1, None, ["id", "v"])
    assert (second.module_format, second.before, second.after) == (0, None, None)
    conn = sqlite3.connect(":memory:", isolation_level=None)
    from tablemigrate.run.apply import apply_migration

    for m in (first, second):
        apply_migration(conn, m, "up")
    assert [r[1] for r in conn.execute("PRAGMA table_info(t)")] == ["id", "v", "w"]
    (d / "20260103_000000_01_future.py").write_text("module_format = 5\nup = []\n")
    from tablemigrate.errors import MigrationFileError

    with pytest.raises(MigrationFileError, match="module format 5 is newer than this tablemigrate reads"):
        load_migrations(d)


def test_generated_modules_state_their_shapes(tmp_path):
    d = tmp_path / "m"
    generate(d, users(), now=T0)
    result = generate(d, users(nickname=True), now=T0 + timedelta(hours=1))
    [module] = result.modules
    assert "module_format = 1\n" in module.text
    loaded = load_migrations(d)[-1]
    assert loaded.before["columns"] == ["id", "username"] and loaded.after["columns"] == ["id", "username", "nickname"]
    assert loaded.before["fingerprint"] != loaded.after["fingerprint"]
    assert render_module(module.plan, "", T0) .count("'fingerprint'") == 2


def test_the_format_1_fingerprint_is_frozen():
    """Committed modules record fingerprints: the function that makes them is part of module format 1.
    This value was computed when format 1 was defined; if it changes, old modules would refuse to run
    (a new fingerprint needs a new module format, with format 1 modules still checked the old way).
    Layout, name case and indexes do not count."""
    from tablemigrate.sqlite.introspect import introspect
    from tablemigrate.sqlite.shapes import fingerprint

    def table(create: str, *more: str):
        conn = sqlite3.connect(":memory:")
        conn.execute("CREATE TABLE p (id integer PRIMARY KEY)")
        conn.execute(create)
        for sql in more:
            conn.execute(sql)
        return introspect(conn).tables["t"]

    create = ('CREATE TABLE "T" ("id" integer NOT NULL PRIMARY KEY AUTOINCREMENT, "Name" varchar(30) NOT NULL '
              "COLLATE NOCASE DEFAULT 'x', \"p_id\" integer REFERENCES \"p\" (\"id\") DEFERRABLE INITIALLY DEFERRED, "
              '"n" integer GENERATED ALWAYS AS ("id" * 2) VIRTUAL, CONSTRAINT "u" UNIQUE ("Name", "p_id"), '
              'CHECK ("id" > 0))')
    frozen = "f054059d1527ebd578056a5d0af64a1ea8ac27dd3c1c1fd8a398086140e314ab"
    assert fingerprint(table(create, 'CREATE INDEX ix ON "T" ("n")')) == frozen
    laid_out = create.replace(", ", ",\n    ").replace('"T"', "t").replace('"Name"', '"NAME"')
    assert fingerprint(table(laid_out)) == frozen
    assert fingerprint(table(create.replace("varchar(30)", "varchar(31)"))) != frozen


def accept(path, recorded: str) -> None:
    """Write the acceptance the refusal asks for: the recorded checksum, and the file's body checksum."""
    from tablemigrate.history.loader import body_checksum

    text = path.read_text() + f"\n# a comment was added\nprevious_checksums = [{recorded!r}]\n"
    path.write_text(text + f"accepted_checksum = {body_checksum(text.encode())!r}\n")


def test_an_intentional_edit_of_an_applied_module_is_accepted_in_the_module_and_a_silent_one_refused(tmp_path):
    """Two databases applied version X. The edit Y is accepted in the module; one database runs and
    records Y. A later edit Z, not accepted, is refused on both: on the one that recorded Y, and on
    the one that still records X (found by a review: accepting by the old checksum alone let Z in)."""
    from tablemigrate.errors import HistoryMismatch
    from tablemigrate.history.loader import checksum
    from tablemigrate.history.status import status

    d = tmp_path / "m"
    generate(d, users(), now=T0)
    with private_database(str(tmp_path / "one.sqlite3")) as one_db, \
            private_database(str(tmp_path / "two.sqlite3")) as two_db:
        one = Target("default", raw(one_db), tmp_path / "one.sqlite3")
        two = Target("default", raw(two_db), tmp_path / "two.sqlite3")
        runner.run(one, d)
        runner.run(two, d)
        [path] = list(d.glob("*.py"))
        applied = checksum(path.read_bytes())
        path.write_text(path.read_text().replace("label = ''", "label = ''  # reviewed: the users table"))
        with pytest.raises(HistoryMismatch, match=rf"previous_checksums = \['{applied}'\] .* accepted_checksum = "):
            runner.run(one, d)
        accept(path, applied)
        generate(d, users(nickname=True), now=T0 + timedelta(hours=1))
        assert [m.name for m in runner.run(one, d)] == [sorted(p.stem for p in d.glob("*.py"))[-1]]
        assert status(one.conn, d).accepted == []  # recorded: the edited file is now the applied version
        (recorded,) = one.conn.execute("SELECT checksum FROM tablemigrate_history WHERE name = ?", (path.stem,))
        assert recorded[0] == checksum(path.read_bytes())
        assert status(two.conn, d).accepted == [path.stem]  # two has not run since: X, accepted
        # An edit after the acceptance, not accepted: refused on both databases.
        path.write_text(path.read_text().replace("up = [", "up = [\n    'CREATE TABLE sneaky (x)',"))
        for target in (one, two):
            with pytest.raises(HistoryMismatch, match="edited after it was applied"):
                runner.run(target, d)
        assert two.conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'sneaky'").fetchone() == (0,)


def test_a_refused_run_records_no_acceptance(tmp_path, database):
    """`nothing was changed` stays true: the acceptance is recorded after a run that succeeded."""
    from tablemigrate.history.loader import checksum

    main, a, _b, merged = branches(tmp_path, users(), users(nickname=True), users(username=60))
    runner.run(database, a)
    path = sorted(a.glob("*.py"))[0]
    merged_path = merged / path.name
    applied = checksum(merged_path.read_bytes())
    accept(merged_path, applied)
    with pytest.raises(ShapeMismatch, match="nothing was changed"):
        runner.run(database, merged)
    (recorded,) = database.conn.execute("SELECT checksum FROM tablemigrate_history WHERE name = ?", (path.stem,))
    assert recorded[0] == applied


def test_revert_records_an_accepted_edit_too(tmp_path, database):
    from tablemigrate.history.loader import checksum

    d = tmp_path / "m"
    generate(d, users(), now=T0)
    generate(d, users(nickname=True), now=T0 + timedelta(hours=1))
    runner.run(database, d)
    last = sorted(d.glob("*.py"))[-1]
    applied = checksum(last.read_bytes())
    accept(last, applied)
    assert [m.name for m in runner.revert(database, d, allow_destructive=True, lock_timeout=2)] == [last.stem]
    assert "nickname" not in [r[1] for r in database.conn.execute("PRAGMA table_info(app_user)")]


def test_a_parent_renamed_on_one_branch_is_named_when_the_other_branch_changes_a_child(tmp_path, database):
    """A known limit (found by a review): renaming a table rewrites the foreign keys of the tables that
    reference it, so a module of the other branch for such a table finds it changed and is refused,
    although the branches changed different tables. Nothing is lost; the refusal says why."""
    from tablemigrate.sqlite.diff import Renames

    def spec(parent: str = "app_parent", extra: bool = False) -> list:
        s = ProjectSpec()
        s.tables["Parent"] = TableSpec("Parent", parent, [FieldSpec("name", "char")])
        fields = [FieldSpec("parent", "fk", target="Parent", null=True)]
        if extra:
            fields.append(FieldSpec("extra", "char", null=True))
        s.tables["Child"] = TableSpec("Child", "app_child", fields)
        return build_models(s)

    main = tmp_path / "main"
    generate(main, spec(), now=T0)
    a, b, merged = tmp_path / "a", tmp_path / "b", tmp_path / "merged"
    for d in (a, b, merged):
        shutil.copytree(main, d)
    generate(a, spec("app_owner"), now=T0 + timedelta(hours=2), renames=Renames.parse(["app_parent:app_owner"]))
    generate(b, spec(extra=True), now=T0 + timedelta(hours=1))
    for branch in (a, b):
        for p in branch.glob("*.py"):
            shutil.copy(p, merged / p.name)
    runner.run(database, a)  # the rename first
    with pytest.raises(ShapeMismatch, match="app_child's foreign keys reference app_owner where .* expects "
                                            "app_parent \\(a table they reference was renamed or replaced since\\)"):
        runner.run(database, merged)


def test_the_system_check_reports_a_merge_of_two_branches_that_changed_one_table(tmp_path, settings):
    from tablemigrate.checks import check_branch_conflicts

    def w005(directory):
        settings.TABLEMIGRATE_MIGRATIONS_DIR = directory
        return [m for m in check_branch_conflicts() if m.id == "tablemigrate.W005"]

    _main, a, b, merged = branches(tmp_path / "same", users(), users(nickname=True), users(username=60))
    [warning] = w005(merged)
    later = sorted(p.stem for p in b.glob("*.py"))[-1]
    assert later in warning.msg and "both change app_user from the same starting point" in warning.msg
    assert w005(a) == [] and w005(b) == []  # each branch's own history, as generate left it
    _main, a, b, merged = branches(tmp_path / "different", users(posts=True), users(posts=True, username=60),
                                   users(posts=True, post_title=80))
    assert w005(merged) == []
    linear = tmp_path / "linear"  # a column added, then dropped: the table is back where it started
    generate(linear, users(), now=T0)
    generate(linear, users(nickname=True), now=T0 + timedelta(hours=1))
    generate(linear, users(), now=T0 + timedelta(hours=2))
    generate(linear, users(username=60), now=T0 + timedelta(hours=3))
    (linear / "schema.sql").unlink()  # so the check reads the modules
    assert w005(linear) == []


@pytest.mark.subprocess
def test_show_says_which_pending_module_run_would_refuse_and_why(example):
    """Through manage.py on the example project: a pending module expecting another shape of its table
    (as after a merge) is listed with the refusal `run` would give."""
    from .helpers import tablemigrate

    tablemigrate(example, "run", "--noinput")
    (example / "example_project" / "tablemigrations" / "99999999_999999_01_update_posts_post.py").write_text(
        "module_format = 1\ntable = 'posts_post'\n"
        "before = {'table': 'posts_post', 'columns': ['id', 'title'], 'fingerprint': '" + "0" * 64 + "'}\n"
        "after = None\nup = ['DROP TABLE posts_post']\n")
    out = tablemigrate(example, "show").stdout
    assert "`run` refuses it: posts_post has column" in out and "that 99999999_999999_01_update_posts_post did not " \
        "expect" in out
    refused = tablemigrate(example, "run", "--noinput", check=False)
    assert refused.returncode == 2 and "did not expect; nothing was changed" in refused.stderr


def test_generate_offers_to_replan_the_refused_module_against_the_merged_history(tmp_path):
    """The rebase, asked: the module the replay refuses is deleted and its change generated again from
    the merged history, only when a human says it is applied nowhere."""
    from tablemigrate.generate.pipeline import Questioner

    class Answers(Questioner):
        interactive = True

        def __init__(self, *answers):
            self.answers, self.asked = list(answers), []

        def confirm(self, question):
            self.asked.append(question)
            return self.answers.pop(0) if self.answers else False

    _main, a, b, merged = branches(tmp_path, users(), users(nickname=True), users(username=60))
    both = users(username=60, nickname=True)
    refused = sorted({p.name for p in b.glob("*.py")} - {p.name for p in a.glob("*.py")})
    no = Answers(False)
    with pytest.raises(GenerateError, match="conflicts with itself"):
        generate(merged, both, questioner=no, now=T0 + timedelta(hours=3))
    assert "Answer yes only if" in no.asked[0] and (merged / refused[0]).is_file()
    yes = Answers(True)
    result = generate(merged, both, questioner=yes, now=T0 + timedelta(hours=3))
    assert not (merged / refused[0]).exists() and len(yes.asked) == 1
    [module] = result.modules
    assert "nickname" in module.text and "varchar(60)" in module.text
    assert not generate(merged, both, write=False).changed  # the merged history is the merged models


def test_a_type_change_from_the_other_branch_is_named_in_the_refusal(tmp_path, database):
    """Found by a new-user trial: the refusal on the database that applied the widening named no column."""
    _main, a, b, merged = branches(tmp_path, users(), users(nickname=True), users(username=60))
    runner.run(database, b)  # the widening first; branch A's module (named earlier) expects varchar(30)
    with pytest.raises(ShapeMismatch, match=r"app_user.username is varchar\(60\) NOT NULL where "
                                            r"20261201_010000_01_update_app_user expects varchar\(30\) NOT NULL"):
        runner.run(database, merged)
