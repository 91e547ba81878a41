"""`--all-databases` end to end (issue 26): tests/fleetsite, a shared database on `default` and a fleet of
tenant databases migrated as the `tenant` alias, each with its own history directory. Every database
must end migrated or untouched, whatever refuses, is locked, is killed or is stopped; exit 0 only when
every one of them is right."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from .helpers import copy_fixture_site, project_env, tablemigrate

pytestmark = pytest.mark.subprocess

SITE = Path(__file__).resolve().parent / "fleetsite"
BEFORE = {"id": 1, "title": 1, "body": 0}  # tenantapp_note's columns and their NOT NULL, before the change
AFTER = {"id": 1, "title": 1, "body": 1, "pinned": 1}


def tm(site: Path, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
    return tablemigrate(site, *args, prefix="FLEETSITE", check=check, **env)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The fleet site with both histories generated and the `tenant` alias's own database (the template
    every tenant is copied from) built; the change that makes `body` NOT NULL and adds `pinned` (a table
    rebuild) written by `generate --database tenant`, then kept in later/ until a test rolls it out."""
    site = copy_fixture_site(SITE, tmp_path_factory.mktemp("fleet"))
    (site / "tenants").mkdir()
    tm(site, "generate")
    tm(site, "generate", "--database", "tenant")
    tm(site, "run", "--database", "tenant")
    tenant_dir = site / "migrations_tenant"
    first = set(tenant_dir.iterdir())
    before_schema = (tenant_dir / "schema.sql").read_bytes()
    out = tm(site, "generate", "--database", "tenant", "--noinput", FLEETSITE_STRICT="1").stdout
    assert "rebuild table" in out, out
    later = site / "later"
    later.mkdir()
    for path in set(tenant_dir.iterdir()) - first:
        shutil.move(path, later / path.name)
    shutil.copy(tenant_dir / "schema.sql", later / "schema.sql")
    (tenant_dir / "schema.sql").write_bytes(before_schema)
    return site


@pytest.fixture
def site(built: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(built, tmp_path / "site"))


def roll_out(site: Path) -> str:
    """The change's module into the tenant history; its name."""
    (module,) = (site / "later").glob("*.py")
    shutil.copy(module, site / "migrations_tenant" / module.name)
    shutil.copy(site / "later" / "schema.sql", site / "migrations_tenant" / "schema.sql")
    return module.stem


def make_tenants(site: Path, count: int, *, rows: int = 3, nulls: tuple[int, ...] = (), body: str = "text") -> list[Path]:
    """Tenants t01..tNN, copies of the template, each with `rows` notes (tenant numbers in `nulls` have one
    note whose body is NULL: the change refuses them)."""
    template = site / "tenants" / "template.sqlite3"
    paths = []
    for number in range(1, count + 1):
        path = site / "tenants" / f"t{number:02d}.sqlite3"
        if number == 1 or rows <= 100:
            shutil.copy(template, path)
            with sqlite3.connect(path) as conn:
                conn.executemany("INSERT INTO tenantapp_note (title, body) VALUES (?, ?)",
                                 [(f"t{number} note {i}", None if number in nulls and i == 0 else f"{body} {i}")
                                  for i in range(rows)])
            conn.close()
        else:  # big tenants: the first one's file copied
            shutil.copy(paths[0], path)
        paths.append(path)
    return paths


