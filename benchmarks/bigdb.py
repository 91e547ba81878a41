"""tablemigrate on big databases (issue 15): in-place alters, dry-run memory, file size, backups, write waits.

    python benchmarks/bigdb.py                                   # every section at its default sizes
    python benchmarks/bigdb.py --only inplace --rows 100000,1000000,10000000
    python benchmarks/bigdb.py --only writewait --rows 1500000   # the application's longest write wait

Sections (`--only`, comma-separated; `--rows` overrides the sizes of every selected section):
- inplace: widening a varchar (max_length 20 -> 40) and dropping NOT NULL on another column, through
  `tablemigrate run --noinput --no-backup` (in place, decision 108), the same 12-step rebuild as SQL in the
  sqlite3 shell, and Django's `migrate` of the same two AlterFields (default rows 100k, 1M, 10M).
- dryrun: peak RSS of `run --dry-run` with a copying rebuild pending (an integer column becomes text),
  against the database's size (default rows 500k, 1.5M, 5M: about 100 MB, 300 MB, 1 GB).
- filesize: file size, page_count and freelist_count before, after one copying `run` and after a second
  one (default 1.5M rows).
- backup: on a database about half free pages (after a copying rebuild, WAL mode): the backup API,
  `VACUUM INTO`, a file copy + fsync, and `take_backup` as `run` calls it; time, output size, peak RSS
  (default rows 750k and 2.5M: files of about 300 MB and 1 GB).
- writewait: an "application" process (plain sqlite3, timeout=5, WAL) inserting one row into another
  table and one into the rebuilt table every ~10 ms, each in its own transaction, while
  `tablemigrate run --noinput` does a copying rebuild; the longest single insert wait, and whether every
  committed insert is there afterwards (default 1.5M rows). `writewait()` is reusable as a function.

The table is run.py's REBUILD_MODELS `app0_item` (an FK, two indexes and the FK's, about 200 bytes a row),
filled by run.py's `fill`. Every timing is a whole process timed from outside (wall clock; peak RSS from
wait4); compared sides alternate within one run, each after its setup and an `os.sync()`, and the median is
reported. After every timed run, outside its time, the benchmark proves the change happened and every row
is there. Not part of the test suite. Work files go to a temporary directory removed at the end (`--keep`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import django

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # this tree's tablemigrate, also where another is installed
import projectgen  # noqa: E402
import run as bench  # noqa: E402  (run.py: timed, median_of, env_for, manage, fill, rebuild_sql, ...)

PYTHON = sys.executable
ROOT = HERE.parent
TM, DJ = "tablemigrate", "django"

BASE_MODELS = bench.REBUILD_MODELS.format(code_length=20)
# Section inplace: no stored record changes (varchar 20 -> 40; body loses NOT NULL).
INPLACE_MODELS = bench.REBUILD_MODELS.format(code_length=40).replace(
    "body = models.TextField()", "body = models.TextField(null=True)")
# A copying rebuild: integer -> text is another affinity, so every record is rewritten.
COPY_MODELS = BASE_MODELS.replace("amount = models.IntegerField(default=0)",
                                  'amount = models.TextField(default="0")')
# A second copying rebuild after the first one (section filesize).
COPY2_MODELS = COPY_MODELS.replace("price = models.FloatField(default=0)", 'price = models.TextField(default="0")')
assert len({BASE_MODELS, INPLACE_MODELS, COPY_MODELS, COPY2_MODELS}) == 4

SECTIONS = {
    "inplace": [100_000, 1_000_000, 10_000_000],
    "dryrun": [500_000, 1_500_000, 5_000_000],
    "filesize": [1_500_000],
    "backup": [750_000, 2_500_000],
    "writewait": [1_500_000],
}


def sh(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(bench.manage(project, *args), cwd=project, env=bench.env_for(project), check=True,
                          capture_output=True, text=True)


def write_models(project: Path, text: str) -> None:
    app = project / "app0"
    shutil.rmtree(app / "__pycache__", ignore_errors=True)  # an edit of the same length within the second
    (app / "models.py").write_text(text)


def db_of(project: Path) -> Path:
    return project / "db.sqlite3"


# --- projects ------------------------------------------------------------------------------------------

class Projects:
    """Filled base projects, one per (tool, rows), built once and copied for each change."""

    def __init__(self, work: Path):
        self.work = work
        self.bases: dict[tuple[str, int], Path] = {}

    def base(self, mode: str, rows: int) -> Path:
        key = (mode, rows)
        if key in self.bases:
            return self.bases[key]
        project = projectgen.write_project(self.work / f"base-{mode}-{rows}", 1, mode)
        shutil.rmtree(project / "app0")
        app = project / "app0"
        app.mkdir()
        (app / "__init__.py").write_text("")
        (app / "models.py").write_text(BASE_MODELS)
        started = time.perf_counter()
        if mode == DJ:
            (app / "migrations").mkdir()
            (app / "migrations" / "__init__.py").write_text("")
            sh(project, "makemigrations", "app0")
            sh(project, "migrate")
        else:
            sh(project, "tablemigrate", "generate", "Initial", "--noinput")
            sh(project, "tablemigrate", "run", "--noinput", "--no-backup")
        twin = self.bases.get((TM if mode == DJ else DJ, rows))
        if twin is not None:
            copy_rows(db_of(twin), db_of(project))  # same rows, much faster than generating them again
        else:
            bench.fill(db_of(project), rows)
        print(f"  [{mode} base, {rows:,} rows: {db_of(project).stat().st_size / 2**20:.0f} MB, "
              f"{time.perf_counter() - started:.0f} s]", flush=True)
        self.bases[key] = project
        return project

    def changed(self, mode: str, rows: int, name: str, models: str) -> Path:
        """A copy of the base project with `models` and its migration generated, and `pristine.sqlite3`
        (the database before the migration) for `bench.restore_pristine`."""
        project = self.work / name
        shutil.rmtree(project, ignore_errors=True)
        shutil.copytree(self.base(mode, rows), project)
        write_models(project, models)
        if mode == DJ:
            sh(project, "makemigrations", "app0")
        else:
            sh(project, "tablemigrate", "generate", "Change", "--noinput")
        shutil.copy(db_of(project), project / "pristine.sqlite3")
        return project

    def drop(self, rows: int) -> None:
        for mode in (TM, DJ):
            project = self.bases.pop((mode, rows), None)
            if project is not None:
                shutil.rmtree(project, ignore_errors=True)


def copy_rows(source: Path, target: Path) -> None:
    conn = sqlite3.connect(target)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("ATTACH DATABASE ? AS src", (str(source),))
    columns = "id, owner_id, title, body, amount, price, active, created, code"
    conn.execute("INSERT INTO app0_owner (id, name) SELECT id, name FROM src.app0_owner")
    conn.execute(f"INSERT INTO app0_item ({columns}) SELECT {columns} FROM src.app0_item")
    conn.commit()
    conn.close()


def stats(db: Path) -> dict:
    conn = sqlite3.connect(db)
    try:
        pragma = {name: conn.execute(f"PRAGMA {name}").fetchone()[0]
                  for name in ("page_count", "freelist_count", "page_size", "auto_vacuum", "journal_mode",
                               "secure_delete")}
    finally:
        conn.close()
    wal = db.with_name(db.name + "-wal")
    pragma["bytes"] = db.stat().st_size
    pragma["wal_bytes"] = wal.stat().st_size if wal.exists() else 0
    return pragma


def mb(n: float) -> str:
    return f"{n / 2**20:,.0f}"


def alternating(reps: int, sides: list[tuple[Callable[[], tuple[float, int]], Callable[[], None] | None]],
                warm: list[bool] | None = None) -> list[tuple[float, int, list[float]]]:
    """Every side in turn (a, b, c, a, b, c, ...), each run after its setup and an `os.sync()`, so the
    setup's writes (a copy of a multi-GB pristine file) and background writeback hit every side alike.
    `warm[i]`: one untimed run of side i first (writes the bytecode caches; skipped where one run takes
    tens of seconds and compiling a few modules is noise). Returns (median s, max peak KB, all times)."""
    def prepared(setup):
        def go():
            if setup:
                setup()
            os.sync()
        return go

    for (one, setup), w in zip(sides, warm or [True] * len(sides)):
        if w:
            bench.median_of(1, one, prepared(setup))
    got: list[list[tuple[float, int]]] = [[] for _ in sides]
    for _ in range(reps):
        for i, (one, setup) in enumerate(sides):
            got[i].append(bench.median_of(1, one, prepared(setup)))
    return [(statistics.median(t for t, _ in g), max(m for _, m in g), [t for t, _ in g]) for g in got]


# --- 1. in-place alter vs the shell's rebuild vs Django's migrate --------------------------------------

def inplace_proved(project: Path, rows: int, one: Callable[[], tuple[float, int]],
                   pages: dict | None = None) -> Callable[[], tuple[float, int]]:
    """`one`, then (untimed) proof: `code` is varchar(40), `body` has no NOT NULL, every row is there.
    `pages`: filled with the page count after the run (an in-place alter leaves it as it was)."""
    def run() -> tuple[float, int]:
        measured = one()
        conn = sqlite3.connect(db_of(project))
        try:
            sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'app0_item'").fetchone()[0]
            notnull = {r[1]: r[3] for r in conn.execute("PRAGMA table_info(app0_item)")}
            count = conn.execute("SELECT count(*) FROM app0_item").fetchone()[0]
            if pages is not None:
                pages["after"] = conn.execute("PRAGMA page_count").fetchone()[0]
        finally:
            conn.close()
        if '"code" varchar(40)' not in sql or notnull["body"] or count != rows:
            raise RuntimeError(f"{project.name}: the change did not happen ({count} rows): {sql}")
        return measured
    return run


def bench_inplace(out: list[str], projects: Projects, sizes: list[int], reps: int) -> None:
    out += ["| rows | DB MB | tablemigrate run, in place (s) | sqlite3 shell, 12-step rebuild (s) | "
            "Django migrate, 2 AlterFields (s) | ours / shell | ours / Django | reps | ours peak MB | "
            "pages after (ours / shell) | the step inside run (ms) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for rows in sizes:
        tm = projects.changed(TM, rows, f"inplace-tm-{rows}", INPLACE_MODELS)
        dj = projects.changed(DJ, rows, f"inplace-dj-{rows}", INPLACE_MODELS)
        projects.drop(rows)  # the copies hold everything needed; frees gigabytes at 10M rows
        before = stats(db_of(tm))
        script = bench.rebuild_sql(db_of(tm)).replace('"body" text NOT NULL', '"body" text NULL', 1)
        assert '"body" text NULL' in script, script
        ours_pages: dict = {}
        shell_pages: dict = {}
        ours = inplace_proved(tm, rows, lambda: bench.timed(
            bench.manage(tm, "tablemigrate", "run", "--noinput", "--no-backup"), tm, bench.env_for(tm)), ours_pages)
        shell = inplace_proved(tm, rows, lambda: bench.timed(["sqlite3", str(db_of(tm))], tm, stdin=script),
                               shell_pages)
        djm = inplace_proved(dj, rows, lambda: bench.timed(bench.manage(dj, "migrate"), dj, bench.env_for(dj)))
        n = reps if rows < 5_000_000 else min(reps, 2)
        big = rows >= 5_000_000
        (o, om, ot), (s, _sm, st), (d, _dm, dt) = alternating(
            n, [(ours, lambda: bench.restore_pristine(tm)), (shell, lambda: bench.restore_pristine(tm)),
                (djm, lambda: bench.restore_pristine(dj))], warm=[True, not big, not big])
        bench.restore_pristine(tm)  # once more, untimed, for the step's own time as `run` prints it
        step = sh(tm, "tablemigrate", "run", "--noinput", "--no-backup").stdout
        step_ms = re.findall(r"Applied .*\((\d+) ms\)", step)
        if ours_pages["after"] != before["page_count"]:
            raise RuntimeError(f"the in-place alter changed the page count: {before['page_count']} -> "
                               f"{ours_pages['after']}")
        line = (f"| {rows:,} | {mb(before['bytes'])} | {o:.3f} | {s:.3f} | {d:.3f} | {o / s:.3f} | {o / d:.3f} | "
                f"{n} | {om / 1024:.0f} | {ours_pages['after']:,} / {shell_pages['after']:,} | {', '.join(step_ms) or '?'} |")
        print(f"  {line}   (all: ours {fmt(ot)}; shell {fmt(st)}; django {fmt(dt)})", flush=True)
        out.append(line)
        shutil.rmtree(tm)
        shutil.rmtree(dj)


def fmt(times: list[float]) -> str:
    return ", ".join(f"{t:.2f}" for t in times)


# --- 2. dry-run peak memory vs database size -----------------------------------------------------------

def bench_dryrun(out: list[str], projects: Projects, sizes: list[int], reps: int) -> None:
    out += ["| rows | DB MB | run --dry-run (s) | peak RSS MB | peak / DB size |", "|---|---|---|---|---|"]
    for rows in sizes:
        tm = projects.changed(TM, rows, f"dryrun-{rows}", COPY_MODELS)
        size = db_of(tm).stat().st_size

        def one() -> tuple[float, int]:
            measured = bench.timed(bench.manage(tm, "tablemigrate", "run", "--dry-run", "--noinput"), tm,
                                   bench.env_for(tm))
            # a rehearsal: the live table keeps its integer column, and no rehearsal file is left behind
            conn = sqlite3.connect(db_of(tm))
            kind = {r[1]: r[2] for r in conn.execute("PRAGMA table_info(app0_item)")}["amount"]
            conn.close()
            left = list((tm / "backups").glob(".dry-run-*")) if (tm / "backups").exists() else []
            if kind.lower() != "integer" or left:
                raise RuntimeError(f"dry run changed the database ({kind}) or left {left}")
            return measured

        t, peak = bench.median_of(1, one)  # untimed: bytecode caches
        os.sync()
        t, peak = bench.median_of(reps, one)
        line = f"| {rows:,} | {mb(size)} | {t:.2f} | {peak / 1024:.0f} | {peak * 1024 / size:.2f} |"
        print("  " + line, flush=True)
        out.append(line)
        shutil.rmtree(tm)


# --- 3. file size after rebuilds -----------------------------------------------------------------------

def rebuilt(projects: Projects, rows: int, name: str) -> tuple[Path, dict, dict]:
    """A project after one copying `run --no-backup` (amount integer -> text): (project, stats before,
    stats after)."""
    tm = projects.changed(TM, rows, name, COPY_MODELS)
    before = stats(db_of(tm))
    sh(tm, "tablemigrate", "run", "--noinput", "--no-backup")
    return tm, before, stats(db_of(tm))


def column_type(db: Path, column: str) -> str:
    conn = sqlite3.connect(db)
    try:
        return {r[1]: r[2] for r in conn.execute("PRAGMA table_info(app0_item)")}[column].lower()
    finally:
        conn.close()


def bench_filesize(out: list[str], projects: Projects, sizes: list[int]) -> None:
    out += ["| rows | state | file MB | page_count | freelist_count | pages in use | free share |",
            "|---|---|---|---|---|---|---|"]
    for rows in sizes:
        tm, before, first = rebuilt(projects, rows, f"filesize-{rows}")
        assert column_type(db_of(tm), "amount") == "text"
        write_models(tm, COPY2_MODELS)
        sh(tm, "tablemigrate", "generate", "Second", "--noinput")
        sh(tm, "tablemigrate", "run", "--noinput", "--no-backup")
        assert column_type(db_of(tm), "price") == "text"
        second = stats(db_of(tm))
        for label, s in (("before", before), ("after one copying run (amount integer -> text)", first),
                         ("after a second copying run (price real -> text)", second)):
            used = s["page_count"] - s["freelist_count"]
            line = (f"| {rows:,} | {label} | {mb(s['bytes'])} | {s['page_count']:,} | {s['freelist_count']:,} | "
                    f"{used:,} | {s['freelist_count'] / s['page_count']:.0%} |")
            print("  " + line, flush=True)
            out.append(line)
        out.append(f"<!-- page_size {before['page_size']}, auto_vacuum {before['auto_vacuum']}, journal "
                   f"{before['journal_mode']}, secure_delete {before['secure_delete']} -->")
        shutil.rmtree(tm)


# --- 4. backups of a database with many free pages -----------------------------------------------------

FSYNC = "fd = os.open(sys.argv[2], os.O_RDONLY); os.fsync(fd); os.close(fd)"
BACKUPS = {
    "backup API (conn.backup, one step) + fsync":
        "import os, sqlite3, sys; s = sqlite3.connect(sys.argv[1]); d = sqlite3.connect(sys.argv[2]); "
        "d.execute('PRAGMA synchronous = OFF'); s.backup(d); d.execute('PRAGMA journal_mode = DELETE'); "
        "d.close(); s.close(); " + FSYNC,
    "VACUUM INTO + fsync":
        "import os, sqlite3, sys; s = sqlite3.connect(sys.argv[1]); s.execute('VACUUM INTO ?', (sys.argv[2],)); "
        "s.close(); " + FSYNC,
    "file copy (shutil.copyfile) + fsync":
        "import os, shutil, sys; shutil.copyfile(sys.argv[1], sys.argv[2]); " + FSYNC,
    "tablemigrate take_backup (today: copy under the write lock, quick_check)":
        "import sqlite3, sys; from pathlib import Path; from tablemigrate.backups.backup import take_backup; "
        "take_backup(sqlite3.connect(sys.argv[1]), Path(sys.argv[2]))",
}


def bench_backup(out: list[str], projects: Projects, sizes: list[int], reps: int) -> None:
    out += ["| rows | source MB (free share) | method | time (s) | output MB | peak RSS MB |",
            "|---|---|---|---|---|---|"]
    env = dict(bench.env_for(ROOT), PYTHONPATH=str(ROOT))
    for rows in sizes:
        tm, _before, after = rebuilt(projects, rows, f"backup-{rows}")
        projects.drop(rows)
        db = db_of(tm)
        conn = sqlite3.connect(db)
        conn.execute("PRAGMA journal_mode = WAL")  # as a production deployment runs it
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        src = stats(db)
        target = tm / "backups-out"
        sizes_out: dict[str, int] = {}

        def side(label: str, code: str) -> tuple[Callable[[], tuple[float, int]], Callable[[], None]]:
            dest = target / "out.sqlite3"

            def one() -> tuple[float, int]:
                measured = bench.timed([PYTHON, "-c", code, str(db), str(dest)], tm, env)
                check = sqlite3.connect(f"file:{dest}?mode=ro", uri=True)
                try:
                    count = check.execute("SELECT count(*) FROM app0_item").fetchone()[0]
                finally:
                    check.close()
                if count != rows:
                    raise RuntimeError(f"{label}: {count} rows in the backup")
                sizes_out[label] = dest.stat().st_size
                return measured

            def clean() -> None:
                shutil.rmtree(target, ignore_errors=True)
                target.mkdir()
            return one, clean

        results = alternating(reps, [side(label, code) for label, code in BACKUPS.items()])
        for (label, _code), (t, peak, times) in zip(BACKUPS.items(), results):
            line = (f"| {rows:,} | {mb(src['bytes'])} ({src['freelist_count'] / src['page_count']:.0%}) | {label} | "
                    f"{t:.2f} | {mb(sizes_out[label])} | {peak / 1024:.0f} |")
            print(f"  {line}   (all: {fmt(times)})", flush=True)
            out.append(line)
        shutil.rmtree(tm)


# --- 5. the application's longest write wait during a copying rebuild ----------------------------------

APP = r'''
import json, os, sqlite3, sys, time
db, out, stop, ready = sys.argv[1:5]
conn = sqlite3.connect(db, timeout=5, isolation_level=None)  # autocommit: each INSERT its own transaction
conn.execute("PRAGMA journal_mode = WAL")
records = []
n = 0
open(ready, "w").close()
while not os.path.exists(stop):
    n += 1
    for table, sql, key in (
            ("other", "INSERT INTO app0_owner (name) VALUES (?)", (f"app-owner-{n}",)),
            ("rebuilt", "INSERT INTO app0_item (owner_id, title, body, amount, price, active, created, code) "
                        "VALUES (1, 'app', 'app', 1, 1.0, 1, '2024-01-01 00:00:00', ?)", (f"APP{n:08d}",))):
        started = time.time()
        t0 = time.perf_counter()
        try:
            conn.execute(sql, key)
            error = None
        except sqlite3.Error as exc:
            error = f"{type(exc).__name__}: {exc}"
        records.append([table, key[0], started, time.perf_counter() - t0, error])
    time.sleep(0.010)
with open(out, "w") as fh:
    json.dump(records, fh)
'''


def writewait(project: Path, rows: int, before_s: float = 1.0, after_s: float = 1.0,
              run_args: tuple[str, ...] = ("run", "--noinput")) -> dict:
    """Run the application process against `project`'s database (switched to WAL), then `tablemigrate
    <run_args>` (which must do a copying rebuild of app0_item), then stop the application and check.
    Returns a summary: the longest single insert wait (overall, during the run, per table), failed
    inserts, and whether every committed insert is in the database afterwards."""
    db = db_of(project)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    work = project / "writewait"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    out, stop, ready = work / "records.json", work / "stop", work / "ready"
    app = subprocess.Popen([PYTHON, "-c", APP, str(db), str(out), str(stop), str(ready)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not ready.exists():
            if app.poll() is not None:
                raise RuntimeError(f"the application process died: {app.stderr.read()}")
            time.sleep(0.01)
        time.sleep(before_s)
        run_start = time.time()
        proc = subprocess.run(bench.manage(project, "tablemigrate", *run_args), cwd=project,
                              env=bench.env_for(project), capture_output=True, text=True)
        run_end = time.time()
        time.sleep(after_s)
    finally:
        stop.touch()
        _out, err = app.communicate(timeout=60)
    if app.returncode:
        raise RuntimeError(f"the application process failed: {err}")
    if proc.returncode:
        raise RuntimeError(f"tablemigrate {' '.join(run_args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    records = json.loads(out.read_text())
    conn = sqlite3.connect(db)
    try:
        owners = {r[0] for r in conn.execute("SELECT name FROM app0_owner WHERE name LIKE 'app-owner-%'")}
        items = {r[0] for r in conn.execute("SELECT code FROM app0_item WHERE code LIKE 'APP%'")}
        count = conn.execute("SELECT count(*) FROM app0_item").fetchone()[0]
        amount = {r[1]: r[2] for r in conn.execute("PRAGMA table_info(app0_item)")}["amount"].lower()
    finally:
        conn.close()
    committed = [r for r in records if r[4] is None]
    lost = [r for r in committed if r[1] not in (owners if r[0] == "other" else items)]
    during = [r for r in records if r[2] + r[3] >= run_start and r[2] <= run_end]

    def longest(rs: list) -> float:
        return max((r[3] for r in rs), default=0.0)

    worst = max(records, key=lambda r: r[3])
    return {
        "rows": rows, "run_s": run_end - run_start, "rebuilt": amount == "text",
        "inserts": len(records), "inserts_during_run": len(during),
        "committed": len(committed), "failed": len(records) - len(committed),
        "errors": sorted({r[4] for r in records if r[4]}),
        "longest_wait_s": longest(records),
        "longest_wait_other_table_s": longest([r for r in during if r[0] == "other"]),
        "longest_wait_rebuilt_table_s": longest([r for r in during if r[0] == "rebuilt"]),
        "worst_at_s_into_run": worst[2] - run_start,
        "waits_over_250ms": sum(1 for r in records if r[3] > 0.25),
        "lost": len(lost), "all_committed_present": not lost,
        "rows_after": count, "expected_rows_after": rows + len([r for r in committed if r[0] == "rebuilt"]),
        "run_output": proc.stdout.strip().splitlines()[-3:],
    }


def bench_writewait(out: list[str], projects: Projects, sizes: list[int], reps: int, no_backup: bool) -> None:
    out += ["| rows | DB MB | run (s) | inserts during the run | longest wait, other table (s) | "
            "longest wait, rebuilt table (s) | waits > 250 ms | failed inserts | committed inserts lost |",
            "|---|---|---|---|---|---|---|---|---|"]
    args = ("run", "--noinput", *(("--no-backup",) if no_backup else ()))
    for rows in sizes:
        for rep in range(reps):
            tm = projects.changed(TM, rows, f"writewait-{rows}", COPY_MODELS)
            size = db_of(tm).stat().st_size
            os.sync()
            got = writewait(tm, rows, run_args=args)
            print("  " + json.dumps(got), flush=True)
            if not got["rebuilt"] or got["rows_after"] != got["expected_rows_after"]:
                raise RuntimeError(f"the rebuild did not happen or rows are missing: {got}")
            line = (f"| {rows:,} | {mb(size)} | {got['run_s']:.2f} | {got['inserts_during_run']} | "
                    f"{got['longest_wait_other_table_s']:.3f} | {got['longest_wait_rebuilt_table_s']:.3f} | "
                    f"{got['waits_over_250ms']} | {got['failed']}{' (' + '; '.join(got['errors']) + ')' if got['errors'] else ''} | "
                    f"{got['lost']} |")
            print("  " + line, flush=True)
            out.append(line)
            shutil.rmtree(tm)


def code_under_test() -> str:
    """Which tablemigrate the child processes run (run.py puts ROOT on their PYTHONPATH): its tree, commit,
    and whether it has uncommitted changes, which a benchmark in a shared working tree must say."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True).stdout.strip()
    dirty = git("status", "--porcelain", "--", "tablemigrate")
    return f"tablemigrate in {ROOT} at {git('rev-parse', '--short', 'HEAD') or '?'}" + \
        (" + UNCOMMITTED CHANGES" if dirty else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--rows", default=None, help="comma-separated row counts for every selected section "
                                                     "(default: each section's own, see above)")
    parser.add_argument("--reps", type=int, default=3, help="timed repetitions per side (default 3; the median is "
                                                            "reported; 2 at most at 5M rows and above for inplace; "
                                                            "writewait: separate runs, each reported)")
    parser.add_argument("--writewait-reps", type=int, default=1, help="writewait runs per size (default 1)")
    parser.add_argument("--no-backup", action="store_true", help="writewait: run with --no-backup")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--workdir", default=None, help="parent of the temporary work directory (default TMPDIR; "
                                                        "needs up to about 20 GB at 10M rows)")
    args = parser.parse_args()
    only = [s for s in args.only.split(",") if s]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) in --only: {', '.join(sorted(unknown))}")
    if "inplace" in only and shutil.which("sqlite3") is None:
        parser.error("the inplace section needs the sqlite3 command-line shell (Debian/Ubuntu: apt install sqlite3)")
    rows = [int(x.replace("_", "")) for x in args.rows.split(",")] if args.rows else None
    work = Path(tempfile.mkdtemp(prefix="tablemigrate-bigdb-", dir=args.workdir))
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"Django {django.get_version()}, SQLite {sqlite3.sqlite_version}; {code_under_test()}; work dir {work}",
          flush=True)
    projects = Projects(work)
    out: list[str] = []
    try:
        for section in only:
            sizes = rows or SECTIONS[section]
            print(f"== {section}: rows {', '.join(f'{n:,}' for n in sizes)}", flush=True)
            out.append(f"\n{section}:")
            if section == "inplace":
                bench_inplace(out, projects, sizes, args.reps)
            elif section == "dryrun":
                bench_dryrun(out, projects, sizes, args.reps)
            elif section == "filesize":
                bench_filesize(out, projects, sizes)
            elif section == "backup":
                bench_backup(out, projects, sizes, args.reps)
            elif section == "writewait":
                bench_writewait(out, projects, sizes, args.writewait_reps, args.no_backup)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("\n".join(out))


if __name__ == "__main__":
    main()
