"""A fleet of tenant databases (issue 26): one command for all of them against the loops a user writes today.

    python benchmarks/fleet.py                          # 1,000 databases: the full loops take many minutes
    python benchmarks/fleet.py --databases 50           # a smoke run
    python benchmarks/fleet.py --loop-sample 100        # the two loops timed on 100 databases, scaled

The scenario: N tenant databases of about 1 MB each (one table `app0_order` of 4,800 realistic rows, plus
Django's contenttypes, auth and sessions tables as `run` leaves them), with one pending change that SQLite's
ALTER TABLE cannot express: `postcode` IntegerField -> CharField(max_length=10) (INTEGER to TEXT affinity:
every record is rewritten, its postcode stored as text; a table rebuild for tablemigrate and for Django's
SQLite schema editor alike, and not destructive, so `--noinput` runs it). Three contenders,
each on its own fresh copy of the N databases, in one run:
- fleet: `manage.py tablemigrate run --all-databases --only 'tenant:*' --jobs J --noinput`, the databases
  named by `TABLEMIGRATE_FLEET = {"tenant": <glob>}` (`--only` leaves out the project's `default` database,
  so that all three contenders migrate the same N databases);
- loop: for each database one `manage.py tablemigrate run --database tenant --noinput` process, the
  settings reading the database's path from the TENANT_DB environment variable;
- django loop: for each database `manage.py migrate --database tenant --noinput`, a settings module without
  tablemigrate, the app on Django migrations 0001 and 0002 (the same models, the same change).
tablemigrate takes its automatic backup of each database before migrating (the default; Django's `migrate`
takes none). Each contender runs once untimed on a database of its own first (Python's bytecode cache and
tablemigrate's per-user cache, as on any machine that ran the command before), then after an `os.sync()`
the whole loop or the whole fleet command is timed from outside (wall clock). The fleet's peak memory is
`getrusage(RUSAGE_CHILDREN).ru_maxrss` of a wrapper process after it waited for the command: the largest
peak RSS of the command's process and of its workers. It is measured at several fleet sizes (by default
N/10, 3N/10 and N), each on fresh copies, to show that it does not grow with the number of databases.
After every contender, outside its time, every database it ran on is checked: `postcode` is varchar(10) and
holds text in every row, every row is there (count and a sum), the change is recorded (tablemigrate's history / django_migrations).

Not part of the test suite's timings (tests/test_benchmarks_fleet.py runs a tiny one so it cannot rot).
Everything is in a temporary directory, removed at the end unless `--keep`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import django

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # this tree's tablemigrate, also where another is installed
import projectgen  # noqa: E402
import run as bench  # noqa: E402  (run.py: env_for, manage)

PYTHON = sys.executable
ROWS = 4800  # about 1 MB of app0_order with its indexes

MODELS = '''from django.db import models


class Order(models.Model):
    number = models.CharField(max_length=20, unique=True)
    customer = models.CharField(max_length=100)
    email = models.EmailField()
    note = models.TextField(blank=True)
    quantity = models.IntegerField(default=1)
    price = models.FloatField(default=0)
    postcode = {postcode}
    status = models.CharField(max_length=10, default="new", db_index=True)
    created = models.DateTimeField()
'''
POSTCODE_BEFORE = "models.IntegerField()"
POSTCODE_AFTER = "models.CharField(max_length=10)"

SETTINGS = '''import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "bench"
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions", {tablemigrate}
                  "app0"]
DATABASES = {{
    "default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": str(BASE_DIR / "default.sqlite3")}},
    "tenant": {{"ENGINE": "django.db.backends.sqlite3",
                "NAME": os.environ.get("TENANT_DB", str(BASE_DIR / "tenant.sqlite3"))}},
}}
{extra}'''
TM_EXTRA = '''MIGRATION_MODULES = {"app0": None}  # app0's Django migrations are settings_django's: tablemigrate owns it here
TABLEMIGRATE_MIGRATIONS_DIR = BASE_DIR / "tablemigrations"
TABLEMIGRATE_FLEET = {"tenant": os.environ.get("TENANT_GLOB", "tenants/*.sqlite3")}
'''

# The wrapper that runs the fleet command: its time, and the largest peak RSS of the command's processes
# (the command and its workers, all waited for: RUSAGE_CHILDREN of this wrapper).
WRAPPER = ("import json, resource, subprocess, sys, time\n"
           "started = time.perf_counter()\n"
           "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
           "seconds = time.perf_counter() - started\n"
           "print(json.dumps({'seconds': seconds, 'maxrss_kb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,"
           " 'returncode': done.returncode, 'stdout': done.stdout, 'stderr': done.stderr}))\n")


@dataclass
class Measured:
    contender: str
    databases: int     # the databases the time stands for
    seconds: float     # for `databases` (scaled when sampled)
    sampled: int = 0   # databases actually run when the time is scaled from a sample; 0: all of them
    maxrss_kb: int = 0

    @property
    def per_database(self) -> float:
        return self.seconds / self.databases


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def settings_env(project: Path, settings: str, **extra: str) -> dict:
    return dict(bench.env_for(project), DJANGO_SETTINGS_MODULE=f"benchproj.{settings}", **extra)


def call(project: Path, settings: str, args: list[str], **extra: str) -> subprocess.CompletedProcess:
    done = subprocess.run(bench.manage(project, *args), cwd=project, env=settings_env(project, settings, **extra),
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} ({settings}, {extra}) failed ({done.returncode}):\n"
                           f"{done.stdout}\n{done.stderr}")
    return done


def write_models(project: Path, postcode: str) -> None:
    app = project / "app0"
    shutil.rmtree(app / "__pycache__", ignore_errors=True)  # a stale bytecode cache could hide the edit
    (app / "models.py").write_text(MODELS.format(postcode=postcode))


def fill(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.executemany(
        "INSERT INTO app0_order (number, customer, email, note, quantity, price, postcode, status, created) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ((f"ORD-{i:08d}", f"Customer {i % 997} Lastname", f"customer{i % 997}@example.com",
          f"Deliver to the back door, gate code {i % 10000:04d}; call ahead." if i % 3 else "",
          i % 7 + 1, round((i % 5000) * 0.37 + 0.99, 2), 10000 + i * 37 % 89999, ("new", "paid", "shipped", "done")[i % 4],
          f"2025-{i % 12 + 1:02d}-{i % 28 + 1:02d} 12:{i % 60:02d}:00") for i in range(ROWS)))
    conn.commit()
    conn.execute("VACUUM")
    conn.close()


def prepare(work: Path) -> tuple[Path, Path, Path]:
    """The project, and two template tenant databases with the change pending: tablemigrate's (its first
    module applied by `run`) and Django's (0001 applied by `migrate`), the same rows in both."""
    project = work / "project"
    (project / "benchproj").mkdir(parents=True)
    (project / "app0" / "migrations").mkdir(parents=True)
    (project / "manage.py").write_text(projectgen.MANAGE)
    for path in (project / "benchproj" / "__init__.py", project / "app0" / "__init__.py",
                 project / "app0" / "migrations" / "__init__.py"):
        path.write_text("")
    (project / "benchproj" / "settings.py").write_text(SETTINGS.format(tablemigrate='"tablemigrate",', extra=TM_EXTRA))
    (project / "benchproj" / "settings_django.py").write_text(SETTINGS.format(tablemigrate="", extra=""))
    write_models(project, POSTCODE_BEFORE)
    call(project, "settings", ["tablemigrate", "generate", "Orders", "--noinput"])
    call(project, "settings_django", ["makemigrations", "app0"])
    templates = work / "templates"
    templates.mkdir()
    tm, dj = templates / "tm.sqlite3", templates / "dj.sqlite3"
    call(project, "settings", ["tablemigrate", "run", "--database", "tenant", "--noinput"], TENANT_DB=str(tm))
    call(project, "settings_django", ["migrate", "--database", "tenant", "--noinput"], TENANT_DB=str(dj))
    shutil.rmtree(templates / "backups", ignore_errors=True)
    fill(tm)
    fill(dj)
    write_models(project, POSTCODE_AFTER)
    call(project, "settings", ["tablemigrate", "generate", "Postcode", "--noinput"])
    call(project, "settings_django", ["makemigrations", "app0"])
    pending = sorted((project / "tablemigrations").glob("*.py"))[-1]  # names sort in apply order
    if "RebuildTable(" not in pending.read_text():
        raise RuntimeError(f"the pending module is not a table rebuild: {pending.name}")
    return project, tm, dj


