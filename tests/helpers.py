"""Shared test helpers: schemas of model sets, filling and reading rows, applying histories."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tablemigrate.generate.pipeline import Questioner
from tablemigrate.history.loader import Migration, load_migrations
from tablemigrate.run.apply import apply_migration
from tablemigrate.sqlite.introspect import is_internal
from tablemigrate.sqlite.sqltext import quote

from .modelgen import ProjectSpec, value_for


class _ZeroForEveryColumn(Mapping):
    """The SQL literal 0 as the one-off value of every column, as `--default TABLE.COLUMN=...` gives a
    value beforehand (SQLite stores 0 in a column of any type; a Python 0 would not convert for a date)."""

    def __getitem__(self, key: tuple[str, str]) -> str:
        return "0"

    def __contains__(self, key: object) -> bool:
        return True

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(())

    def __len__(self) -> int:
        return 0


class AutoValue(Questioner):
    """Answers 'no' to renames and gives the SQL literal 0 for every one-off value."""

    given = _ZeroForEveryColumn()


ROOT = Path(__file__).resolve().parent.parent


def copy_example_project(into: Path) -> Path:
    """The repository's manage.py and example_project copied into `into`, without databases or backups."""
    shutil.copy(ROOT / "manage.py", into)
    shutil.copytree(ROOT / "example_project", into / "example_project",
                    ignore=shutil.ignore_patterns("*.sqlite3*", "backups", "__pycache__"))
    return into


def fts5_compiled() -> bool:
    """Whether this Python's sqlite3 has FTS5 (tests of FTS5 tables skip without it)."""
    conn = sqlite3.connect(":memory:")
    try:
        return ("ENABLE_FTS5",) in conn.execute("PRAGMA compile_options").fetchall()
    finally:
        conn.close()


def module(directory: Path, name: str, text: str) -> None:
    """Write migration module `name` into `directory` (created if needed)."""
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.py").write_text(text)


def apply_new(conn: sqlite3.Connection, directory: Path, applied: set[str]) -> list[Migration]:
    """Apply the modules in `directory` not in `applied`; return them (and record them as applied)."""
    new = [m for m in load_migrations(directory) if m.name not in applied]
    for m in new:
        apply_migration(conn, m, "up")
        applied.add(m.name)
    return new


def fill(conn: sqlite3.Connection, spec: ProjectSpec, rows: int = 4) -> None:
    """Rows in every table of `spec` (FK targets first), and links in every m2m table."""
    for t in spec.tables.values():
        for i in range(1, rows + 1):
            cols = ["id"] + [f.column for f in t.fields]
            vals = [i] + [(None if f.null and i % 3 == 2 else 1) if f.kind == "fk" else value_for(f, i)
                          for f in t.fields]
            conn.execute(f"INSERT INTO {quote(t.db_table)} ({', '.join(map(quote, cols))}) "
                         f"VALUES ({', '.join('?' * len(vals))})", vals)
        for name, target in t.m2m:
            for i in range(1, rows + 1):  # columns named after the models, as Django names them
                conn.execute(f"INSERT INTO {quote(t.db_table + '_' + name)} ({quote(t.cls.lower() + '_id')}, "
                             f"{quote(spec.tables[target].cls.lower() + '_id')}) VALUES (?, ?)", (i, rows + 1 - i))
    conn.commit()


def dump_rows(conn: sqlite3.Connection) -> dict[str, dict[int, dict[str, object]]]:
    out: dict[str, dict[int, dict[str, object]]] = {}
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    for name in names:
        if is_internal(name):
            continue
        cur = conn.execute(f"SELECT * FROM {quote(name)}")
        cols = [d[0].lower() for d in cur.description]
        out[name.lower()] = {row[0]: dict(zip(cols, row)) for row in cur}
    return out


