"""tablemigrate benchmarks: whole-process medians and ratios against the tools a user would otherwise use.

    python benchmarks/run.py                 # everything (about 12 minutes; up to about 3 GB in a temp dir)
    python benchmarks/run.py --quick         # smaller sizes: a smoke run whose ratios mean little
    python benchmarks/run.py --only generate,backup

Every measurement is a separate process timed from outside (wall clock; peak RSS from wait4), repeated
(default 5), reported as the median. Not part of the test suite: timings never gate a build.
"""

from __future__ import annotations

import argparse
import os
import platform
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
sys.path.insert(0, str(HERE))
import projectgen  # noqa: E402

from tablemigrate.run.apply import SORTER_THREADS  # noqa: E402

PYTHON = sys.executable
ROOT = HERE.parent


def timed(args: list[str], cwd: Path, env: dict | None = None, stdin: str | None = None) -> tuple[float, int]:
    """(seconds, peak RSS in KB) of one process."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if stdin:
        proc.stdin.write(stdin)
        proc.stdin.close()
    out = proc.stdout.read()
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{out}\n{err}")
    return seconds, usage.ru_maxrss


def median_of(reps: int, one: Callable[[], tuple[float, int]], setup: Callable[[], None] | None = None):
    times, peaks = [], []
    for _ in range(reps):
        if setup:
            setup()
        t, m = one()
        times.append(t)
        peaks.append(m)
    return statistics.median(times), max(peaks)


def paired(reps: int, ours: Callable[[], tuple[float, int]], theirs: Callable[[], tuple[float, int]],
           setup_ours: Callable[[], None] | None = None, setup_theirs: Callable[[], None] | None = None):
    """Both sides alternately (ours, theirs, ours, ...), after flushing dirty pages, so background
    writeback and caches hit both alike. One untimed run of each side first writes the bytecode caches.
    Returns (ours median, peak), (theirs median, peak)."""
    median_of(1, ours, setup_ours)
    median_of(1, theirs, setup_theirs)
    os.sync()
    a, b = [], []
    for _ in range(reps):
        a.append(median_of(1, ours, setup_ours))
        b.append(median_of(1, theirs, setup_theirs))
    return ((statistics.median(t for t, _ in a), max(m for _, m in a)),
            (statistics.median(t for t, _ in b), max(m for _, m in b)))


def env_for(project: Path) -> dict:
    # PYTHONDONTWRITEBYTECODE (set on some CI machines) would make every run recompile the project's and
    # tablemigrate's modules while Django's come precompiled from site-packages: both sides run as in a
    # default Python environment instead, where the first run writes the bytecode cache.
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONDONTWRITEBYTECODE")}
    env["PYTHONPATH"] = f"{project}{os.pathsep}{ROOT}"
    return env


def manage(project: Path, *args: str) -> list[str]:
    return [PYTHON, str(project / "manage.py"), *args]


class Results:
    def __init__(self):
        self.rows: list[tuple[str, str, float | str, int, str, float | str, int, str]] = []

    def add(self, what: str, ours: tuple[float, int], name: str, theirs: tuple[float, int], target: str,
            ours_label: str = "tablemigrate") -> None:
        ratio = ours[0] / theirs[0]
        self.rows.append((what, ours_label, ours[0], ours[1], name, theirs[0], theirs[1], f"{ratio:.2f}  ({target})"))
        print(f"  {what}: {ours[0]:.3f}s vs {name} {theirs[0]:.3f}s -> ratio {ratio:.2f} (target {target})",
              flush=True)

    def table(self) -> str:
        lines = ["| measurement | ours (s) | ours peak MB | compared with | theirs (s) | theirs peak MB | ratio (target) |",
                 "|---|---|---|---|---|---|---|"]
        for what, _ol, ot, om, name, tt, tm, ratio in self.rows:
            lines.append(f"| {what} | {ot if isinstance(ot, str) else f'{ot:.3f}'} | {om / 1024:.0f} | {name} | "
                         f"{tt if isinstance(tt, str) else f'{tt:.3f}'} | {tm / 1024:.0f} | {ratio} |")
        return "\n".join(lines)


# --- generate / run on generated projects --------------------------------------------------------------

def projects(work: Path, n: int) -> tuple[Path, Path]:
    tm = projectgen.write_project(work / f"tm{n}", n, "tablemigrate")
    dj = projectgen.write_project(work / f"dj{n}", n, "django")
    subprocess.run(manage(tm, "tablemigrate", "generate", "Initial", "--noinput"), cwd=tm, env=env_for(tm),
                   check=True, capture_output=True)
    subprocess.run(manage(dj, "makemigrations"), cwd=dj, env=env_for(dj), check=True, capture_output=True)
    return tm, dj


def cold_cache(work: Path, project: Path) -> tuple[dict, Callable[[], None]]:
    """An environment whose TMPDIR is an empty directory before every run, so tablemigrate's per-user
    cache (introspection, database A) starts empty, as in a fresh CI container; and the emptying."""
    tmp = work / "cold-tmp"

    def empty() -> None:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()

    return dict(env_for(project), TMPDIR=str(tmp)), empty


def _generate_after_change(results: Results, tm: Path, dj: Path, what: str, reps: int,
                           cold_in: Path | None = None, tm_args: tuple[str, ...] = ()) -> None:
    """`generate` vs `makemigrations` on projects whose models were just changed, each repetition
    starting from the history before the change (`cold_in`: with tablemigrate's cache emptied each time)."""
    tm_dir, dj_dirs = tm / "tablemigrations", sorted(dj.glob("app*/migrations"))
    tm_before = set(tm_dir.iterdir())
    dj_before = {p for d in dj_dirs for p in d.iterdir()}
    snapshot = (tm_dir / "schema.sql").read_bytes()

    def reset_tm():  # back to the history before the change (generate rewrote schema.sql)
        for p in set(tm_dir.iterdir()) - tm_before:
            p.unlink()
        (tm_dir / "schema.sql").write_bytes(snapshot)

    def reset_dj():
        for d in dj_dirs:
            for p in set(d.iterdir()) - dj_before:
                shutil.rmtree(p) if p.is_dir() else p.unlink()

    env, empty = cold_cache(cold_in, tm) if cold_in else (env_for(tm), lambda: None)
    ours, theirs = paired(reps, lambda: timed(manage(tm, "tablemigrate", "generate", "Change", "--noinput", *tm_args),
                                              tm, env),
                          lambda: timed(manage(dj, "makemigrations", "--noinput"), dj, env_for(dj)),
                          lambda: (reset_tm(), empty()), reset_dj)
    results.add(what, ours, "makemigrations", theirs, "< 1.0")
    reset_tm()
    reset_dj()


def bench_generate(results: Results, work: Path, sizes: list[int], reps: int) -> None:
    for n in sizes:
        tm, dj = projects(work, n)
        projectgen.apply_typical_change(tm, n)
        projectgen.apply_typical_change(dj, n)
        _generate_after_change(results, tm, dj, f"generate after a typical change, {n} models", reps)
        if n >= 200 or n == sizes[-1]:  # fresh projects: no model differs from the history
            tm, dj = projects(work, n)
            ours, theirs = paired(reps, lambda: timed(manage(tm, "tablemigrate", "generate", "--check", "--noinput"),
                                                      tm, env_for(tm)),
                                  lambda: timed(manage(dj, "makemigrations", "--check", "--dry-run"), dj, env_for(dj)))
            results.add(f"generate --check, no change, {n} models", ours, "makemigrations --check --dry-run",
                        theirs, "< 1.0")
            env, empty = cold_cache(work, tm)
            ours, theirs = paired(reps, lambda: timed(manage(tm, "tablemigrate", "generate", "--check", "--noinput"),
                                                      tm, env),
                                  lambda: timed(manage(dj, "makemigrations", "--check", "--dry-run"), dj, env_for(dj)),
                                  empty)
            results.add(f"generate --check, no change, {n} models, cold cache (a fresh CI container)", ours,
                        "makemigrations --check --dry-run", theirs, "< 1.0")
            if n == (200 if 200 in sizes else sizes[-1]):  # Django's initial migrate of 500 models: minutes
                bench_run(results, tm, dj, n, reps)
            projectgen.apply_typical_change(tm, n)
            projectgen.apply_typical_change(dj, n)
            _generate_after_change(results, tm, dj, f"generate after a typical change, {n} models, cold cache",
                                   reps, cold_in=work)
            tm, dj = projects(work, n)
            rename = projectgen.apply_change_set(tm, n)
            projectgen.apply_change_set(dj, n)
            what = f"generate after the change set ({len(projectgen.CHANGE_SET)} changes), {n} models"
            _generate_after_change(results, tm, dj, what, reps, tm_args=tuple(rename))
            _generate_after_change(results, tm, dj, what + ", cold cache", reps, cold_in=work, tm_args=tuple(rename))


def _edit_loop(results: Results, work: Path, n: int, reps: int) -> None:
    """The loop a developer lives in: change models, `generate`, change again, generate again. Timed:
    `generate --dry-run` after the change set, with tablemigrate's cache exactly as the previous
    (writing) `generate` left it, restored before each repetition; vs `makemigrations --dry-run`."""
    tm, dj = projects(work, n)
    tmp, saved = work / f"loop-tmp{n}", work / f"loop-tmp{n}-saved"
    for d in (tmp, saved):
        shutil.rmtree(d, ignore_errors=True)
    tmp.mkdir()
    env = dict(env_for(tm), TMPDIR=str(tmp))
    projectgen.apply_typical_change(tm, n)
    projectgen.apply_typical_change(dj, n)
    subprocess.run(manage(tm, "tablemigrate", "generate", "Typical", "--noinput"), cwd=tm, env=env, check=True,
                   capture_output=True)
    subprocess.run(manage(dj, "makemigrations", "--noinput"), cwd=dj, env=env_for(dj), check=True,
                   capture_output=True)
    shutil.copytree(tmp, saved)  # the cache as that generate left it

    def as_left() -> None:
        shutil.rmtree(tmp)
        shutil.copytree(saved, tmp)

    rename = projectgen.apply_change_set(tm, n)
    projectgen.apply_change_set(dj, n)
    ours, theirs = paired(reps, lambda: timed(manage(tm, "tablemigrate", "generate", "--dry-run", "--noinput", *rename),
                                              tm, env),
                          lambda: timed(manage(dj, "makemigrations", "--dry-run"), dj, env_for(dj)), as_left)
    results.add(f"edit loop: generate --dry-run after the change set ({len(projectgen.CHANGE_SET)} changes), "
                f"{n} models, the cache as the previous generate left it", ours, "makemigrations --dry-run",
                theirs, "< 1.0")


def bench_run(results: Results, tm: Path, dj: Path, n: int, reps: int, suffix: str = "") -> None:
    def fresh_tm():
        for p in tm.glob("db.sqlite3*"):
            p.unlink()
        shutil.rmtree(tm / "backups", ignore_errors=True)

    def fresh_dj():
        for p in dj.glob("db.sqlite3*"):
            p.unlink()

    ours, theirs = paired(reps, lambda: timed(manage(tm, "tablemigrate", "run", "--noinput"), tm, env_for(tm)),
                          lambda: timed(manage(dj, "migrate"), dj, env_for(dj)), fresh_tm, fresh_dj)
    results.add(f"run the initial history on an empty DB, {n} models{suffix}", ours,
                "migrate (Django's initial migrations)",
                theirs, "< 1.0")
    ours, theirs = paired(reps, lambda: timed(manage(tm, "tablemigrate", "run", "--noinput"), tm, env_for(tm)),
                          lambda: timed(manage(dj, "check"), dj, env_for(dj)))  # Django alone: no checks of ours
    results.add(f"run with nothing pending, {n} models{suffix}", ours, "manage.py check", theirs, "<= 1.2")


def bench_contrib(results: Results, work: Path, n: int, reps: int) -> None:
    """The 0.2 division of labour: Django's auth, contenttypes and sessions on their own migrations
    (which `tablemigrate run` applies first, through Django's executor), the project's apps owned."""
    tm = projectgen.write_project(work / f"tmc{n}", n, "tablemigrate", contrib=True)
    dj = projectgen.write_project(work / f"djc{n}", n, "django", contrib=True)
    subprocess.run(manage(tm, "tablemigrate", "generate", "Initial", "--noinput"), cwd=tm, env=env_for(tm),
                   check=True, capture_output=True)
    subprocess.run(manage(dj, "makemigrations"), cwd=dj, env=env_for(dj), check=True, capture_output=True)
    bench_run(results, tm, dj, n, reps, " with auth, contenttypes and sessions")


# --- rebuild of a big table ----------------------------------------------------------------------------

REBUILD_MODELS = '''from django.db import models


class Owner(models.Model):
    name = models.CharField(max_length=50)


class Item(models.Model):
    owner = models.ForeignKey(Owner, on_delete=models.CASCADE)
    title = models.CharField(max_length=100)
    body = models.TextField()
    amount = models.IntegerField(default=0)
    price = models.FloatField(default=0)
    active = models.BooleanField(default=True)
    created = models.DateTimeField()
    code = models.CharField(max_length={code_length}, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["title", "amount"], name="item_title_amount")]
'''


def rebuild_project(work: Path, name: str, mode: str, rows: int) -> Path:
    project = projectgen.write_project(work / name, 1, mode)
    shutil.rmtree(project / "app0")
    app = project / "app0"
    app.mkdir()
    (app / "__init__.py").write_text("")
    (app / "models.py").write_text(REBUILD_MODELS.format(code_length=20))
    if mode == "django":
        (app / "migrations").mkdir()
        (app / "migrations" / "__init__.py").write_text("")
        subprocess.run(manage(project, "makemigrations", "app0"), cwd=project, env=env_for(project), check=True,
                       capture_output=True)
        subprocess.run(manage(project, "migrate"), cwd=project, env=env_for(project), check=True, capture_output=True)
    else:
        for args in (("generate", "Initial", "--noinput"), ("run", "--noinput")):
            subprocess.run(manage(project, "tablemigrate", *args), cwd=project, env=env_for(project), check=True,
                           capture_output=True)
    fill(project / "db.sqlite3", rows)
    # The change: AlterField code max_length 20 -> 40 (SQLite cannot ALTER a column type: a rebuild)
    shutil.rmtree(app / "__pycache__", ignore_errors=True)  # same length: a stale bytecode cache could hide it
    (app / "models.py").write_text(REBUILD_MODELS.format(code_length=40))
    if mode == "django":
        subprocess.run(manage(project, "makemigrations", "app0"), cwd=project, env=env_for(project), check=True,
                       capture_output=True)
    else:
        subprocess.run(manage(project, "tablemigrate", "generate", "Widen", "--noinput"), cwd=project,
                       env=env_for(project), check=True, capture_output=True)
    shutil.copy(project / "db.sqlite3", project / "pristine.sqlite3")
    return project


def fill(db: Path, rows: int) -> None:
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA synchronous = OFF")
    conn.executemany("INSERT INTO app0_owner (id, name) VALUES (?, ?)", ((i, f"owner {i}") for i in range(1, 1001)))
    conn.executemany(
        "INSERT INTO app0_item (owner_id, title, body, amount, price, active, created, code) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        ((i % 1000 + 1, f"title {i}", "lorem ipsum dolor sit amet " * 3, i, i * 0.5, i % 2,
          "2024-01-01 00:00:00", f"C{i:08d}") for i in range(rows)))
    conn.commit()
    conn.close()