def look(path: Path) -> tuple[set[str], dict[str, int], list[tuple]]:
    """A tenant as it is: (history names, tenantapp_note's columns -> NOT NULL, its rows (id, title, body)),
    after PRAGMA quick_check says ok."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA quick_check").fetchall() == [("ok",)], path
        history = {r[0] for r in conn.execute("SELECT name FROM tablemigrate_history")}
        columns = {r[1]: r[3] for r in conn.execute("PRAGMA table_info(tenantapp_note)")}
        rows = conn.execute("SELECT id, title, body FROM tenantapp_note ORDER BY id").fetchall()
        return history, columns, rows
    finally:
        conn.close()


def consistent(path: Path, change: str, rows: list[tuple]) -> bool:
    """The tenant's history and schema agree (before the change or after it, never between) and every
    row is intact: True when the change is applied."""
    history, columns, now = look(path)
    assert columns == (AFTER if change in history else BEFORE), (path, history, columns)
    assert now == rows, path
    return change in history


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def summary(out: str) -> str:
    return out.strip().splitlines()[-1]


def test_every_database_migrated_then_current(site: Path) -> None:
    paths = make_tenants(site, 4)
    before = {p: look(p)[2] for p in paths}
    first = tm(site, "run", "--all-databases")
    assert summary(first.stdout) == "5 databases: 1 migrated, 4 already current", first.stdout
    assert "template" not in first.stdout  # the alias's own database is not a member, though the glob matches it
    # Both histories, each on its own databases.
    with sqlite3.connect(site / "shared.sqlite3") as conn:
        assert {r[0] for r in conn.execute("SELECT name FROM sqlite_master")} >= {"shared_account"}
        assert not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'tenantapp_note'").fetchone()
    conn.close()
    change = roll_out(site)
    second = tm(site, "run", "--all-databases", FLEETSITE_STRICT="1")
    assert summary(second.stdout) == "5 databases: 4 migrated, 1 already current", second.stdout
    assert f"migrated    tenant:tenants/t03.sqlite3: {change}" in second.stdout
    for path in paths:
        assert consistent(path, change, before[path])
    digests = {p: digest(p) for p in [*paths, site / "shared.sqlite3"]}
    third = tm(site, "run", "--all-databases", FLEETSITE_STRICT="1")
    assert summary(third.stdout) == "5 databases: 5 already current", third.stdout
    assert {p: digest(p) for p in digests} == digests


def test_a_few_refuse(site: Path) -> None:
    paths = make_tenants(site, 6, nulls=(2, 5))
    tm(site, "run", "--all-databases")
    change = roll_out(site)
    before = {p: (look(p), digest(p)) for p in paths}
    proc = tm(site, "run", "--all-databases", "--keep-going", check=False, FLEETSITE_STRICT="1")
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert summary(proc.stdout) == "7 databases: 4 migrated, 1 already current, 2 refused", proc.stdout
    for number in (2, 5):
        assert f"refused     tenant:tenants/t{number:02d}.sqlite3: cannot apply, existing rows" in proc.stdout
        assert f"tenant:tenants/t{number:02d}.sqlite3 (refused: cannot apply" in proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr  # one line
    for number, path in enumerate(paths, 1):
        (history, columns, rows), was = before[path]
        if number in (2, 5):
            assert digest(path) == was  # untouched: not a byte written
        else:
            assert consistent(path, change, rows)
    # The summary document names each database, with its status and the reason.
    doc = json.loads(tm(site, "run", "--all-databases", "--keep-going", "--format", "json", check=False,
                        FLEETSITE_STRICT="1").stdout)
    assert doc["exit_code"] == 5 and doc["counts"] == {"current": 5, "refused": 2}
    refused = {d["name"]: d for d in doc["databases"] if d["status"] == "refused"}
    assert set(refused) == {"tenant:tenants/t02.sqlite3", "tenant:tenants/t05.sqlite3"}
    assert all("NOT NULL" in d["line"] and d["exit_code"] == 1 for d in refused.values())


def test_the_first_refusal_stops_the_fleet(site: Path) -> None:
    paths = make_tenants(site, 6, nulls=(2, 5))
    tm(site, "run", "--all-databases")
    roll_out(site)
    digests = {p: digest(p) for p in paths}
    proc = tm(site, "run", "--all-databases", "--format", "json", check=False, FLEETSITE_STRICT="1")
    assert proc.returncode == 5
    doc = json.loads(proc.stdout)
    statuses = [d["status"] for d in doc["databases"]]
    assert statuses == ["current", "migrated", "refused", "not started", "not started", "not started", "not started"]
    assert all(digest(p) == digests[p] for p in paths[1:])  # t02 refused, t03.. never opened
    # A canary of two tenants, t02 among them: none of the rest is started, even with --keep-going.
    proc = tm(site, "run", "--all-databases", "--only", "tenant:*", "--canary", "2", "--keep-going", "--format",
              "json", check=False, FLEETSITE_STRICT="1")
    assert proc.returncode == 5
    statuses = [d["status"] for d in json.loads(proc.stdout)["databases"]]
    assert statuses == ["current", "refused", *["not started"] * 4]
    assert all(digest(p) == digests[p] for p in paths[1:])


def _start(site: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    """`tablemigrate *args` in a session of its own (the test may signal its whole process group)."""
    proc = subprocess.Popen([sys.executable, "manage.py", "tablemigrate", *args], cwd=site, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            env=project_env(site, "FLEETSITE", PYTHONUNBUFFERED="1", **env))
    guard = threading.Timer(180, lambda: proc.poll() is None and os.killpg(proc.pid, signal.SIGKILL))
    guard.daemon = True
    guard.start()
    return proc


def _once_backups(site: Path, proc: subprocess.Popen[str], count: int) -> None:
    """Wait until `count` tenants took their run's backup (the fleet is mid-way), or the process ended."""
    while proc.poll() is None and len(list((site / "tenants" / "backups").glob("t*.sqlite3"))) < count:
        time.sleep(0.01)
    assert proc.poll() is None, "the fleet ended before the test could stop it: " + proc.stdout.read()


