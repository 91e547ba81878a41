"""Issue 22 item 8: a model rename carries the many-to-many tables Django made for it, and their columns,
as Django's RenameModel does (`shop_item_tags` -> `shop_product_tags`, `item_id` -> `product_id`, also in
`shop_order_items`, the table of another model's field that points at it); the foreign keys of other
tables follow the renamed table; a table name a rename frees can be taken by a new model in the same
`generate`. Through the command (`generate`, `run`, `revert`), on rows in every table."""

from __future__ import annotations

from unittest import mock

import pytest
from django.apps.registry import Apps
from django.core.management import CommandError, call_command
from django.db import connection, models
from django.test import override_settings

from tablemigrate import conf
from tablemigrate.generate.pipeline import Questioner, generate, models_schema
from tablemigrate.history.loader import load_migrations
from tablemigrate.sqlite.diff import Renames
from tablemigrate.sqlite.introspect import introspect
from tablemigrate.sqlite.sqltext import quote

#: The rows of the first models, in column order (a join table's owner column first, as Django makes it).
ROWS = {
    "shop_tag": [(1, "red"), (2, "green"), (3, "blue")],
    "shop_item": [(1, "pen"), (2, "ink"), (3, "pad")],
    "shop_item_tags": [(1, 1, 1), (2, 1, 2), (3, 2, 3)],
    "shop_item_labels": [(1, 3, 1), (2, 2, 2)],  # not the tags' pairs: a swap would show
    "shop_item_related": [(1, 1, 2), (2, 2, 1), (3, 3, 1)],  # from, to
    "shop_order": [(1, "first"), (2, "second")],
    "shop_order_items": [(1, 1, 3), (2, 2, 1), (3, 2, 2)],  # order, item
    "shop_review": [(1, 1, "good"), (2, 3, "bad")],
}


def shop(item: str = "Item", item_table: str | None = None, new_item: bool = False, labels: str = "labels",
         m2m: bool = True, review_new: bool = False) -> list[type[models.Model]]:
    """Tag; Item (renamed `item`, its table `item_table`) with two many-to-many fields to Tag (`tags`,
    `labels`) and one to itself; Order with a many-to-many field to Item; Review with a foreign key to
    Item. `new_item`: a new model named Item, with many-to-many tags of its own (it takes the names the
    rename frees). Without `m2m`: Tag, Item and Review alone. `review_new`: Review's foreign key points
    at the new Item."""
    registry = Apps()

    def model(class_name: str, table: str | None = None, **fields: models.Field) -> type[models.Model]:
        meta = {"app_label": "shop", "apps": registry, **({"db_table": table} if table else {})}
        return type(class_name, (models.Model,), {"__module__": __name__, "Meta": type("Meta", (), meta), **fields})

    def many(**targets) -> dict[str, models.Field]:
        return {name: models.ManyToManyField(to, related_name="+") for name, to in targets.items()} if m2m else {}

    tag = model("Tag", name=models.CharField(max_length=20))
    renamed = model(item, item_table, name=models.CharField(max_length=20),
                    **many(tags=tag, **{labels: tag}), **({"related": models.ManyToManyField("self")} if m2m else {}))
    out = [tag, renamed]
    if m2m:
        out.append(model("Order", note=models.CharField(max_length=20), **many(items=renamed)))
    if new_item:
        out.append(model("Item", label=models.CharField(max_length=20), **many(tags=tag)))
    parent = out[-1] if review_new else renamed
    out.append(model("Review", item=models.ForeignKey(parent, models.CASCADE, related_name="+"),
                     text=models.TextField()))
    return out


@pytest.fixture
def command(tmp_path):
    """`manage.py tablemigrate ...` on the test database with `shop`'s models as the app's; yields a
    function that runs one command with the given models. The tables it makes are dropped afterwards."""
    current: list = []

    def tablemigrate(models_: list, *args: str) -> None:
        current[:] = models_
        call_command("tablemigrate", *args, "--noinput", verbosity=0)

    before = set(table_names())
    with override_settings(TABLEMIGRATE_MIGRATIONS_DIR=tmp_path / "m"), \
            mock.patch("tablemigrate.project.build.managed_models", lambda alias="default": list(current)):
        yield tablemigrate
    with connection.cursor() as cursor:  # the shared in-memory test database: leave it as found
        cursor.execute("PRAGMA foreign_keys = OFF")
        for name in set(table_names()) - before:
            cursor.execute(f"DROP TABLE {quote(name)}")


