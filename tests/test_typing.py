"""mypy on the package, in the suite because it is cheap (about a second; issue 13)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.subprocess  # every test here starts the project's manage.py or a process

PACKAGE = Path(__file__).resolve().parent.parent / "tablemigrate"


def test_the_package_type_checks(tmp_path):
    pytest.importorskip("mypy")
    proc = subprocess.run([sys.executable, "-m", "mypy", str(PACKAGE), "--ignore-missing-imports",
                           "--cache-dir", str(tmp_path / "mypy")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