@pytest.fixture
def big_fleet(site: Path) -> tuple[Path, str, dict[Path, list[tuple]]]:
    """20 tenants of 20,000 notes (each rebuild copies them), migrated up to the change, rolled out."""
    paths = make_tenants(site, 20, rows=20_000, body="x" * 100)
    tm(site, "run", "--all-databases")
    shutil.rmtree(site / "tenants" / "backups", ignore_errors=True)
    rows = look(paths[0])[2]
    return site, roll_out(site), {p: rows for p in paths}


def test_a_killed_fleet_leaves_every_database_whole(big_fleet) -> None:
    site, change, rows = big_fleet
    proc = _start(site, "run", "--all-databases", "--jobs", "2", FLEETSITE_STRICT="1")
    _once_backups(site, proc, 4)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    applied = [consistent(p, change, r) for p, r in rows.items()]
    assert not all(applied), "killed after the last tenant"
    rerun = tm(site, "run", "--all-databases", FLEETSITE_STRICT="1")
    assert summary(rerun.stdout).startswith("21 databases: "), rerun.stdout
    assert all(consistent(p, change, r) for p, r in rows.items())


@pytest.mark.parametrize("jobs", ["2", "1"])
def test_sigterm_to_the_parent_stops_cleanly(big_fleet, jobs: str) -> None:
    site, change, rows = big_fleet
    digests = {p: digest(p) for p in rows}
    proc = _start(site, "run", "--all-databases", "--jobs", jobs, "--format", "json", FLEETSITE_STRICT="1")
    _once_backups(site, proc, 3)
    os.kill(proc.pid, signal.SIGTERM)  # as `docker stop` does: the parent alone
    out, err = proc.communicate()
    os.killpg(proc.pid, signal.SIGKILL) if _group_alive(proc.pid) else None
    assert proc.returncode == 143, out + err
    assert err.strip().startswith("CommandError: interrupted by SIGTERM") and err.count("\n") == 1, err
    doc = json.loads(out)
    assert doc["exit_code"] == 143
    by_path = {Path(d["path"]): d for d in doc["databases"] if d["path"]}
    statuses = {d["status"] for d in by_path.values()}
    assert "not started" in statuses and "migrated" in statuses, statuses
    for path, r in rows.items():
        applied = consistent(path, change, r)
        status = by_path[path]["status"]
        if status == "migrated":
            assert applied
        elif status == "not started":
            assert digest(path) == digests[path]
        else:
            assert status == "interrupted", status
    rerun = tm(site, "run", "--all-databases", FLEETSITE_STRICT="1")
    assert summary(rerun.stdout).startswith("21 databases: "), rerun.stdout
    assert all(consistent(p, change, r) for p, r in rows.items())


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_show_lists_every_database_and_check_says_pending(site: Path) -> None:
    make_tenants(site, 2)
    shown = tm(site, "show", "--all-databases").stdout
    assert [line.split()[:2] for line in shown.splitlines()[:3]] == [
        ["pending", "default:"], ["current", "tenant:tenants/t01.sqlite3"], ["current", "tenant:tenants/t02.sqlite3"]]
    roll_out(site)
    check = tm(site, "show", "--all-databases", "--check", check=False, FLEETSITE_STRICT="1")
    assert check.returncode == 4, check.stdout + check.stderr
    assert "migrations are pending on 3 of 3 databases" in check.stderr
    tm(site, "run", "--all-databases", FLEETSITE_STRICT="1")
    tm(site, "show", "--all-databases", "--check", FLEETSITE_STRICT="1")


