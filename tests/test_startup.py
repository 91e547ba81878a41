"""What a command loads: `run` with nothing pending imports none of `generate`'s machinery.

Every deploy runs `manage.py tablemigrate run`, and nearly always there is nothing to apply; the
`manage.py tablemigrate` command module is loaded by every subcommand. Neither may pull in the generate
pipeline, the diff or adoption (they cost about a third of the command's imports, `python -X importtime`):
those come with the subcommands that use them. tests/test_layers.py (LAZY) says which lazy imports
below cli/ keep it so.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import json, os, sys
import django
django.setup()
from django.conf import settings
from django.core.management import call_command
settings.TABLEMIGRATE_MIGRATIONS_DIR = sys.argv[1]
call_command("tablemigrate", "run", "--noinput")
print(json.dumps(sorted(m for m in sys.modules if m.startswith("tablemigrate"))))
"""

# Modules that `run` with nothing pending has no use for.
NOT_FOR_RUN = ("tablemigrate.generate", "tablemigrate.cli.interactive", "tablemigrate.sqlite.diff",
               "tablemigrate.sqlite.changes", "tablemigrate.run.adopt", "tablemigrate.project.historical")


@pytest.mark.subprocess
def test_run_with_nothing_pending_imports_nothing_of_generate(tmp_path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT),
           "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "No migrations to apply." in proc.stdout
    loaded = json.loads(proc.stdout.splitlines()[-1])
    assert "tablemigrate.run.runner" in loaded  # the probe did run `run`
    heavy = [m for m in loaded if m.startswith(NOT_FOR_RUN)]
    assert not heavy, f"`run` with nothing pending imported {heavy}"
