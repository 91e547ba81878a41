"""Planned migrations -> readable Python modules (the snapshot file is `schemafile`'s)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from tablemigrate.errors import GenerateError
from tablemigrate.history.loader import (
    CHECKPOINT_FORMAT,
    MODEL_RENAMES_FORMAT,
    MODULE_FORMAT,
    PER_ROW_FORMAT,
    Replaced,
    Step,
)
from tablemigrate.operations import FillColumn, Operation, RebuildTable

from .plan import PlannedMigration


def py_string(text: str) -> str:
    """A Python literal for text: triple-quoted when multi-line and safe, repr otherwise."""
    if "\n" in text and '"""' not in text and "\\" not in text and not text.endswith('"'):
        return '"""' + text + '"""'
    return repr(text)


def serialize(value: object, indent: str) -> tuple[str, set[str]]:
    """A Python expression for an operation's argument, with the imports it needs. Text, mappings of
    text and flags are written here (text as `py_string` does); anything else (a Django field) as
    Django's migration writer writes it."""
    if isinstance(value, str):
        return py_string(value), set()
    if isinstance(value, bool) or value is None:
        return repr(value), set()
    if isinstance(value, dict):
        items, imports = "", set()
        for k, v in value.items():
            text, needs = (repr(v), set()) if isinstance(v, str) else serialize(v, indent + "    ")
            items += f"{indent}    {k!r}: {text},\n"
            imports |= needs
        return f"{{\n{items}{indent}}}", imports
    from django.db.migrations.writer import MigrationWriter

    return MigrationWriter.serialize(value)


def _render_operation(step: Operation, indent: str) -> tuple[str, set[str]]:
    """`Name(args),` from the operation's own `deconstruct()`: on one line when every argument fits on
    one, else one argument per line."""
    inner = indent + "    "
    positional, keyword = step.deconstruct()
    args: list[str] = []
    imports = {f"from tablemigrate.operations import {type(step).__name__}"}
    for name, value in [(None, v) for v in positional] + list(keyword.items()):
        text, needs = serialize(value, inner)
        args.append(text if name is None else f"{name}={text}")
        imports |= needs
    comment = f"  # {step.comment()}" if step.comment() else ""
    name = type(step).__name__
    if any("\n" in a for a in args):
        body = "".join(f"{inner}{a},\n" for a in args)
        return f"{indent}{name}(\n{body}{indent}),{comment}\n", imports
    return f"{indent}{name}({', '.join(args)}),{comment}\n", imports


def _render_step(step: Step, indent: str) -> tuple[str, set[str]]:
    if isinstance(step, str):
        return f"{indent}{py_string(step)},\n", set()
    return _render_operation(step, indent)


def _render_list(name: str, steps: list[Step]) -> tuple[str, set[str]]:
    if not steps:
        return f"{name} = []\n", set()
    rendered = [_render_step(s, "    ") for s in steps]
    return (f"{name} = [\n" + "".join(text for text, _ in rendered) + "]\n",
            set().union(*(needs for _, needs in rendered)))


def _render_shape(name: str, shape: dict | None) -> str:
    """What the module expects its table to be (shapes.py), one key per line."""
    if shape is None:
        return f"{name} = None\n"
    optional = "".join(f"    {key!r}: {shape[key]!r},\n" for key in ("types", "references") if key in shape)
    return (f"{name} = {{\n    'table': {shape['table']!r},\n    'columns': {shape['columns']!r},\n"
            f"{optional}    'fingerprint': {shape['fingerprint']!r},\n}}\n")


def _render_reasons(name: str, reasons: list[str]) -> str:
    if not reasons:
        return f"{name} = []\n"
    return f"{name} = [\n" + "".join(f"    {r!r},\n" for r in reasons) + "]\n"


def render_module(plan: PlannedMigration, label: str, when: datetime) -> str:
    head, tail = render_parts(plan, label, when)
    return head + shape_lines(plan) + tail


def shape_lines(plan: PlannedMigration) -> str:
    """The lines of `plan`'s module that state its table's shapes (`before`, `after`), which `generate`
    knows only once the module has run: `render_module` is `head + shape_lines(plan) + tail`."""
    return _render_shape("before", plan.before) + _render_shape("after", plan.after)


