"""The progress display: pages of a backup, rows of a rebuild; only when enabled (a terminal)."""

import io
import sqlite3

from django.core.management.base import OutputWrapper

from tablemigrate import operations, progress
from tablemigrate.backups.backup import take_backup
from tablemigrate.cli.output import reporting
from tablemigrate.management.commands.tablemigrate import Command
from tablemigrate.operations import RebuildTable


class Terminal(io.StringIO):
    def isatty(self):
        return True


def filled(path=":memory:", rows=95):
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE t (id integer PRIMARY KEY, v text)")
    conn.execute("CREATE INDEX t_v ON t (v)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t (v) VALUES (?)", [(f"v{i}",) for i in range(rows)])
    conn.execute("COMMIT")
    conn.execute("DELETE FROM t WHERE id % 7 = 0")  # gaps in the rowids
    return conn


def rebuilt(conn):
    conn.execute("BEGIN")
    RebuildTable("t", "CREATE TABLE t (id integer PRIMARY KEY, v text NOT NULL, w int DEFAULT 1)",
                 {"id": '"id"', "v": '"v"'}).apply(conn)
    conn.execute("COMMIT")
    return list(conn.iterdump())


def test_rebuild_shows_rows_copied_and_gives_the_same_table(monkeypatch):
    monkeypatch.setattr(operations, "PROGRESS_CHUNK", 10)
    plain = rebuilt(filled())
    screen = Terminal()
    with progress.reporting(progress.Progress(screen, enabled=True, interval=0)):
        chunked = rebuilt(filled())
    assert chunked == plain
    assert "rebuilding t: 82/82 rows copied" in screen.getvalue()
    assert screen.getvalue().endswith("\r")  # the line is cleared when done


def test_backup_shows_pages_only_when_enabled(tmp_path):
    conn = filled(str(tmp_path / "db.sqlite3"), rows=20000)
    quiet = io.StringIO()
    with progress.reporting(progress.Progress(quiet, enabled=False)):
        take_backup(conn, tmp_path / "b1.sqlite3")
    assert quiet.getvalue() == ""
    screen = Terminal()
    with progress.reporting(progress.Progress(screen, enabled=True, interval=0)):
        take_backup(conn, tmp_path / "b2.sqlite3")
    assert "backing up to b2.sqlite3: " in screen.getvalue() and " pages" in screen.getvalue()


def test_the_command_shows_progress_only_on_a_terminal_with_prompts_allowed():
    def enabled(stream, interactive):
        command = Command(stderr=stream)
        with reporting(command, {"verbosity": 1, "interactive": interactive}):
            return progress.current().enabled

    assert enabled(Terminal(), True)
    assert not enabled(Terminal(), False)  # --noinput
    assert not enabled(io.StringIO(), True)  # not a terminal
    assert not progress.current().enabled  # nothing left installed
    assert isinstance(Command(stderr=io.StringIO()).stderr, OutputWrapper)


def test_chunked_copy_with_sparse_rowids_is_quick_and_complete(monkeypatch):
    monkeypatch.setattr(operations, "PROGRESS_CHUNK", 2)
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t (id integer PRIMARY KEY, v text)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(-(2 ** 63), "min"), (-5, "a"), (10 ** 12, "b"),
                                                    (2 * 10 ** 12, "c"), (2 ** 63 - 1, "max")])
    with progress.reporting(progress.Progress(Terminal(), enabled=True, interval=0)):
        conn.execute("BEGIN")
        RebuildTable("t", "CREATE TABLE t (id integer PRIMARY KEY, v text NOT NULL)",
                     {"id": '"id"', "v": '"v"'}).apply(conn)
        conn.execute("COMMIT")
    assert [r[1] for r in conn.execute("SELECT * FROM t ORDER BY id")] == ["min", "a", "b", "c", "max"]
