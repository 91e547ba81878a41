"""Model sets as data, turned into real Django models in isolated app registries, plus row data.

Used by the hypothesis round-trip tests: a `ProjectSpec` is mutated by `Change`s (add/drop/alter/rename
fields, tables and models, indexes, constraints), and both versions are built as models.
"""

from __future__ import annotations

import copy
import datetime
import decimal
import itertools
from dataclasses import dataclass, field

import django
from django.apps.registry import Apps
from django.db import models
from django.db.models import Q

_registry_counter = itertools.count()

ON_DELETE = {"CASCADE": models.CASCADE, "PROTECT": models.PROTECT, "SET_NULL": models.SET_NULL,
             "DO_NOTHING": models.DO_NOTHING, "RESTRICT": models.RESTRICT}

KINDS = ["char", "text", "int", "bigint", "smallint", "posint", "bool", "float", "decimal", "date",
         "datetime", "json", "uuid", "binary", "email"]
UNIQUE_OK = {"char", "int", "bigint", "email"}
CHECK_OK = {"int", "bigint", "smallint"}
# type changes that keep SQLite's affinity (values are compared exactly afterwards)
TYPE_CHANGES = {"char": ["text", "email"], "text": ["char"], "email": ["char"], "int": ["bigint"],
                "bigint": ["int"], "smallint": ["int"]}

DEFAULTS = {
    "char": "dflt", "text": "dflt", "email": "a@b.c", "int": 5, "bigint": 5, "smallint": 5, "posint": 5,
    "bool": True, "float": 1.5, "decimal": decimal.Decimal("1.25"), "date": datetime.date(2020, 1, 2),
    "datetime": datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
    "json": {"k": 1}, "uuid": "12345678123456781234567812345678", "binary": b"\x00d",
}


@dataclass
class FieldSpec:
    name: str
    kind: str  # one of KINDS, or 'fk'
    null: bool = False
    has_default: bool = False
    unique: bool = False
    index: bool = False
    target: str | None = None  # fk: target table key
    on_delete: str = "CASCADE"
    max_length: int = 30
    db_column: str | None = None  # any text: SQL keywords, quotes, spaces, unicode

    @property
    def column(self) -> str:
        return self.db_column or (f"{self.name}_id" if self.kind == "fk" else self.name)


@dataclass
class TableSpec:
    key: str  # stable identity across versions (class name)
    db_table: str
    fields: list[FieldSpec] = field(default_factory=list)
    m2m: list[tuple[str, str]] = field(default_factory=list)  # (field name, target key)
    indexes: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # (name, field names)
    uniques: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    checks: list[tuple[str, str]] = field(default_factory=list)  # (name, field name): field >= 0
    model_name: str | None = None  # the class name, when the model was renamed (`key` stays)

    @property
    def cls(self) -> str:
        return self.model_name or self.key

    def field(self, name: str) -> FieldSpec:
        return next(f for f in self.fields if f.name == name)


@dataclass
class ProjectSpec:
    tables: dict[str, TableSpec] = field(default_factory=dict)

    def clone(self) -> ProjectSpec:
        return copy.deepcopy(self)

    def referenced(self, key: str) -> bool:
        return any(f.target == key for t in self.tables.values() for f in t.fields if t.key != key) or any(
            tgt == key for t in self.tables.values() for _, tgt in t.m2m if t.key != key)


def _check(name: str, fname: str) -> models.CheckConstraint:
    kw = "condition" if django.VERSION >= (5, 1) else "check"
    return models.CheckConstraint(**{kw: Q(**{f"{fname}__gte": 0}), "name": name})


def _make_field(f: FieldSpec, classes: dict[str, type]) -> models.Field:
    kw: dict = {"null": f.null}
    if f.db_column:
        kw["db_column"] = f.db_column
    if f.has_default and f.kind != "fk":
        kw["default"] = DEFAULTS[f.kind]
    if f.unique:
        kw["unique"] = True
    if f.index:
        kw["db_index"] = True
    k = f.kind
    if k == "fk":
        return models.ForeignKey(classes[f.target], on_delete=ON_DELETE[f.on_delete], related_name="+", **kw)
    if k == "char":
        return models.CharField(max_length=f.max_length, **kw)
    if k == "email":
        return models.EmailField(**kw)
    if k == "decimal":
        return models.DecimalField(max_digits=8, decimal_places=2, **kw)
    cls = {"text": models.TextField, "int": models.IntegerField, "bigint": models.BigIntegerField,
           "smallint": models.SmallIntegerField, "posint": models.PositiveIntegerField,
           "bool": models.BooleanField, "float": models.FloatField, "date": models.DateField,
           "datetime": models.DateTimeField, "json": models.JSONField, "uuid": models.UUIDField,
           "binary": models.BinaryField}[k]
    return cls(**kw)


def build_models(spec: ProjectSpec) -> list[type[models.Model]]:
    """Real model classes for `spec`, in a fresh registry (so versions never collide)."""
    registry = Apps()
    label = f"gen{next(_registry_counter)}"
    classes: dict[str, type] = {}
    pending = list(spec.tables.values())
    while pending:  # FK targets first; references to not-yet-built models use the class later
        progressed = False
        for t in list(pending):
            targets = {f.target for f in t.fields if f.kind == "fk"} | {tg for _, tg in t.m2m}
            if not all(x in classes or x == t.key for x in targets):
                continue
            attrs: dict = {"__module__": "tests.generated"}
            for f in t.fields:
                attrs[f.name] = _make_field(f, {**classes, t.key: "self"})
            for name, target in t.m2m:
                attrs[name] = models.ManyToManyField(classes[target], related_name="+")
            meta = {"app_label": label, "apps": registry, "db_table": t.db_table,
                    "indexes": [models.Index(fields=list(fs), name=n) for n, fs in t.indexes],
                    "constraints": [models.UniqueConstraint(fields=list(fs), name=n) for n, fs in t.uniques]
                    + [_check(n, fname) for n, fname in t.checks]}
            attrs["Meta"] = type("Meta", (), meta)
            classes[t.key] = type(t.cls, (models.Model,), attrs)
            pending.remove(t)
            progressed = True
        if not progressed:
            raise ValueError("cyclic FK spec")
    return [classes[t.key] for t in spec.tables.values()]


def value_for(f: FieldSpec, row: int) -> object:
    """Row data (raw SQLite values) that every generated constraint accepts, unique per row."""
    k = f.kind
    if f.null and row % 3 == 2:
        return None
    if row == 1 and k in ("char", "text"):
        return "ünï 漢字 🙂 '\";--" if k == "text" else f"ü{row}🙂"
    if row == 4 and k in ("char", "text"):
        return ""  # empty, not NULL
    if row == 1 and k == "binary":
        return bytes(range(256)) * 800  # a 200 KB blob
    return {
        "char": f"v{row}-é'\"x", "text": f"long text {row}\n;--", "email": f"u{row}@ex.com",
        "int": row * 3 + 1, "bigint": 2**40 + row, "smallint": row, "posint": row, "bool": row % 2,
        "float": row + 0.5, "decimal": row + 0.25, "date": f"2024-01-{row % 28 + 1:02d}",
        "datetime": f"2024-01-01 00:00:{row % 60:02d}", "json": f'{{"n": {row}}}',
        "uuid": f"{row:032x}", "binary": bytes([row % 256, 0, 255]),
    }[k]