def copies(template: Path, directory: Path, count: int) -> list[Path]:
    directory.mkdir(parents=True)
    paths = [directory / f"t{i:05d}.sqlite3" for i in range(count)]
    for path in paths:
        shutil.copyfile(template, path)
    return paths


def check(paths: list[Path], mode: str, contender: str) -> None:
    """Every database migrated: `postcode` varchar(10) holding text in every row (the records were
    rewritten), every row there, the change recorded. Raises otherwise."""
    expected = (ROWS, ROWS * (ROWS - 1) // 2, ROWS)
    wrong = []
    for path in paths:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            sql = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'app0_order'").fetchone()[0]
            rows = conn.execute("SELECT count(*), sum(CAST(substr(number, 5) AS INTEGER)), "
                                "count(CASE WHEN typeof(postcode) = 'text' THEN 1 END) FROM app0_order").fetchone()
            if mode == "tablemigrate":
                recorded = conn.execute("SELECT count(*) FROM tablemigrate_history").fetchone()[0] == 2
            else:
                recorded = conn.execute("SELECT count(*) FROM django_migrations WHERE app = 'app0' "
                                        "AND name LIKE '0002%'").fetchone()[0] == 1
        finally:
            conn.close()
        if '"postcode" varchar(10)' not in sql or tuple(rows) != expected or not recorded:
            wrong.append(f"{path.name}: rows {tuple(rows)}, recorded {recorded}, {sql}")
    if wrong:
        raise RuntimeError(f"{contender}: {len(wrong)} of {len(paths)} databases not migrated:\n" + "\n".join(wrong[:5]))
    print(f"  checked {contender}: {len(paths)} of {len(paths)} databases migrated (postcode varchar(10), "
          f"{ROWS} rows each, all rewritten, the change recorded)", flush=True)


def sample(paths: list[Path], m: int | None) -> list[Path]:
    """`m` databases spread over the set (all of them when m is None or not smaller)."""
    if m is None or m >= len(paths):
        return paths
    return [paths[i * len(paths) // m] for i in range(m)]


def loop(project: Path, settings: str, args: list[str], paths: list[Path]) -> tuple[float, int]:
    """One process per database, one after the other, as a shell loop runs them: (the total wall clock,
    the largest peak RSS of one process in KB, from wait4)."""
    env = settings_env(project, settings)
    command = bench.manage(project, *args)
    peak = 0
    os.sync()
    started = time.perf_counter()
    for path in paths:
        env["TENANT_DB"] = str(path)
        proc = subprocess.Popen(command, cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        out = proc.stdout.read()
        proc.stdout.close()
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} on {path.name} failed ({proc.returncode}):\n{out}")
        peak = max(peak, usage.ru_maxrss)
    return time.perf_counter() - started, peak


def bench_loop(project: Path, template: Path, work: Path, name: str, mode: str, n: int, m: int | None,
               keep: bool) -> Measured:
    settings, args = (("settings", ["tablemigrate", "run", "--database", "tenant", "--noinput"]) if mode == "tablemigrate"
                      else ("settings_django", ["migrate", "--database", "tenant", "--noinput"]))
    loop(project, settings, args, copies(template, work / f"warm-{name}", 1))  # untimed: the caches
    paths = sample(copies(template, work / name, n), m)
    seconds, peak = loop(project, settings, args, paths)
    check(paths, mode, name)
    if not keep:
        shutil.rmtree(work / name)
    scaled = seconds * n / len(paths)
    print(f"  {name}: {scaled:.1f} s for {n} databases ({scaled / n * 1000:.0f} ms each)"
          + (f", scaled from {len(paths)} timed" if len(paths) < n else ""), flush=True)
    return Measured(name, n, scaled, len(paths) if len(paths) < n else 0, peak)


def fleet(project: Path, directory: Path, jobs: int) -> tuple[float, int]:
    """The fleet command on the databases in `directory`: (seconds, largest peak RSS in KB). Its JSON
    summary must name every database of `directory`, each migrated."""
    args = bench.manage(project, "tablemigrate", "run", "--all-databases", "--only", "tenant:*", "--jobs", str(jobs),
                        "--noinput", "--format", "json")
    env = settings_env(project, "settings", TENANT_GLOB=str(directory / "*.sqlite3"))
    os.sync()
    done = subprocess.run([PYTHON, "-c", WRAPPER, *args], cwd=project, env=env, capture_output=True, text=True,
                          check=True)
    result = json.loads(done.stdout)
    if result["returncode"] != 0:
        raise RuntimeError(f"the fleet command failed ({result['returncode']}):\n{result['stdout']}\n"
                           f"{result['stderr']}")
    summary = json.loads(result["stdout"])
    named = sorted((Path(d["path"]).name, d["status"]) for d in summary["databases"])
    expected = sorted((p.name, "migrated") for p in directory.glob("*.sqlite3"))
    if named != expected:
        raise RuntimeError(f"the fleet's summary does not say every database was migrated: {summary['counts']}")
    return result["seconds"], result["maxrss_kb"]


def bench_fleet(project: Path, template: Path, work: Path, sizes: list[int], jobs: int, keep: bool) -> list[Measured]:
    """The fleet at each size (the last is the contender), each on fresh copies."""
    warm = work / "warm-fleet"
    copies(template, warm, 1)
    fleet(project, warm, jobs)  # untimed: the caches
    check(sorted(warm.glob("*.sqlite3")), "tablemigrate", "fleet (warm-up)")
    measured = []
    for size in sizes:
        directory = work / f"fleet{size}"
        paths = copies(template, directory, size)
        seconds, maxrss = fleet(project, directory, jobs)
        check(paths, "tablemigrate", f"fleet of {size}")
        if not keep:
            shutil.rmtree(directory)
        print(f"  fleet of {size}: {seconds:.1f} s ({seconds / size * 1000:.0f} ms a database), peak RSS "
              f"{maxrss / 1024:.0f} MB", flush=True)
        measured.append(Measured("fleet", size, seconds, maxrss_kb=maxrss))
    return measured


def report(n: int, jobs: int, contenders: list[Measured], sizes: list[Measured], size_kb: int) -> str:
    fleet_row = next((c for c in contenders if c.contender == "fleet"), None)
    lines = [f"{n} databases of {size_kb / 1024:.2f} MB ({ROWS} rows of app0_order and Django's tables), one pending "
             "rebuild (postcode IntegerField -> CharField)", "",
             "| contender | databases timed | seconds for all | per database (ms) | ratio to the fleet | peak RSS (MB) |",
             "|---|---|---|---|---|---|"]
    for c in contenders:
        timed = f"{c.sampled} of {c.databases}, scaled" if c.sampled else f"{c.databases}"
        ratio = f"{c.seconds / fleet_row.seconds:.2f}" if fleet_row else "-"
        lines.append(f"| {c.contender} | {timed} | {c.seconds:.1f} | {c.per_database * 1000:.0f} | {ratio} | "
                     f"{c.maxrss_kb / 1024:.0f} |")
    lines.append("(peak RSS: the largest of one process of a loop; of the fleet command and its workers)")
    if sizes:
        lines += ["", f"The fleet (--jobs {jobs}) by size: peak RSS is the largest of the command's and its workers'",
                  "", "| databases | seconds | per database (ms) | peak RSS (MB) |", "|---|---|---|---|"]
        lines += [f"| {m.databases} | {m.seconds:.1f} | {m.per_database * 1000:.0f} | {m.maxrss_kb / 1024:.0f} |"
                  for m in sizes]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--databases", type=int, default=1000, help="tenant databases (default 1000)")
    parser.add_argument("--jobs", type=int, default=2, help="the fleet's worker processes (default 2)")
    parser.add_argument("--loop-sample", type=int, default=None, metavar="M",
                        help="time the two loops on M databases spread over the set and scale the time to all "
                             "(labelled as such); default: the full loops")
    parser.add_argument("--sizes", default=None, help="comma-separated fleet sizes for the memory table (default "
                                                      "N/10, 3N/10 and N; the largest is the fleet's contender row)")
    parser.add_argument("--skip-fleet", action="store_true", help="leave the fleet out (the loops only)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    n = args.databases
    if n < 1 or args.jobs < 1 or (args.loop_sample is not None and args.loop_sample < 1):
        parser.error("--databases, --jobs and --loop-sample must be at least 1")
    try:
        sizes = sorted({int(x) for x in args.sizes.split(",")} | {n}) if args.sizes else sorted(
            {max(1, n // 10), max(1, 3 * n // 10), n})
    except ValueError:
        parser.error(f"--sizes: not a comma-separated list of numbers: {args.sizes}")
    if sizes[0] < 1 or sizes[-1] > n:
        parser.error(f"--sizes must be between 1 and --databases ({n})")
    work = Path(tempfile.mkdtemp(prefix="tablemigrate-fleet-"))
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"Django {django.get_version()}, SQLite {sqlite3.sqlite_version}; load average {loadavg()}; "
          f"work dir {work}", flush=True)
    contenders: list[Measured] = []
    by_size: list[Measured] = []
    try:
        project, tm, dj = prepare(work)
        size_kb = tm.stat().st_size // 1024
        contenders.append(bench_loop(project, tm, work, "loop", "tablemigrate", n, args.loop_sample, args.keep))
        contenders.append(bench_loop(project, dj, work, "django loop", "django", n, args.loop_sample, args.keep))
        if not args.skip_fleet:
            by_size = bench_fleet(project, tm, work, sizes, args.jobs, args.keep)
            contenders.insert(0, next(m for m in by_size if m.databases == n))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average at the end {loadavg()}")
    print(report(n, args.jobs, contenders, by_size, size_kb))


if __name__ == "__main__":
    main()