def restore_pristine(project: Path) -> None:
    for p in project.glob("db.sqlite3*"):
        p.unlink()
    shutil.copy(project / "pristine.sqlite3", project / "db.sqlite3")
    shutil.rmtree(project / "backups", ignore_errors=True)


def rebuild_sql(db: Path) -> str:
    """The same 12-step rebuild, as plain SQL for the sqlite3 command-line shell."""
    conn = sqlite3.connect(db)
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'app0_item'").fetchone()[0]
    indexes = [r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'app0_item' "
                                          "AND sql IS NOT NULL")]
    conn.close()
    new = sql.replace('"code" varchar(20)', '"code" varchar(40)').replace('"app0_item"', '"new__app0_item"', 1)
    return "\n".join([
        # what tablemigrate runs: sorter threads, and the whole-row copy (same columns in the same order)
        "PRAGMA foreign_keys = OFF;", f"PRAGMA threads = {SORTER_THREADS};", "BEGIN IMMEDIATE;", new + ";",
        'INSERT OR ABORT INTO "new__app0_item" SELECT * FROM "app0_item";',
        'DROP TABLE "app0_item";', 'ALTER TABLE "new__app0_item" RENAME TO "app0_item";',
        *[i + ";" for i in indexes], "PRAGMA foreign_key_check(app0_item);", "COMMIT;"])


