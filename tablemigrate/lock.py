"""The runner lock: an OS advisory lock on `<database>.tablemigrate.lock` for the whole run.

The kernel releases it when the holder dies, so a container killed mid-migration leaves no stale lock.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import LockTimeout, TablemigrateError


@contextmanager
def run_lock(db_path: Path, timeout: float) -> Iterator[None]:
    path = db_path.with_name(db_path.name + ".tablemigrate.lock")
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    except OSError as exc:
        raise TablemigrateError(f"cannot create lock file {path}: {exc.strerror}") from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"another tablemigrate run holds the lock {path} "
                                      f"(waited {timeout:g}s)") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)