def table_names() -> list[str]:
    query = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%'"
    return [n for (n,) in live().execute(query)]


def live():
    connection.ensure_connection()
    return connection.connection


def shop_schema(models_: list) -> tuple[dict, dict]:
    """The test database's tables of `models_`, and those the models build."""
    built = models_schema(models_).tables
    return {k: t for k, t in introspect(live()).tables.items() if k in built}, built


def rows(table: str) -> list[tuple]:
    return live().execute(f"SELECT * FROM {quote(table)} ORDER BY id").fetchall()


def seeded(command, first: list, tables: dict[str, str] | None = None, without: set[str] = set()) -> list[str]:
    """The first models generated and run, with ROWS in the tables they have (their names renamed by
    `tables`), but for those `without`; returns the modules' names."""
    command(first, "generate")
    command(first, "run", "--no-backup")
    built = models_schema(first).tables
    for table, values in ROWS.items():
        name = (tables or {}).get(table, table)
        if name in built and table not in without:
            live().executemany(f"INSERT INTO {quote(name)} VALUES ({', '.join('?' * len(values[0]))})", values)
    return [m.name for m in load_migrations(conf.migrations_dir())]


def assert_carried(new_models: list, tables: dict[str, str]) -> None:
    """The database is the one the models build, every row of every table is where `tables` (old ->
    new) puts it, and every foreign key holds."""
    got, want = shop_schema(new_models)
    assert got == want
    for old, new in tables.items():
        assert rows(new) == ROWS[old], (old, new)
    assert live().execute("PRAGMA foreign_key_check").fetchall() == []


def assert_restored(first: list) -> None:
    got, want = shop_schema(first)
    assert got == want
    for table, values in ROWS.items():
        assert rows(table) == values, table


PRODUCT = {"shop_tag": "shop_tag", "shop_item": "shop_product", "shop_item_tags": "shop_product_tags",
           "shop_item_labels": "shop_product_labels", "shop_item_related": "shop_product_related",
           "shop_order": "shop_order", "shop_order_items": "shop_order_items", "shop_review": "shop_review"}


def test_a_model_rename_carries_its_many_to_many_tables_and_columns_and_keeps_every_row(command):
    first = shop()
    applied = seeded(command, first)
    renamed = shop("Product")
    command(renamed, "generate", "--rename", "shop_item:shop_product")
    command(renamed, "run", "--no-backup")  # nothing destructive: no --allow-destructive needed
    assert_carried(renamed, PRODUCT)
    assert [c for (c,) in live().execute("SELECT name FROM pragma_table_info('shop_order_items')")] == [
        "id", "order_id", "product_id"]
    assert [c for (c,) in live().execute("SELECT name FROM pragma_table_info('shop_product_related')")] == [
        "id", "from_product_id", "to_product_id"]
    assert live().execute("SELECT \"table\" FROM pragma_foreign_key_list('shop_review')").fetchall() == [
        ("shop_product",)]  # the foreign key of another table follows the renamed table
    command(renamed, "generate", "--check")  # nothing left to generate
    command(renamed, "revert", "--no-backup", "--to", applied[-1])
    assert_restored(first)


def test_a_model_rename_with_a_db_table_of_its_own_carries_the_same(command):
    first = shop()
    applied = seeded(command, first)
    renamed = shop("Product", "catalog_product")
    command(renamed, "generate", "--rename", "shop_item:catalog_product")
    command(renamed, "run", "--no-backup")
    assert_carried(renamed, {**PRODUCT, "shop_item": "catalog_product", "shop_item_tags": "catalog_product_tags",
                             "shop_item_labels": "catalog_product_labels",
                             "shop_item_related": "catalog_product_related"})
    command(renamed, "revert", "--no-backup", "--to", applied[-1])
    assert_restored(first)


