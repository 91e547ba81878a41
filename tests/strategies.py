"""Hypothesis strategies: a random project spec, and a random set of changes to it."""

from __future__ import annotations

from hypothesis import strategies as st

from tablemigrate.sqlite.diff import Renames

from .modelgen import CHECK_OK, KINDS, ON_DELETE, TYPE_CHANGES, UNIQUE_OK, FieldSpec, ProjectSpec, TableSpec


@st.composite
def field_specs(draw, name: str, targets: list[str]) -> FieldSpec:
    kind = draw(st.sampled_from(KINDS + (["fk"] if targets else [])))
    if kind == "fk":
        on_delete = draw(st.sampled_from(sorted(ON_DELETE)))
        return FieldSpec(name, "fk", null=on_delete == "SET_NULL" or draw(st.booleans()),
                         target=draw(st.sampled_from(targets)), on_delete=on_delete)
    return FieldSpec(name, kind, null=draw(st.booleans()), has_default=draw(st.booleans()),
                     unique=kind in UNIQUE_OK and draw(st.booleans()),
                     index=draw(st.booleans()) if kind not in ("json", "binary") else False)


@st.composite
def table_specs(draw, key: str, targets: list[str]) -> TableSpec:
    n = draw(st.integers(0, 4))
    t = TableSpec(key, f"tbl_{key.lower()}")
    t.fields = [draw(field_specs(f"f{i}", targets + [key] * draw(st.booleans()))) for i in range(n)]
    if targets and draw(st.booleans()):
        t.m2m.append(("links", draw(st.sampled_from(targets))))
    plain = [f.name for f in t.fields if f.kind not in ("json", "binary")]
    if len(plain) >= 2 and draw(st.booleans()):
        t.indexes.append((f"ix_{key.lower()}_1", tuple(plain[:2])))
    uniq = [f.name for f in t.fields if f.kind in UNIQUE_OK]
    if uniq and draw(st.booleans()):
        t.uniques.append((f"uq_{key.lower()}_1", (uniq[0],)))
    chk = [f.name for f in t.fields if f.kind in CHECK_OK]
    if chk and draw(st.booleans()):
        t.checks.append((f"ck_{key.lower()}_1", chk[0]))
    return t


@st.composite
def projects(draw) -> ProjectSpec:
    spec = ProjectSpec()
    for i in range(draw(st.integers(1, 3))):
        key = f"T{i}"
        spec.tables[key] = draw(table_specs(key, list(spec.tables)))
    return spec


def _used_in_meta(t: TableSpec, name: str) -> bool:
    return any(name in fs for _, fs in t.indexes + t.uniques) or any(f == name for _, f in t.checks)