def widened(project: Path, rows: int, one: Callable[[], tuple[float, int]]) -> Callable[[], tuple[float, int]]:
    """`one`, then (untimed) proof that it did the rebuild: the column is varchar(40), every row is there."""
    def run() -> tuple[float, int]:
        measured = one()
        conn = sqlite3.connect(project / "db.sqlite3")
        try:
            sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'app0_item'").fetchone()[0]
            count = conn.execute("SELECT count(*) FROM app0_item").fetchone()[0]
        finally:
            conn.close()
        if '"code" varchar(40)' not in sql or count != rows:
            raise RuntimeError(f"{project.name}: the rebuild did not happen ({count} rows): {sql}")
        return measured
    return run


def bench_rebuild(results: Results, work: Path, rows: int, small: int, reps: int) -> None:
    tm = rebuild_project(work, "rebuild_tm", "tablemigrate", rows)
    dj = rebuild_project(work, "rebuild_dj", "django", rows)
    script = rebuild_sql(tm / "db.sqlite3")
    run_tm = widened(tm, rows, lambda: timed(manage(tm, "tablemigrate", "run", "--noinput", "--no-backup"), tm,
                                             env_for(tm)))
    ours, cli = paired(reps, run_tm, widened(tm, rows, lambda: timed(["sqlite3", str(tm / "db.sqlite3")], tm,
                                                                     stdin=script)),
                       lambda: restore_pristine(tm), lambda: restore_pristine(tm))
    ours2, theirs = paired(reps, run_tm, widened(dj, rows, lambda: timed(manage(dj, "migrate"), dj, env_for(dj))),
                           lambda: restore_pristine(tm), lambda: restore_pristine(dj))
    results.add(f"rebuild of a {rows:,}-row table (run --no-backup)", ours, "sqlite3 CLI, same SQL", cli, "<= 1.2")
    results.add(f"rebuild of a {rows:,}-row table (run --no-backup)", ours2, "Django migrate, same AlterField", theirs,
                "< 1.0")
    tm_small = rebuild_project(work, "rebuild_small", "tablemigrate", small)
    run_small = widened(tm_small, small, lambda: timed(manage(tm_small, "tablemigrate", "run", "--noinput",
                                                              "--no-backup"), tm_small, env_for(tm_small)))
    median_of(1, run_small, lambda: restore_pristine(tm_small))  # untimed: writes the bytecode cache, as paired()
    small_run = median_of(reps, run_small, lambda: restore_pristine(tm_small))
    ratio = ours[1] / small_run[1]
    results.rows.append((f"peak memory of that rebuild, {rows:,} vs {small:,} rows", "", "(memory)", ours[1],
                         f"{small:,} rows", "(memory)", small_run[1], f"{ratio:.2f}  (<= 1.2, memory)"))
    print(f"  peak RSS {ours[1] / 1024:.0f} MB at {rows:,} rows vs {small_run[1] / 1024:.0f} MB at {small:,}: "
          f"ratio {ratio:.2f}", flush=True)


