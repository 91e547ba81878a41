"""A `run` in its own process, for the fault-injection tests: python runner_process.py DB DIR.
Prints START when Django is ready and the run begins, and MIGRATION <name> as each migration begins
(the tests place their faults from these)."""

import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django  # noqa: E402

django.setup()
logging.getLogger("tablemigrate").addHandler(logging.NullHandler())  # the one error line is printed below

from tablemigrate import signals  # noqa: E402
from tablemigrate.errors import TablemigrateError  # noqa: E402
from tablemigrate.history.status import Target  # noqa: E402
from tablemigrate.project.build import private_database, raw  # noqa: E402
from tablemigrate.run.runner import run  # noqa: E402

db, directory = Path(sys.argv[1]).resolve(), Path(sys.argv[2])
signals.pre_migration.connect(lambda name, **_kw: print(f"MIGRATION {name}", flush=True), weak=False)
with private_database(str(db)) as wrapper:
    conn = raw(wrapper)
    conn.execute("PRAGMA busy_timeout = 5000")
    print("START", flush=True)
    try:
        applied = run(Target("default", conn, db), directory, allow_destructive=True, keep=5)
    except TablemigrateError as exc:
        print(f"ERROR {exc}", file=sys.stderr, flush=True)
        sys.exit(exc.exit_code)
    print("DONE " + " ".join(m.name for m in applied), flush=True)