def test_a_model_renamed_under_a_table_name_that_stays_renames_the_join_columns(command):
    """Django's RenameModel renames `inventory_tags.item_id` even when the model's db_table stays."""
    first = shop(item_table="inventory")
    applied = seeded(command, first, {"shop_item": "inventory", "shop_item_tags": "inventory_tags",
                                         "shop_item_labels": "inventory_labels",
                                         "shop_item_related": "inventory_related"})
    renamed = shop("Product", "inventory")
    command(renamed, "generate")  # no table renamed: nothing to declare
    command(renamed, "run", "--no-backup")
    assert [c for (c,) in live().execute("SELECT name FROM pragma_table_info('inventory_tags')")] == [
        "id", "product_id", "tag_id"]
    got, want = shop_schema(renamed)
    assert got == want
    assert rows("inventory_tags") == ROWS["shop_item_tags"] and rows("shop_order_items") == ROWS["shop_order_items"]
    command(renamed, "revert", "--no-backup", "--to", applied[-1])
    got, want = shop_schema(first)
    assert got == want and rows("inventory_tags") == ROWS["shop_item_tags"]


def test_a_table_name_freed_and_taken_in_one_generate_renames_first_then_creates(command):
    first = shop()
    applied = seeded(command, first)
    renamed = shop("Product", new_item=True)  # a new Item takes shop_item and shop_item_tags
    command(renamed, "generate", "--rename", "shop_item:shop_product")
    names = [m.name.split("_", 3)[3] for m in load_migrations(conf.migrations_dir())[len(applied):]]
    assert names.index("rename_shop_product") < names.index("create_shop_item")
    assert names.index("rename_shop_product_tags") < names.index("create_shop_item_tags")
    command(renamed, "run", "--no-backup")
    assert_carried(renamed, PRODUCT)
    assert rows("shop_item") == [] and rows("shop_item_tags") == []  # the new model's tables
    live().execute("INSERT INTO shop_item VALUES (9, 'new')")
    command(renamed, "revert", "--no-backup", "--allow-destructive", "--to", applied[-1])  # drops the new item
    assert_restored(first)


def test_a_name_freed_and_taken_without_many_to_many_tables_too(command):
    first = shop(m2m=False)
    applied = seeded(command, first)
    renamed = shop("Product", new_item=True, m2m=False)
    command(renamed, "generate", "--rename", "shop_item:shop_product")
    command(renamed, "run", "--no-backup")
    assert_carried(renamed, {"shop_tag": "shop_tag", "shop_item": "shop_product", "shop_review": "shop_review"})
    assert rows("shop_item") == []
    command(renamed, "revert", "--no-backup", "--allow-destructive", "--to", applied[-1])
    got, want = shop_schema(first)
    assert got == want and rows("shop_item") == ROWS["shop_item"] and rows("shop_review") == ROWS["shop_review"]


def test_a_foreign_key_moved_to_the_new_table_of_the_freed_name_is_rebuilt_to_point_at_it(command):
    """Review's text is the same before and after (REFERENCES "shop_item"), but it names another table:
    the rename would have carried it to shop_product."""
    first = shop(m2m=False)
    applied = seeded(command, first, without={"shop_review"})  # its rows would name items the new table lacks
    renamed = shop("Product", new_item=True, m2m=False, review_new=True)
    command(renamed, "generate", "--rename", "shop_item:shop_product")
    command(renamed, "run", "--no-backup")
    got, want = shop_schema(renamed)
    assert got == want and rows("shop_product") == ROWS["shop_item"]
    assert live().execute("SELECT \"table\" FROM pragma_foreign_key_list('shop_review')").fetchall() == [("shop_item",)]
    command(renamed, "revert", "--no-backup", "--allow-destructive", "--to", applied[-1])
    got, want = shop_schema(first)
    assert got == want and rows("shop_item") == ROWS["shop_item"]
    assert live().execute("SELECT \"table\" FROM pragma_foreign_key_list('shop_review')").fetchall() == [("shop_item",)]