def copy_fixture_site(site: Path, into: Path) -> Path:
    """A fixture project (tests/searchsite, tests/datasite) copied to `into/site`, without databases,
    modules or backups."""
    shutil.copytree(site, into / "site", ignore=shutil.ignore_patterns(
        "__pycache__", "*.sqlite3*", "tablemigrations", "backups"))
    return into / "site"


def project_env(site: Path, prefix: str = "EXAMPLE", *, path: Iterable[str | Path] = (ROOT,), db: str | None = None,
                **extra: str) -> dict[str, str]:
    """The environment of a test project's manage.py: this process's, less every `<prefix>_*` and
    DJANGO_SETTINGS* variable; PYTHONPATH the project first, then `path` (by default this checkout, so that
    its tablemigrate is the one imported, a worktree's too, whatever the venv installed); no bytecode written.
    With `db` (a file name in `site`), `<prefix>_DB` and `<prefix>_MIGRATIONS_DIR` (read by the fixture
    sites' settings) point at it and at site/tablemigrations. `extra` goes on top."""
    env = {k: v for k, v in os.environ.items() if not k.startswith((prefix + "_", "DJANGO_SETTINGS"))}
    env.update(PYTHONPATH=os.pathsep.join(str(p) for p in (site, *path)), PYTHONDONTWRITEBYTECODE="1")
    if db is not None:
        env.update({f"{prefix}_DB": str(site / db), f"{prefix}_MIGRATIONS_DIR": str(site / "tablemigrations")})
    env.update(extra)
    return env


def manage(site: Path, *args: str, prefix: str = "EXAMPLE", db: str | None = None, cwd: Path | None = None,
           path: Iterable[str | Path] = (ROOT,), check: bool = True, timeout: float = 120,
           **extra: str) -> subprocess.CompletedProcess[str]:
    """`manage.py *args` of the test project in `site` (run in `cwd`, by default `site`), in a process of
    its own, with `project_env(site, prefix, path=path, db=db, **extra)`. With `check`, a non-zero exit
    fails the test with the command's output. The one way the tests start a project's manage.py (tests that
    use it are marked `subprocess`: see docs/testing.md)."""
    proc = subprocess.run([sys.executable, "manage.py", *args], cwd=cwd or site, capture_output=True, text=True,
                          env=project_env(site, prefix, path=path, db=db, **extra), timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{args}: rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def tablemigrate(site: Path, *args: str, **options: Any) -> subprocess.CompletedProcess[str]:
    """`manage.py tablemigrate *args` of the project in `site` (options: those of `manage`)."""
    return manage(site, "tablemigrate", *args, **options)


TIMED = """
import json, sys, time
import django
django.setup()
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
found = []
for args in json.loads(sys.argv[1]):
    for timeout in json.loads(sys.argv[2]):
        settings.TABLEMIGRATE_BUSY_TIMEOUT = timeout
        began = time.perf_counter()
        try:
            call_command("tablemigrate", *args)
            code = 0
        except CommandError as exc:
            code = exc.returncode
        found.append([args, timeout, code, time.perf_counter() - began])
print(json.dumps(found))
"""


def timed_commands(site: Path, commands: list[list[str]], timeouts: list[float],
                   **options: Any) -> dict[tuple[str, float], tuple[int, float]]:
    """Each `manage.py tablemigrate` command of `commands` with each busy timeout of `timeouts` in turn
    (TABLEMIGRATE_BUSY_TIMEOUT), in ONE process of the project in `site` (start-up and imports paid once,
    before the first): {(first argument, timeout): (exit code, seconds the command took)}. What the tests
    compare is how a command's time changes with the busy timeout, not a time itself. `options`: those of
    `project_env` (and DJANGO_SETTINGS_MODULE, which manage.py would set)."""
    env = project_env(site, **options)
    proc = subprocess.run([sys.executable, "-c", TIMED, json.dumps(commands), json.dumps(timeouts)], cwd=site,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {(args[0], timeout): (code, took) for args, timeout, code, took in json.loads(proc.stdout.splitlines()[-1])}
