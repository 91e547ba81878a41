"""A deterministic generated Django project of N models, for the benchmarks.

Models come in apps of 10. Each has a realistic mix of field types (char, text, integer, boolean,
datetime, date, decimal, float, email, slug, UUID, JSON), a foreign-key chain to the previous model,
a many-to-many on every fifth model, an index, a unique constraint and a check constraint. The same
models are written twice: `mode="tablemigrate"` (Django's migrations disabled, tablemigrate owns the
tables) and `mode="django"` (Django's own migrations), so both tools see identical models.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import django

PER_APP = 10

MANAGE = """#!/usr/bin/env python
import os, sys
if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproj.settings")
    from django.core.management import execute_from_command_line
    execute_from_command_line(sys.argv)
"""

SETTINGS = """from pathlib import Path
BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "bench"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = {apps!r}
DATABASES = {{"default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": str(BASE_DIR / "db.sqlite3")}}}}
TABLEMIGRATE_MIGRATIONS_DIR = BASE_DIR / "tablemigrations"
{extra}
"""


def _check(expr: str, name: str) -> str:
    keyword = "condition" if django.VERSION >= (5, 1) else "check"
    return f"models.CheckConstraint({keyword}={expr}, name={name!r})"


def model_source(n: int, index_in_app: int, app: int, extra_field: str = "") -> str:
    name = f"Model{n}"
    prev = f"Model{n - 1}" if index_in_app > 0 else None
    lines = [
        f"class {name}(models.Model):",
        "    name = models.CharField(max_length=100)",
        "    slug = models.SlugField(max_length=60)",
        "    body = models.TextField(blank=True)",
        "    count = models.IntegerField(default=0)",
        "    active = models.BooleanField(default=True)",
        "    created = models.DateTimeField(auto_now_add=True)",
        "    day = models.DateField(null=True, blank=True)",
        "    price = models.DecimalField(max_digits=10, decimal_places=2, default=0)",
        "    ratio = models.FloatField(null=True)",
        "    email = models.EmailField(blank=True)",
        "    uid = models.UUIDField(null=True)",
        "    data = models.JSONField(null=True)",
    ]
    if prev:
        lines.append(f"    parent = models.ForeignKey({prev!r}, on_delete=models.CASCADE, related_name='children')")
    if n % 5 == 4 and index_in_app >= 2:
        lines.append(f"    links = models.ManyToManyField('Model{n - 2}', blank=True, related_name='linked')")
    if extra_field:
        lines.append(f"    {extra_field}")
    lines += [
        "",
        "    class Meta:",
        f"        indexes = [models.Index(fields=['slug'], name='m{n}_slug_idx')]",
        "        constraints = [",
        f"            models.UniqueConstraint(fields=['name', 'slug'], name='m{n}_name_slug'),",
        f"            {_check('models.Q(count__gte=0)', f'm{n}_count_gte_0')},",
        "        ]",
        "",
    ]
    return "\n".join(lines)


def app_source(app: int, models_count: int, changed: dict[int, str] | None = None,
               edits: dict[int, list[tuple[str, str]]] | None = None, appended: str = "") -> str:
    """An app's models.py. `changed`: an extra field line per model number; `edits`: (old, new) text
    replacements per model number (each must match); `appended`: source added after the models."""
    changed, edits = changed or {}, edits or {}
    first = app * PER_APP
    parts = ["from django.db import models", ""]
    for i in range(models_count):
        source = model_source(first + i, i, app, changed.get(first + i, ""))
        for old, new in edits.get(first + i, []):
            if old not in source:
                raise ValueError(f"Model{first + i}: {old!r} not found")
            source = source.replace(old, new, 1)
        parts.append(source)
    if appended:
        parts.append(appended)
    return "\n\n".join(parts)


CONTRIB = ["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions"]


def write_project(root: Path, n_models: int, mode: str, contrib: bool = False) -> Path:
    """Write the project under `root` (replaced if it exists); returns root. `contrib`: Django's auth,
    contenttypes and sessions installed too, on their own Django migrations, and for tablemigrate the
    0.2 minimum settings (no MIGRATION_MODULES: it owns the project's apps only)."""
    if root.exists():
        shutil.rmtree(root)
    apps = (n_models + PER_APP - 1) // PER_APP
    (root / "benchproj").mkdir(parents=True)
    (root / "manage.py").write_text(MANAGE)
    (root / "benchproj" / "__init__.py").write_text("")
    labels = [f"app{a}" for a in range(apps)]
    if mode == "tablemigrate":
        extra = "" if contrib else ("from tablemigrate.coexist import DjangoMigrationsDisabled\n"
                                    "MIGRATION_MODULES = DjangoMigrationsDisabled()")
        installed = ["tablemigrate"] + labels
    else:
        extra = ""
        installed = labels
    if contrib:
        installed = CONTRIB + installed
    (root / "benchproj" / "settings.py").write_text(SETTINGS.format(apps=installed, extra=extra))
    for a in range(apps):
        count = min(PER_APP, n_models - a * PER_APP)
        app_dir = root / f"app{a}"
        app_dir.mkdir()
        (app_dir / "__init__.py").write_text("")
        (app_dir / "models.py").write_text(app_source(a, count))
        if mode == "django":
            (app_dir / "migrations").mkdir()
            (app_dir / "migrations" / "__init__.py").write_text("")
    return root


def _rewrite_models(root: Path, app: int, text: str) -> None:
    """Replace an app's models.py and drop its bytecode cache: Python validates a cached module by the
    source's mtime in whole seconds and its size, so an edit of the same length within the second the
    cache was written (max_length 100 -> 150) would otherwise be invisible."""
    app_dir = root / f"app{app}"
    shutil.rmtree(app_dir / "__pycache__", ignore_errors=True)
    (app_dir / "models.py").write_text(text)


TYPICAL_CHANGE = "rating = models.IntegerField(default=3)"


def apply_typical_change(root: Path, n_models: int) -> None:
    """Add one field with a default to the middle model (what a developer does most often)."""
    target = n_models // 2
    app = target // PER_APP
    count = min(PER_APP, n_models - app * PER_APP)
    _rewrite_models(root, app, app_source(app, count, {target: TYPICAL_CHANGE}))


#: A sprint's worth of changes, each on its own model (the model at position k/16 of the project): what
#: `apply_change_set` does, in order.
CHANGE_SET = (
    "add a field with a default (rating = IntegerField(default=3))",
    "add a NOT NULL CharField with a default (code)",
    "add a NOT NULL FloatField with a default (score)",
    "widen a CharField (name: max_length 100 -> 150)",
    "change a type: IntegerField -> BigIntegerField (count)",
    "change a type: FloatField -> DecimalField (ratio)",
    "make a field nullable (body: TextField(blank=True, null=True))",
    "remove a field (email)",
    "remove a field (uid)",
    "remove a field (data)",
    "add an index (count)",
    "add an index (name)",
    "remove an index (slug)",
    "rename a table (Meta.db_table; tablemigrate is told with --rename, as a developer answers its question)",
    "add a model with a foreign key to an existing one (Note)",
)


def apply_change_set(root: Path, n_models: int) -> list[str]:
    """Apply every change of CHANGE_SET, each to a different model, in as many apps as they fall in.
    Needs at least 16 models. Neither tool is asked a question (no NOT NULL without a default); returns
    the `--rename` option that tells tablemigrate about the table rename (Django's AlterModelTable needs
    no question)."""
    if n_models < 16:
        raise ValueError("the change set needs at least 16 models")
    t = [n_models * k // 16 for k in range(1, 16)]

    def index(n: int, *fields: str) -> str:
        return ", ".join(f"models.Index(fields=['{f}'], name='m{n}_{f}_idx')" for f in fields)

    changed = {t[0]: TYPICAL_CHANGE, t[1]: "code = models.CharField(max_length=10, default='x')",
               t[2]: "score = models.FloatField(default=0.0)"}
    edits = {
        t[3]: [("name = models.CharField(max_length=100)", "name = models.CharField(max_length=150)")],
        t[4]: [("count = models.IntegerField(default=0)", "count = models.BigIntegerField(default=0)")],
        t[5]: [("ratio = models.FloatField(null=True)",
                "ratio = models.DecimalField(max_digits=12, decimal_places=4, null=True)")],
        t[6]: [("body = models.TextField(blank=True)", "body = models.TextField(blank=True, null=True)")],
        t[7]: [("    email = models.EmailField(blank=True)\n", "")],
        t[8]: [("    uid = models.UUIDField(null=True)\n", "")],
        t[9]: [("    data = models.JSONField(null=True)\n", "")],
        t[10]: [(f"indexes = [{index(t[10], 'slug')}]", f"indexes = [{index(t[10], 'slug', 'count')}]")],
        t[11]: [(f"indexes = [{index(t[11], 'slug')}]", f"indexes = [{index(t[11], 'slug', 'name')}]")],
        t[12]: [(f"indexes = [{index(t[12], 'slug')}]", "indexes = []")],
        t[13]: [("    class Meta:\n", f"    class Meta:\n        db_table = 'renamed_{t[13]}'\n")],
    }
    parent = t[14]
    note = (f"class Note{parent}(models.Model):\n"
            f"    about = models.ForeignKey('Model{parent}', on_delete=models.CASCADE)\n"
            "    text = models.TextField()\n"
            "    created = models.DateTimeField(auto_now_add=True)\n")
    for app in sorted({n // PER_APP for n in t}):
        count = min(PER_APP, n_models - app * PER_APP)
        mine = {n for n in t if n // PER_APP == app}
        _rewrite_models(root, app, app_source(
            app, count, {n: c for n, c in changed.items() if n in mine},
            {n: e for n, e in edits.items() if n in mine}, note if parent in mine else ""))
    return ["--rename", f"app{t[13] // PER_APP}_model{t[13]}:renamed_{t[13]}"]


if __name__ == "__main__":
    write_project(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