def test_an_undeclared_model_rename_is_named_as_the_rename_to_declare(command):
    """Without --rename, the join column Django renamed (`shop_order_items.product_id`, NOT NULL) cannot
    be filled: the error names the table rename that carries it, not a rename of that column alone."""
    seeded(command, shop())
    with pytest.raises(CommandError, match=r"If table shop_item was renamed to shop_product, pass "
                                           r"`--rename shop_item:shop_product`") as caught:
        command(shop("Product"), "generate")
    assert caught.value.returncode != 0 and "\n" not in str(caught.value)


class Answers(Questioner):
    interactive = True

    def __init__(self, *answers: bool):
        self.answers, self.asked = list(answers), []

    def confirm(self, question: str) -> bool:
        self.asked.append(question)
        return self.answers.pop(0) if self.answers else False


@pytest.mark.parametrize("whole", [False, True], ids=["changed-tables", "whole-schemas"])
def test_a_table_rename_accepted_when_asked_carries_the_rest_without_more_questions(tmp_path, whole, monkeypatch):
    d = tmp_path / "m"
    generate(d, shop())
    answers = Answers(True)
    modules = generate(d, shop("Product"), questioner=answers, write=False, markers=not whole).modules
    assert answers.asked == ["Did you rename table shop_item to shop_product?"]
    assert {m.plan.old_table: m.plan.table for m in modules} == {
        "shop_item": "shop_product", "shop_item_labels": "shop_product_labels",
        "shop_item_related": "shop_product_related", "shop_item_tags": "shop_product_tags",
        "shop_order_items": "shop_order_items"}
    assert not [r for m in modules for r in m.plan.destructive + m.plan.down_destructive]


def test_the_table_of_a_field_that_is_gone_is_dropped_not_carried_onto_a_new_fields(tmp_path):
    """Item's `labels` is replaced by `marks` (to Tag too) while Item is renamed: `shop_item_labels` and
    `shop_product_marks` have the same structure, but the metadata says they serve other fields."""
    d = tmp_path / "m"
    generate(d, shop())
    modules = generate(d, shop("Product", labels="marks"), renames=Renames.parse(["shop_item:shop_product"]),
                       write=False, questioner=Answers()).modules
    verbs = {(m.plan.verb, m.plan.old_table or m.plan.table, m.plan.table) for m in modules}
    assert ("drop", "shop_item_labels", "shop_item_labels") in verbs
    assert ("create", "shop_product_marks", "shop_product_marks") in verbs
    assert ("rename", "shop_item_tags", "shop_product_tags") in verbs


def test_a_rename_the_user_declared_wins_over_the_carried_one(tmp_path):
    d = tmp_path / "m"
    generate(d, shop())
    renames = Renames.parse(["shop_item:shop_product", "shop_item_labels:shop_product_tags",
                             "shop_item_tags:shop_product_labels"])
    modules = generate(d, shop("Product"), renames=renames, write=False).modules
    assert {m.plan.old_table: m.plan.table for m in modules if m.plan.verb == "rename"} == {
        "shop_item": "shop_product", "shop_item_labels": "shop_product_tags",
        "shop_item_tags": "shop_product_labels", "shop_item_related": "shop_product_related"}


def test_a_many_to_many_table_named_by_its_field_keeps_its_name_and_renames_its_column(tmp_path):
    def models_(item: str) -> list:
        registry = Apps()
        meta = type("Meta", (), {"app_label": "shop", "apps": registry})
        tag = type("Tag", (models.Model,), {"__module__": __name__, "Meta": meta})
        owner = type(item, (models.Model,), {"__module__": __name__, "Meta": type("Meta", (), {
            "app_label": "shop", "apps": registry}), "tags": models.ManyToManyField(tag, db_table="tag_links")})
        return [tag, owner]

    d = tmp_path / "m"
    generate(d, models_("Item"))
    modules = generate(d, models_("Product"), renames=Renames.parse(["shop_item:shop_product"]), write=False).modules
    links = next(m for m in modules if m.plan.table == "tag_links")
    assert links.plan.verb == "update"
    assert 'ALTER TABLE "tag_links" RENAME COLUMN "item_id" TO "product_id"' in links.plan.up
    assert not [r for m in modules for r in m.plan.destructive]