@pytest.mark.parametrize("option", [["--jobs", "2"], ["--only", "x"], ["--keep-going"], ["--canary", "1"],
                                    ["--max-failures", "3"]])
def test_fleet_options_need_all_databases(site: Path, option: list[str]) -> None:
    proc = tm(site, "run", *option, check=False)
    assert proc.returncode == 2 and "works with --all-databases only" in proc.stderr, proc.stderr
    assert not (site / "shared.sqlite3").exists()


def test_only_narrows_by_name(site: Path) -> None:
    make_tenants(site, 3)
    out = tm(site, "run", "--all-databases", "--only", "tenant:*t0[13]*").stdout
    assert summary(out) == "2 databases: 2 already current", out
    assert "t02" not in out and not (site / "shared.sqlite3").exists()
    proc = tm(site, "run", "--all-databases", "--only", "nothing*", check=False)
    assert proc.returncode == 2 and "matches --only 'nothing*'" in proc.stderr


def test_an_alias_without_a_history_fails_clearly(site: Path) -> None:
    """Before any database is opened: the shared one is not migrated first and then the tenants refused."""
    make_tenants(site, 2)
    proc = tm(site, "run", "--all-databases", check=False, FLEETSITE_ONLY_DEFAULT="1")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith("CommandError: database 'tenant' has no tablemigrate history: "
                                  "TABLEMIGRATE_MIGRATIONS_DIR names a directory for 'default' only") and \
        proc.stderr.count("\n") == 1, proc.stderr
    assert not (site / "shared.sqlite3").exists()
    out = tm(site, "run", "--all-databases", "--only", "default", FLEETSITE_ONLY_DEFAULT="1").stdout
    assert summary(out) == "1 database: 1 migrated"


def test_a_glob_into_a_missing_directory_is_refused_and_an_empty_one_is_a_fleet_of_none(site: Path) -> None:
    """A typo in the glob's directory must not pass for a fleet of no tenant (exit 0, the shared database
    alone); an existing directory with no tenant yet is a new deployment, which must start."""
    make_tenants(site, 2)
    proc = tm(site, "run", "--all-databases", check=False, FLEETSITE_GLOB="tenant/t*.sqlite3")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "TABLEMIGRATE_FLEET['tenant'] = 'tenant/t*.sqlite3': directory " in proc.stderr
    assert proc.stderr.count("\n") == 1 and not (site / "shared.sqlite3").exists()
    (site / "none_yet").mkdir()
    out = tm(site, "run", "--all-databases", FLEETSITE_GLOB="none_yet/t*.sqlite3").stdout
    assert summary(out) == "1 database: 1 migrated"