def render_parts(plan: PlannedMigration, label: str, when: datetime) -> tuple[str, str]:
    """`plan`'s module without its shape lines: the text before them and the text after them."""
    what = {"create": "Create", "update": "Update", "rename": "Rename and update", "drop": "Drop"}[plan.verb]
    summary = "".join(f"  - {line}\n" for line in plan.summary)
    destructive = "yes: " + "; ".join(plan.destructive) if plan.destructive else "no"
    doc = (f"{what} {plan.noun} {plan.table}.\n\n"
           f"{summary}\n"
           f"Table:       {plan.table}\n"
           f"Generated:   {when.strftime('%Y-%m-%dT%H:%M:%SZ')} by `manage.py tablemigrate generate`\n"
           f"Label:       {label or '-'}\n"
           f"Destructive: {destructive}\n")
    up, up_imports = _render_list("up", plan.up)
    down, down_imports = _render_list("down", plan.down)
    # A module that renames a model says so in a format of its own: a tablemigrate that does not read
    # `model_renames` refuses the module ("upgrade tablemigrate") instead of leaving the content type behind.
    # So does one that computes a value per row (an older one cannot load `per_row` nor a rebuild's `fill`).
    per_row = any((isinstance(s, FillColumn) and s.per_row) or (isinstance(s, RebuildTable) and s.fill)
                  for s in (*plan.up, *plan.down))
    module_format = PER_ROW_FORMAT if per_row else MODEL_RENAMES_FORMAT if plan.model_renames else MODULE_FORMAT
    return (f'"""{_escaped(doc)}"""\n\n{_imports(up_imports | down_imports)}'
            f"module_format = {module_format}\n"
            f"table = {plan.table!r}\n"
            f"label = {label!r}\n",
            _render_reasons("destructive", plan.destructive)
            + _render_reasons("down_destructive", plan.down_destructive)
            + _render_adoption_point(plan.adoption_point)
            + _render_model_renames(plan.model_renames)
            + "\n" + up + "\n" + down)


def _escaped(doc: str) -> str:
    """A module's docstring text, safe inside triple quotes."""
    return doc.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _render_adoption_point(point: list[tuple[str, str]] | None) -> str:
    if point is None:
        return ""
    pairs = "".join(f"    ({app!r}, {name!r}),\n" for app, name in point)
    return ("# The adoption point: `baseline` records the modules up to this one as applied on a database whose\n"
            "# tables they build exactly and whose Django migrations of these apps are these (docs/modules.md).\n"
            + (f"adoption_point = [\n{pairs}]\n" if pairs else "adoption_point = []\n"))


def _render_model_renames(renames: list[tuple[str, str, str]]) -> str:
    if not renames:
        return ""
    return "model_renames = [\n" + "".join(f"    {tuple(r)!r},\n" for r in renames) + "]\n"


def _imports(lines: set[str]) -> str:
    """Import lines, one per module: the names one module gives are joined on one line. Django's writer
    puts `import x` lines before `from x import y`; so do we, each group sorted."""
    merged: dict[str, set[str]] = {}
    plain = set()
    for line in lines:
        if line.startswith("from ") and " import " in line and "," not in line and " as " not in line:
            module, _, name = line[5:].partition(" import ")
            merged.setdefault(module, set()).add(name)
        else:
            plain.add(line)
    plain |= {f"from {m} import {', '.join(sorted(names))}" for m, names in merged.items()}
    ordered = sorted(plain, key=lambda line: (line.startswith("from "), line.split()[1]))
    return "".join(line + "\n" for line in ordered) + ("\n" if ordered else "")


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "table"


STAMP = "%Y%m%d_%H%M%S"


class Named(Protocol):
    """What a module's name is made of: a plan, or the subject of an empty data module."""

    @property
    def verb(self) -> str: ...

    @property
    def table(self) -> str: ...


def module_names(plans: Sequence[Named], when: datetime, existing: list[str]) -> list[str]:
    """File stems that sort after every existing module, in plan order: TIMESTAMP_NN_VERB_TABLE.

    Names sort by their fixed-width 15-character timestamp first, so a batch always takes a timestamp
    of its own, later than every existing one: when the clock has not moved past the newest existing
    timestamp (two generates in one second, a clock behind the history), the newest plus one second.
    Within a batch the counter has one width for the whole batch (at least 2 digits), so it sorts too.
    A counter is never continued from another batch, whose width may differ (`_061` < `_06_`)."""
    stamp = when.strftime(STAMP)
    stamped = [e for e in existing if re.match(r"\d{8}_\d{6}_", e)]
    latest = max((e[:15] for e in stamped), default="")
    if stamp <= latest:
        try:
            stamp = (datetime.strptime(latest, STAMP) + timedelta(seconds=1)).strftime(STAMP)
        except (ValueError, OverflowError):  # a hand-made 20241399_000000_..., or the year 9999
            stamp = ""
    width = max(2, len(str(len(plans))))
    names = [f"{stamp}_{i:0{width}d}_{p.verb}_{slug(p.table)}" for i, p in enumerate(plans, 1)]
    last = max(existing, default="")
    if names and (not stamp or names[0] <= last):
        raise GenerateError(f"the existing migration module {last} sorts after any name generate can give, "
                            "so new modules would run before it: rename it with a YYYYMMDD_HHMMSS_ prefix "
                            "before it is applied anywhere, or move it out of the directory")
    return names


