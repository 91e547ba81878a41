"""benchmarks/fleet.py (issue 26) runs end to end on a tiny fleet, so the benchmark cannot rot: every
contender's databases are checked migrated by the benchmark itself, and its report has every row."""

from __future__ import annotations

import os
import subprocess
import sys

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