def test_backups_are_never_migrated(site: Path) -> None:
    """A recursive glob reaches tenants/backups/: those copies stay as they were taken."""
    paths = make_tenants(site, 2)
    tm(site, "run", "--all-databases")
    roll_out(site)
    tm(site, "run", "--all-databases", FLEETSITE_STRICT="1")
    backups = sorted((site / "tenants" / "backups").glob("t0*.sqlite3"))
    assert len(backups) == 2
    digests = {p: digest(p) for p in backups}
    out = tm(site, "run", "--all-databases", FLEETSITE_STRICT="1", FLEETSITE_GLOB="tenants/**/*.sqlite3").stdout
    assert summary(out) == "3 databases: 3 already current", out
    assert {p: digest(p) for p in backups} == digests
    assert [look(p)[1] for p in paths] == [AFTER, AFTER]


def test_a_locked_tenant_is_named_and_the_others_go_on(site: Path) -> None:
    paths = make_tenants(site, 3)
    change = roll_out(site)
    with open(f"{paths[1]}.tablemigrate.lock", "a") as held:  # another run holds t02's runner lock
        fcntl.flock(held, fcntl.LOCK_EX)
        proc = tm(site, "run", "--all-databases", "--keep-going", "-v", "0", check=False, FLEETSITE_STRICT="1",
                  FLEETSITE_BUSY_TIMEOUT="0.2")
    assert proc.returncode == 5, proc.stdout + proc.stderr
    # At -v 0, only what did not end as asked: its line, and the one error line that names it.
    (line,) = proc.stdout.splitlines()
    assert line.startswith("locked      tenant:tenants/t02.sqlite3: another tablemigrate run holds the lock"), line
    assert proc.stderr.startswith("CommandError: 1 of 4 databases did not end as asked: tenant:tenants/t02.sqlite3 "
                                  "(locked: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert [change in look(p)[0] for p in paths] == [True, False, True]


def test_a_failing_post_migrate_receiver_is_not_called_restored(site: Path) -> None:
    """The migrations of t02 were applied; its receiver failed after them: the summary must not say that
    every failed database was restored or rolled back."""
    paths = make_tenants(site, 3)
    change = roll_out(site)
    proc = tm(site, "run", "--all-databases", "--keep-going", check=False, FLEETSITE_STRICT="1",
              FLEETSITE_FAIL_POST_MIGRATE="t02")
    assert proc.returncode == 5, proc.stdout + proc.stderr
    assert ("failed      tenant:tenants/t02.sqlite3: the migrations were applied, but a post_migrate receiver "
            "failed: RuntimeError") in proc.stdout
    assert summary(proc.stdout) == "4 databases: 3 migrated, 1 failed", proc.stdout
    assert all(change in look(p)[0] for p in paths)


def test_a_dead_worker_is_replaced(site: Path) -> None:
    """Two workers die (os._exit in post_migrate) on t02 and t03: with --keep-going the fleet goes on with
    new workers, so no database is left "not started"; more jobs than databases is no error."""
    paths = make_tenants(site, 5)
    change = roll_out(site)
    doc = json.loads(tm(site, "run", "--all-databases", "--keep-going", "--jobs", "2", "--format", "json",
                        check=False, FLEETSITE_STRICT="1", FLEETSITE_EXIT_POST_MIGRATE="t02,t03").stdout)
    statuses = {d["name"]: d["status"] for d in doc["databases"]}
    assert doc["exit_code"] == 5 and statuses == {
        "default": "migrated", "tenant:tenants/t01.sqlite3": "migrated", "tenant:tenants/t02.sqlite3": "failed",
        "tenant:tenants/t03.sqlite3": "failed", "tenant:tenants/t04.sqlite3": "migrated",
        "tenant:tenants/t05.sqlite3": "migrated"}, statuses
    assert all("the worker migrating it died (exit 17)" in d["line"] for d in doc["databases"] if d["status"] == "failed")
    assert all(change in look(p)[0] for p in paths)  # they died after their migrations, in post_migrate
    rerun = tm(site, "run", "--all-databases", "--jobs", "9", FLEETSITE_STRICT="1")
    assert summary(rerun.stdout) == "6 databases: 6 already current", rerun.stdout
