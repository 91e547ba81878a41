"""Run `manage.py` the way it would run on Windows as far as Python's modules go (issue 23: nothing
worked there because `fcntl` was imported when the command loaded and the cache called `os.getuid`).

`python tests/windowslike.py DIR ARGS...` runs DIR/manage.py ARGS with:
- the POSIX-only modules made unavailable (`import fcntl` raises ModuleNotFoundError, as on Windows);
- the POSIX-only functions and constants gone (`os.getuid`, `os.O_CLOEXEC`, `signal.SIGPIPE`, ...);
- `sys.platform == "win32"`, with a stand-in `msvcrt.locking` (Windows' byte-range lock, here built on
  the real flock taken before it was hidden: the same "another holder: refused at once" behaviour).
It proves no code path of a command needs a POSIX-only name; it is not Windows (paths, file sharing).
"""

import fcntl as _real_fcntl  # for the stand-in msvcrt below, before the module is hidden
import importlib.abc
import os
import runpy
import signal
import sys
import types

import django

POSIX_ONLY_MODULES = {"fcntl", "pwd", "grp", "resource", "termios", "tty", "pty", "syslog", "posix_ipc"}
POSIX_ONLY_NAMES = {
    os: ("getuid", "geteuid", "getgid", "getegid", "getgroups", "fchown", "chown", "lchown", "getpgid",
         "setsid", "killpg", "fork", "O_CLOEXEC"),
    signal: ("SIGPIPE", "SIGKILL", "SIGHUP", "SIGALRM", "SIGUSR1", "SIGUSR2", "SIGCHLD", "SIGQUIT",
             "SIGXFSZ", "alarm", "setitimer", "pthread_kill"),
}


class _Hidden(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in POSIX_ONLY_MODULES:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def _msvcrt() -> types.ModuleType:
    module = types.ModuleType("msvcrt")
    module.LK_UNLCK, module.LK_LOCK, module.LK_NBLCK = 0, 1, 2

    def locking(fd: int, mode: int, nbytes: int) -> None:
        if mode == module.LK_UNLCK:
            _real_fcntl.flock(fd, _real_fcntl.LOCK_UN)
            return
        try:
            _real_fcntl.flock(fd, _real_fcntl.LOCK_EX | _real_fcntl.LOCK_NB)
        except BlockingIOError:
            raise PermissionError(13, "Permission denied") from None  # what Windows' _locking says

    module.locking = locking
    return module


def main() -> None:
    project, args = sys.argv[1], sys.argv[2:]
    os.chdir(project)
    sys.path.insert(0, project)
    # The standard library's and Django's own platform choices are made when they are imported: Django is
    # set up here, on the real platform (its `ready()` hooks import a few tablemigrate modules, which
    # hold no platform-dependent name); everything a command imports comes after the switch.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    django.setup()
    early = {m for m in sys.modules if m.startswith("tablemigrate.")} & {
        "tablemigrate.sqlite.lock", "tablemigrate.sqlite.cache", "tablemigrate.backups.backup", "tablemigrate.cli.process",
        "tablemigrate.management.commands.tablemigrate"}
    assert not early, f"imported before the switch: {early}"
    for name in POSIX_ONLY_MODULES:
        sys.modules.pop(name, None)
    sys.meta_path.insert(0, _Hidden())
    for module, names in POSIX_ONLY_NAMES.items():
        for name in names:
            if hasattr(module, name):
                delattr(module, name)
    sys.modules["msvcrt"] = _msvcrt()
    sys.platform = "win32"
    sys.argv = ["manage.py", *args]
    runpy.run_path("manage.py", run_name="__main__")


if __name__ == "__main__":
    main()