@st.composite
def changes(draw, old: ProjectSpec) -> tuple[ProjectSpec, Renames, list[str]]:
    """A new spec made from `old` by 1-3 random changes; the renames to declare; what was done."""
    new = old.clone()
    column_renames: list[tuple[str, str, str]] = []  # (table key, old column, new column)
    added: set[str] = set()
    done: list[str] = []
    counter = [100]

    def fresh(prefix: str) -> str:
        counter[0] += 1
        return f"{prefix}{counter[0]}"

    for _ in range(draw(st.integers(1, 3))):
        tables = list(new.tables.values())
        t = draw(st.sampled_from(tables))
        op = draw(st.sampled_from([
            "add_field", "drop_field", "toggle_null", "change_type", "toggle_index", "toggle_unique",
            "rename_field", "add_table", "drop_table", "rename_table", "rename_model", "toggle_meta_index",
            "toggle_check", "toggle_default", "change_on_delete"]))
        plain = [f for f in t.fields if f.kind != "fk"]
        earlier = list(new.tables)[:list(new.tables).index(t.key)]
        if op == "add_field":
            f = draw(field_specs(fresh("n"), earlier))
            f.unique = False  # existing rows would all get the same value
            if f.kind == "fk":
                f.null = True  # an FK backfill value would have to name an existing row
            t.fields.append(f)
            added.add(f.name)
        elif op == "drop_field" and t.fields:
            f = draw(st.sampled_from(t.fields))
            if _used_in_meta(t, f.name):
                continue
            t.fields.remove(f)
        elif op == "toggle_null" and plain:
            f = draw(st.sampled_from(plain))
            f.null = not f.null
            if not f.null:
                f.has_default = True  # existing NULLs need a value to become
        elif op == "change_type" and [f for f in plain if f.kind in TYPE_CHANGES]:
            f = draw(st.sampled_from([f for f in plain if f.kind in TYPE_CHANGES]))
            f.kind = draw(st.sampled_from(TYPE_CHANGES[f.kind]))
            f.max_length = draw(st.sampled_from([30, 80, 254]))
            if f.kind not in UNIQUE_OK:
                f.unique = False
            if f.kind not in CHECK_OK:
                t.checks = [c for c in t.checks if c[1] != f.name]
        elif op == "toggle_index" and [f for f in plain if f.kind not in ("json", "binary")]:
            f = draw(st.sampled_from([f for f in plain if f.kind not in ("json", "binary")]))
            f.index = not f.index
        elif op == "toggle_unique" and [f for f in plain if f.kind in UNIQUE_OK and f.name not in added]:
            f = draw(st.sampled_from([f for f in plain if f.kind in UNIQUE_OK and f.name not in added]))
            f.unique = not f.unique
        elif op == "rename_field" and t.fields:
            f = draw(st.sampled_from(t.fields))
            old_col = f.column
            new_name = fresh("r")
            for coll in (t.indexes, t.uniques):
                coll[:] = [(n, tuple(new_name if x == f.name else x for x in fs)) for n, fs in coll]
            t.checks = [(n, new_name if x == f.name else x) for n, x in t.checks]
            f.name = new_name
            column_renames.append((t.key, old_col, f.column))
        elif op == "add_table":
            key = fresh("T")
            new.tables[key] = draw(table_specs(key, [k for k in new.tables]))
        elif op == "drop_table" and len(tables) > 1 and not new.referenced(t.key):
            del new.tables[t.key]
        elif op == "rename_table" and t.key in old.tables and t.db_table == old.tables[t.key].db_table:
            t.db_table = f"tbl_{fresh('renamed')}"
        elif op == "rename_model" and t.key in old.tables and t.cls == old.tables[t.key].cls:
            t.model_name = fresh("M")  # its many-to-many columns follow (`t0_id` -> `m101_id`): nothing declared
        elif op == "toggle_meta_index":
            cols = [f.name for f in plain if f.kind not in ("json", "binary")]
            if t.indexes:
                t.indexes.pop()
            elif cols:
                t.indexes.append((fresh("ix_"), (cols[-1],)))
        elif op == "toggle_check":
            cols = [f.name for f in plain if f.kind in CHECK_OK]
            if t.checks:
                t.checks.pop()
            elif cols:
                t.checks.append((fresh("ck_"), cols[0]))
        elif op == "toggle_default" and plain:
            f = draw(st.sampled_from(plain))
            f.has_default = not f.has_default
        elif op == "change_on_delete" and [f for f in t.fields if f.kind == "fk"]:
            f = draw(st.sampled_from([f for f in t.fields if f.kind == "fk"]))
            f.on_delete = "SET_NULL" if f.null else "CASCADE"
        else:
            continue
        done.append(f"{op} {t.key}")
    renames = Renames()
    for key, t in list(new.tables.items()):
        before = old.tables.get(key)
        if before is not None and before.db_table != t.db_table:
            renames.add_table(before.db_table, t.db_table)  # its many-to-many tables follow: not declared
            if draw(st.booleans()):  # a new model takes the name the rename frees (and its m2m tables')
                taker = fresh("T")
                new.tables[taker] = draw(table_specs(taker, list(new.tables)))
                new.tables[taker].db_table = before.db_table
                done.append(f"take_freed_name {key}")
    final: dict[tuple[str, str], str] = {}  # (table key, original column) -> last name
    for key, old_col, new_col in column_renames:
        origin = next((o for (k, o), n in final.items() if k == key and n == old_col), old_col)
        final[(key, origin)] = new_col
    for (key, old_col), new_col in final.items():
        if key in new.tables and key in old.tables \
                and any(f.column == old_col for f in old.tables[key].fields) \
                and any(f.column == new_col for f in new.tables[key].fields):
            renames.add_column(new.tables[key].db_table, old_col, new_col)
    return new, renames, done
