"""One command over a fleet of databases, in this process or in worker processes.

In a stable order, with a canary, a failure limit and a clean stop.

Each database runs exactly what `manage.py tablemigrate ACTION --database ALIAS` runs (`call_command`,
with the alias pointed at it: tablemigrate.fleet.members), so each keeps its own lock, backup, restore,
refusals and exit code; this module only decides which database goes next and sums up. Workers are
started once and take one database at a time, so Django starts `jobs` times, not once per database, and
memory does not grow with the fleet.

A stop (SIGINT, SIGTERM, SIGHUP) reaches the databases under way (a worker's command rolls back and
restores as a single run does); no database is started after it. A worker that dies (SIGKILL) leaves its
database as SQLite's journal leaves it after a kill: each migration whole or not at all; the next run
finishes it.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections

from tablemigrate.backups.backup import release_held
from tablemigrate.errors import DataCheckFailed, NotConfirmed, TablemigrateError, signal_name

from .members import Member, pointed_at

#: Statuses of a database that ended as asked; every other status makes the fleet's exit code non-zero.
DONE = ("migrated", "current", "pending", "reverted", "rehearsed", "ok")
#: All statuses, in the order the summary counts them.
STATUSES = (*DONE, "refused", "failed", "locked", "replica", "interrupted", "not started")


@dataclass
class Result:
    """How one database ended: its status, the exit code its single command had, that command's last line
    (the reason, for a database that did not end as asked), its output and, under `--format json`, its
    document."""

    member: Member
    status: str
    exit_code: int
    line: str = ""
    output: str = ""
    document: dict[str, Any] | None = None
    seconds: float = 0.0
    signal: str | None = None  # the signal that interrupted it

    @property
    def done(self) -> bool:
        return self.status in DONE


def _status(action: str, args: Sequence[str], code: int, cause: BaseException | None, doc: dict | None,
            output: str = "") -> str:
    """A database's status from its command's exit code and, for a refusal that exits 1, the error itself; a
    `revert` that reverted nothing (its `--to` is the last applied) is "current": its output has no "Reverted"
    line (the fleet runs it at -v 1 at least)."""
    if code == 0:
        if action == "revert":
            return "reverted" if any(line.startswith("Reverted ") for line in output.splitlines()) else "current"
        if action == "run" and "--dry-run" in args:
            return "rehearsed"
        if action == "run":
            return "migrated" if doc is None or doc.get("applied") else "current"
        if action == "show":
            return "pending" if doc and doc.get("pending") else "current"
        return {"revert": "reverted"}.get(action, "ok")
    if isinstance(cause, (NotConfirmed, DataCheckFailed)):
        return "refused"
    return {2: "refused", 3: "locked", 4: "pending", 6: "replica"}.get(code, "failed")


def run_member(member: Member, action: str, args: Sequence[str]) -> Result:
    """Run `tablemigrate ACTION ARGS --database ALIAS` on one database, in this process."""
    import json

    out, err = io.StringIO(), io.StringIO()
    started = time.monotonic()
    code, cause, line, stopped = 0, None, "", None
    try:
        with pointed_at(member) as alias:
            call_command("tablemigrate", action, *args, "--database", alias, stdout=out, stderr=err, traceback=True)
    except CommandError as exc:
        code, cause, line = exc.returncode, exc.__cause__, str(exc)
    except TablemigrateError as exc:  # raised before the command's own handling (settings, say)
        code, cause, line = exc.exit_code, exc, str(exc)
    except KeyboardInterrupt as exc:  # the command rolled back and restored; its line says how things are
        stopped = _signal_behind(exc)
        code, line = 128 + signal.Signals[stopped], str(exc) or f"interrupted by {stopped}"
    except Exception as exc:  # a bug or an application's error outside the command's handling
        code, cause, line = 1, exc, f"{type(exc).__name__}: {exc}"
    connections[member.alias].close()  # an alias's own database too: no connection left to any file here
    release_held()  # so the next thousand databases need no descriptor of it
    seconds = time.monotonic() - started
    doc = None
    if code in (0, 4) and "--format" in args:
        try:
            doc = json.loads(out.getvalue())
        except ValueError:
            doc = None
    status = "interrupted" if stopped else _status(action, args, code, cause, doc, out.getvalue())
    output = out.getvalue() if doc is None else ""
    return Result(member, status, code, line.splitlines()[0] if line else "", output + err.getvalue(), doc,
                  seconds, stopped)


def _signal_behind(exc: BaseException) -> str:
    """The signal that stopped a command: the Stopped somewhere in the interrupt's chain, else SIGINT."""
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, KeyboardInterrupt) and signal_name(current) != "SIGINT":
            return signal_name(current)
        current = current.__cause__ or current.__context__
    return "SIGINT"


def _worker(conn: Connection, action: str, args: Sequence[str]) -> None:
    """A worker process: set up Django once (when spawned), then one database per message until told to stop."""
    import django
    from django.apps import apps

    signal.signal(signal.SIGINT, signal.default_int_handler)  # a fork keeps the parent's handlers: not ours
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    try:
        if not apps.ready:
            django.setup()
        while True:
            task = conn.recv()
            if task is None:
                return
            index, member = task
            result = run_member(member, action, args)
            conn.send((index, result))
            if result.status == "interrupted":
                return
    except (KeyboardInterrupt, EOFError, BrokenPipeError):  # stopped between databases, or the parent went away
        return


