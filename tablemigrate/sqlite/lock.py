"""The runner lock: an OS advisory lock on `<database>.tablemigrate.lock` for the whole run.

The operating system releases it when the holder dies, so a container killed mid-migration leaves no
stale lock. A database in a LiteFS mount has its lock in the backups directory instead, which must be
outside the mount (tablemigrate.sqlite.litefs: the mount holds only databases). POSIX: `flock` on
the whole file; Windows: `msvcrt.locking` on its first byte. Each module is imported only on its own
platform, when a lock is taken (decision 122: the same two primitives the `filelock` package wraps,
without its 30-50 ms of imports on every `run`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tablemigrate.errors import LockTimeout, TablemigrateError

from . import litefs


def _primitives() -> tuple[Callable[[int], None], Callable[[int], None]]:
    """(try_lock, unlock) for a file descriptor: try_lock raises BlockingIOError when another process
    (or another descriptor of this one) holds the lock."""
    if sys.platform == "win32":
        import msvcrt

        def try_lock_windows(fd: int) -> None:
            os.lseek(fd, 0, os.SEEK_SET)
            try:
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            except PermissionError as exc:  # Windows says "permission denied" for a byte locked elsewhere
                raise BlockingIOError(*exc.args) from None

        def unlock_windows(fd: int) -> None:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

        return try_lock_windows, unlock_windows
    import fcntl

    return (lambda fd: fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB),
            lambda fd: fcntl.flock(fd, fcntl.LOCK_UN))


@contextmanager
def run_lock(db_path: Path, timeout: float, backups_dir: Path | None = None) -> Iterator[None]:
    """`backups_dir`: the configured backups directory (None: the default), where the lock file goes when
    the database lies in a LiteFS mount (refused, ConfigurationError, when that is unset or in the mount)."""
    path = db_path.with_name(db_path.name + ".tablemigrate.lock")
    elsewhere = litefs.outside_mount(db_path, backups_dir)
    if elsewhere is not None:
        os.makedirs(elsewhere, 0o700, exist_ok=True)
        path = elsewhere / path.name
    try_lock, unlock = _primitives()
    try:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
    except OSError as exc:
        raise TablemigrateError(f"cannot create lock file {path}: {exc.strerror}") from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                try_lock(fd)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"another tablemigrate run holds the lock {path} "
                                      f"(waited {timeout:g}s)") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            unlock(fd)
    finally:
        os.close(fd)
