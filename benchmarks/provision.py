"""A new tenant database (issue 26): `provision` from a kept template, a first `run` on a new file, and
Django's `migrate --database` on a new file, in one process of the example project (Django set up once).

    python benchmarks/provision.py [--repeat 7]

Each side creates a new file `--repeat` times (the sides alternating); the median wall time is reported.
`provision` is timed after its template is built (the first provision, reported on its own). Not part of
the test suite; work files go to a temporary directory removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measure(repeat: int = 7) -> dict[str, float]:
    """Median seconds per new database, per side (and the first provision, which builds the template)."""
    work = Path(tempfile.mkdtemp(prefix="tablemigrate-provision-"))
    os.environ.update(EXAMPLE_DB=str(work / "main.sqlite3"), DJANGO_SETTINGS_MODULE="example_project.settings")
    sys.path[:0] = [str(ROOT)]
    import django

    django.setup()
    from django.core.management import call_command

    from tablemigrate.fleet.members import Member, pointed_at
    from tablemigrate.fleet.provision import provision

    def first(command: list[str], path: Path) -> None:
        with pointed_at(Member(f"default:{path}", "default", str(path))):
            call_command(*command, verbosity=0)

    sides = {
        "provision": lambda path: provision(path),
        "run": lambda path: first(["tablemigrate", "run", "--noinput"], path),  # its backup of the new file too
        "run --no-backup": lambda path: first(["tablemigrate", "run", "--noinput", "--no-backup"], path),
        "migrate": lambda path: first(["migrate", "--noinput", "--database", "default"], path),
    }
    try:
        began = time.perf_counter()
        provision(work / "first.sqlite3")
        times: dict[str, list[float]] = {"provision (template built)": [time.perf_counter() - began]}
        for i in range(repeat):
            for name, side in sides.items():
                path = work / f"{name}-{i}.sqlite3"
                began = time.perf_counter()
                side(path)
                times.setdefault(name, []).append(time.perf_counter() - began)
        return {name: statistics.median(found) for name, found in times.items()}
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    for name, seconds in measure(parser.parse_args().repeat).items():
        print(f"{name:<28} {seconds * 1000:8.1f} ms")