@dataclass
class _Busy:
    process: Any
    conn: Connection
    task: tuple[int, Member] | None = None
    died: bool = False  # it died with a database (its Result says so): replaced, the fleet goes on


@dataclass
class Fleet:
    """The policy: `jobs` databases at a time (1: in this process), the first `canary` alone first (any that
    does not end as asked stops the fleet), and no new database after `max_failures` that did not (None:
    keep going)."""

    action: str
    args: Sequence[str]
    jobs: int = 1
    canary: int = 0
    max_failures: int | None = 1
    results: dict[int, Result] = field(default_factory=dict)
    started: set[int] = field(default_factory=set)
    stopped_by: str | None = None

    def failures(self) -> int:
        return sum(not r.done for r in self.results.values())

    def _may_start(self) -> bool:
        return self.stopped_by is None and (self.max_failures is None or self.failures() < self.max_failures)

    def run(self, members: Sequence[Member], report: Callable[[Result], None]) -> list[Result]:
        """Every member's result in the members' order; those never started are "not started"."""
        cut = min(self.canary, len(members))
        phases = [range(cut), range(cut, len(members))] if self.canary else [range(len(members))]
        try:
            for number, phase in enumerate(phases):
                if not self._may_start():
                    break
                todo = [(i, members[i]) for i in phase]
                for result in (self._in_process(todo) if self.jobs <= 1 else self._in_workers(todo)):
                    report(result)
                if self.canary and number == 0 and self.failures():
                    break
        except KeyboardInterrupt as exc:  # between two databases (in this process): none is under way
            self.stopped_by = self.stopped_by or signal_name(exc)
        return [self.results.get(i) or (
            Result(m, "interrupted", 128 + signal.Signals[self.stopped_by or "SIGINT"],
                   "stopped while its command ran: `tablemigrate show` on it says what is applied")
            if i in self.started else Result(m, "not started", 0)) for i, m in enumerate(members)]

    def _record(self, index: int, result: Result) -> Result:
        self.results[index] = result
        if result.status == "interrupted" and self.stopped_by is None:
            self.stopped_by = result.signal
        return result

    def _in_process(self, todo: list[tuple[int, Member]]) -> Iterator[Result]:
        for index, member in todo:
            if not self._may_start():
                return
            self.started.add(index)
            yield self._record(index, run_member(member, self.action, self.args))

    def _in_workers(self, todo: list[tuple[int, Member]]) -> Iterator[Result]:
        """The databases in `jobs` worker processes. Here a stop signal only sets a flag and passes the signal
        on to the workers under way (whose commands stop cleanly); the loop then collects what they say."""
        connections.close_all()  # a forked worker must not share the parent's SQLite connections
        context: Any = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
        workers: list[_Busy] = []
        queue = list(reversed(todo))

        def start() -> _Busy:
            parent, child = context.Pipe()
            process = context.Process(target=_worker, args=(child, self.action, list(self.args)), daemon=True)
            process.start()
            child.close()
            return _Busy(process, parent)

        with self._signals_passed_on(workers):
            try:
                workers += [start() for _ in range(min(self.jobs, len(todo)))]
                while True:
                    for number, w in enumerate(workers):
                        if w.died and queue and self._may_start():
                            w.conn.close()
                            w = workers[number] = start()
                        if w.task is None and w.process.is_alive() and queue and self._may_start():
                            w.task = queue.pop()
                            self.started.add(w.task[0])
                            w.conn.send(w.task)
                    busy = [w for w in workers if w.task is not None]
                    if not busy:
                        return
                    ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy])
                    for w in busy:
                        if w.conn in ready or w.process.sentinel in ready:
                            yield self._collect(w)
            finally:
                self._close(workers)

    @contextlib.contextmanager
    def _signals_passed_on(self, workers: list[_Busy]) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum: int, frame: object) -> None:  # noqa: ARG001 (the signal module's handler signature)
            self._stop(workers, signal.Signals(signum).name)

        stops = [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
        previous = {sig: signal.signal(sig, handler) for sig in stops}
        try:
            yield
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)

    def _collect(self, w: _Busy) -> Result:
        assert w.task is not None
        index, member = w.task
        w.task = None
        try:
            if w.conn.poll():
                got, result = w.conn.recv()
                return self._record(got, result)
        except (EOFError, OSError):
            pass
        w.process.join(5)
        w.died = True
        code = w.process.exitcode
        if self.stopped_by is not None:  # it died of the stop passed on to it, before its command took it over
            return self._record(index, Result(member, "interrupted", 128 + signal.Signals[self.stopped_by],
                                              "stopped as its command started: `tablemigrate show` on it says "
                                              "what is applied", signal=self.stopped_by))
        how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exit {code}"
        return self._record(index, Result(member, "failed", 1, f"the worker migrating it died ({how}): each migration "
                                          "is whole or not applied (SQLite's journal); run again to finish"))

    def _stop(self, workers: list[_Busy], name: str) -> None:
        if self.stopped_by is None:
            self.stopped_by = name
            for w in workers:
                if w.task is not None and w.process.is_alive():
                    os.kill(w.process.pid, signal.Signals[name])

    @staticmethod
    def _close(workers: list[_Busy]) -> None:
        for w in workers:
            try:
                w.conn.send(None)
            except (OSError, ValueError):
                pass
        for w in workers:
            w.process.join(10)
            if w.process.is_alive():
                w.process.terminate()
                w.process.join()