def render_data_module(origin: str, up: list[Step], down: list[Step] | None, summary: list[str], label: str,
                       when: datetime, adoption_point: list[tuple[str, str]] | None = None) -> str:
    """A module of data steps that `baseline` carried from the Django migration `origin` ("app.name"):
    no table, no shapes; without `down` when Django cannot reverse a step. `adoption_point`: in the last
    module `baseline` writes (see render_module)."""
    lines = "".join(f"  - {line}\n" for line in summary)
    doc = (f"Data steps of the Django migration {origin}, carried by `baseline`.\n\n{lines}\n"
           f"They run on a database that `run` builds (after the modules that create the tables), as Django ran\n"
           f"them, from the migration as archived in django/; the database that was adopted recorded this\n"
           f"module as applied (they ran there already).\n\n"
           f"Generated:   {when.strftime('%Y-%m-%dT%H:%M:%SZ')} by `manage.py tablemigrate baseline`\n"
           f"Label:       {label or '-'}\n")
    up_text, up_imports = _render_list("up", up)
    down_imports: set[str] = set()
    if down is None:
        down_text = "# No `down`: Django cannot reverse these steps (no reverse_code / reverse_sql).\n"
    else:
        down_text, down_imports = _render_list("down", down)
    return (f'"""{_escaped(doc)}"""\n\n{_imports(up_imports | down_imports)}'
            f"module_format = {MODULE_FORMAT}\n"
            f"label = {label!r}\n"
            "destructive = []\n"
            + _render_adoption_point(adoption_point)
            + "\n" + up_text + "\n" + down_text)


def render_empty_module(label: str, subject: str, example: tuple[str, str] | None, when: datetime) -> str:
    """The module `generate --empty` writes: a data step with its reverse, as Django's `RunPython(forwards,
    backwards)`, whose functions do nothing yet, under a commented example for the model `example`
    ((app label, model name)) of `subject` (the app or table it was started for). No table, no shapes:
    it changes no schema."""
    app, model = example or ("app_label", "ModelName")
    var = model if model.isidentifier() else "Model"
    doc = (f"Data migration for {subject}: fill in `forwards` (and `backwards`).\n\n"
           "`run` calls `forwards(apps, schema_editor)` in this module's transaction, as Django's RunPython\n"
           "calls its code: `apps` has the models as the tables are when this module runs (a field a later\n"
           "module adds is not there yet); use them, not the classes of your models.py. `revert` calls\n"
           "`backwards`. It must change no schema (run `generate` for that).\n\n"
           f"Generated:   {when.strftime('%Y-%m-%dT%H:%M:%SZ')} by `manage.py tablemigrate generate --empty`\n"
           f"Label:       {label or '-'}\n")
    return (f'"""{_escaped(doc)}"""\n\n'
            "from tablemigrate.operations import RunPythonWithModels\n\n"
            f"module_format = {MODULE_FORMAT}\n"
            f"label = {label!r}\n"
            "destructive = []\n\n\n"
            "def forwards(apps, schema_editor):\n"
            f"    # {var} = apps.get_model({app!r}, {model!r})\n"
            f"    # for obj in {var}.objects.all():\n"
            "    #     obj.key = make_key(obj)  # each row its own value\n"
            "    #     obj.save(update_fields=['key'])\n"
            f"    # (or change them in memory and {var}.objects.bulk_update(objs, ['key'], batch_size=500))\n"
            "    pass\n\n\n"
            "def backwards(apps, schema_editor):\n"
            "    # Undo forwards. To make this module irreversible, as Django's RunPython without\n"
            "    # reverse_code, delete this function and `down`: `revert` then refuses it.\n"
            f"    # apps.get_model({app!r}, {model!r}).objects.update(key=None)\n"
            "    pass\n\n\n"
            "up = [RunPythonWithModels(forwards)]\n"
            "down = [RunPythonWithModels(backwards)]\n")


def render_checkpoint(up: list[Step], replaces: list[Replaced], summary: list[str], when: datetime,
                      adoption_point: tuple[tuple[str, str], ...] | None = None) -> str:
    """A checkpoint (`squash`): `up` creates at once the schema the modules it `replaces` produce; no `down`
    (it cannot be reverted). `adoption_point`: the last replaced module's, when it had one."""
    lines = "".join(f"  - {line}\n" for line in summary)
    doc = (f"Checkpoint: the schema of the {len(replaces)} migrations it replaces, created at once.\n\n{lines}\n"
           "A database that applied every one of them records this module in their place and applies nothing;\n"
           "a new database runs only this. It cannot be reverted.\n\n"
           f"Generated:   {when.strftime('%Y-%m-%dT%H:%M:%SZ')} by `manage.py tablemigrate squash`\n")
    up_text, up_imports = _render_list("up", up)
    entries = "".join(f"    {(r.name, *r.checksums)!r},\n" for r in replaces)
    return (f'"""{_escaped(doc)}"""\n\n{_imports(up_imports)}'
            f"module_format = {CHECKPOINT_FORMAT}\n"
            "label = 'checkpoint'\n"
            + _render_adoption_point(list(adoption_point) if adoption_point is not None else None)
            + "# The modules this checkpoint replaces, in apply order: (name, checksum, earlier accepted checksums).\n"
            + f"replaces = [\n{entries}]\n"
            + "\n" + up_text)
