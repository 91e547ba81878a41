"""benchmarks/fleet.py (issue 26) runs end to end on a tiny fleet, so the benchmark cannot rot: every
contender's databases are checked migrated by the benchmark itself, and its report has every row."""

from __future__ import annotations

import importlib.util
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import ROOT


@pytest.mark.subprocess
@pytest.mark.slow
def test_the_fleet_benchmark_migrates_every_database_and_reports_it(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fleet.py"), "--databases", "3",
                           "--loop-sample", "2", "--sizes", "1"],
                          env=dict(os.environ, TMPDIR=str(tmp_path)), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for contender, count in (("loop", 2), ("django loop", 2), ("fleet of 1", 1), ("fleet of 3", 3)):
        assert f"checked {contender}: {count} of {count} databases migrated" in out, out
    assert "| loop | 2 of 3, scaled |" in out, out
    assert "| django loop | 2 of 3, scaled |" in out, out
    assert "| fleet | 3 | " in out, out
    assert not list(tmp_path.glob("tablemigrate-fleet-*")), "the work directory is left behind"


def _bench(monkeypatch):
    """benchmarks/fleet.py as a module; the path entries it adds and the benchmarks' own modules (fleet,
    run, projectgen: top-level names) are gone after the test."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    benchmarks = ROOT / "benchmarks"
    spec = importlib.util.spec_from_file_location("bench_fleet", ROOT / "benchmarks" / "fleet.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        for name in set(sys.modules) - before:
            if Path(getattr(sys.modules[name], "__file__", None) or "/").parent == benchmarks:
                del sys.modules[name]
    return module


def _tenant(path, postcode_type: str, history_rows: int, rows: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f'CREATE TABLE "app0_order" ("id" integer PRIMARY KEY, "number" varchar(20), '
                 f'"postcode" {postcode_type})')
    conn.executemany("INSERT INTO app0_order (number, postcode) VALUES (?, ?)",
                     ((f"ORD-{i:08d}", str(10000 + i) if postcode_type.startswith("varchar") else 10000 + i)
                      for i in range(rows)))
    conn.execute("CREATE TABLE tablemigrate_history (name text)")
    conn.executemany("INSERT INTO tablemigrate_history VALUES (?)", ((str(i),) for i in range(history_rows)))
    conn.commit()
    conn.close()


def test_the_benchmark_refuses_a_database_the_change_did_not_reach(tmp_path, capsys, monkeypatch):
    """A run that did nothing (or lost a row) must not become a fast number."""
    fleet = _bench(monkeypatch)
    done, untouched, short = tmp_path / "done.sqlite3", tmp_path / "untouched.sqlite3", tmp_path / "short.sqlite3"
    _tenant(done, "varchar(10)", 2, fleet.ROWS)
    _tenant(untouched, "integer", 1, fleet.ROWS)
    _tenant(short, "varchar(10)", 2, fleet.ROWS - 1)
    fleet.check([done], "tablemigrate", "loop")
    assert "checked loop: 1 of 1 databases migrated" in capsys.readouterr().out
    with pytest.raises(RuntimeError, match="loop: 2 of 3 databases not migrated"):
        fleet.check([done, untouched, short], "tablemigrate", "loop")