# --- backup --------------------------------------------------------------------------------------------

def bench_backup(results: Results, work: Path, megabytes: int, reps: int) -> None:
    db = work / "big.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("CREATE TABLE blobs (id integer PRIMARY KEY, data blob)")
    chunk = os.urandom(64 * 1024)
    conn.executemany("INSERT INTO blobs (data) VALUES (?)", ((chunk,) for _ in range(megabytes * 16)))
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    size = db.stat().st_size
    code = ("import sqlite3, sys; from pathlib import Path; from tablemigrate.backups.backup import take_backup; "
            "take_backup(sqlite3.connect(sys.argv[1]), Path(sys.argv[2]))")
    out = work / "backups"

    def clean():
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()

    env = dict(env_for(ROOT), PYTHONPATH=str(ROOT))
    copy = ("import os, shutil, sys; shutil.copyfile(sys.argv[1], sys.argv[2]); "
            "fd = os.open(sys.argv[2], os.O_RDONLY); os.fsync(fd); os.close(fd)")
    ours, theirs = paired(reps, lambda: timed([PYTHON, "-c", code, str(db), str(out / "b.sqlite3")], work, env),
                          lambda: timed([PYTHON, "-c", copy, str(db), str(out / "c.sqlite3")], work), clean, clean)
    results.add(f"backup of a {size / 2**30:.2f} GB database (verified, 0600)", ours, "copy (shutil.copyfile, as cp) + fsync", theirs, "<= 2.0",
                "tablemigrate take_backup")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per side (default 5; the median "
                                                                  "is reported)")
    parser.add_argument("--only", default="generate,loop,contrib,rebuild,backup",
                        help="comma-separated sections: generate (generate, --check, run), loop (the edit loop: "
                             "generate after a change with the cache the previous generate left), contrib (run "
                             "with Django's contrib apps on their own migrations), rebuild, backup")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--sizes", default=None, help="comma-separated model counts for the generate section "
                                                      "(default 50,200,500; --quick: 20,50)")
    args = parser.parse_args()
    only = set(args.only.split(","))
    sections = {"generate", "loop", "contrib", "rebuild", "backup"}
    if not only <= sections:
        parser.error(f"unknown section(s) in --only: {', '.join(sorted(only - sections))}")
    if shutil.which("sqlite3") is None and "rebuild" in only:
        parser.error("the rebuild section needs the sqlite3 command-line shell (Debian/Ubuntu: apt install sqlite3)")
    work = Path(tempfile.mkdtemp(prefix="tablemigrate-bench-"))
    results = Results()
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"Django {django.get_version()}, SQLite {sqlite3.sqlite_version}; work dir {work}", flush=True)
    try:
        sizes = [int(x) for x in args.sizes.split(",")] if args.sizes else [20, 50] if args.quick else [50, 200, 500]
        if "generate" in only:
            bench_generate(results, work, sizes, args.reps)
        if "loop" in only:
            for n in sizes:
                _edit_loop(results, work, n, args.reps)
        if "contrib" in only:
            bench_contrib(results, work, 50 if args.quick else 200, args.reps)
        if "rebuild" in only:
            rows, small = (100_000, 10_000) if args.quick else (1_000_000, 100_000)
            bench_rebuild(results, work, rows, small, args.reps)
        if "backup" in only:
            bench_backup(results, work, 100 if args.quick else 1024, args.reps)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(f"medians of {args.reps} runs each")
    print(results.table())


if __name__ == "__main__":
    main()
