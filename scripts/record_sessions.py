"""Record the terminal sessions the documentation shows, from the example project, with real output.

    .venv/bin/python scripts/record_sessions.py           # rewrite docs/sessions/*.txt
    .venv/bin/python scripts/record_sessions.py --check   # exit 1 (with a diff) if they no longer match

Each session runs the repository's example project (copied to a temporary directory) through its own
`manage.py`, and writes what a user sees as a text block: the command lines and their stdout and stderr.
What changes from one run to the next (times, module names' timestamps, the temporary path, backup names,
sizes) is replaced by fixed placeholders (`normalize`), so that `--check` compares what the commands say.
tests/test_docs.py runs `--check` in the suite: a recorded session cannot go stale.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SESSIONS = ROOT / "docs" / "sessions"
SITE = "/home/me/mysite"  # what the temporary directory is shown as


def normalize(text: str, site: Path) -> str:
    """The output with what varies between runs replaced by placeholders."""
    text = text.replace(str(site.resolve()), SITE).replace(str(site), SITE)
    text = re.sub(r"\b\d{8}_\d{6}(_\d{2})", r"20260101_120000\1", text)           # module names
    text = re.sub(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?", "2026-01-01 12:00:00", text)
    text = re.sub(r"-[0-9a-f]{12}-\d{8}T\d{6}(_\d+)?Z", "-0123456789ab-20260101T120000Z", text)  # backups
    text = re.sub(r"\b(tablemigrate_online_[a-z]+_)[0-9a-f]{8}\b", r"\g<1>0123abcd", text)  # private tables
    text = re.sub(r"[\d,]+/([\d,]+) (rows copied|pages)", r"N/\1 \2", text)     # progress counts
    text = re.sub(r"\b\d+(\.\d+)? ?(ms|s)\b(?!\w)", lambda m: "N " + m.group(2), text)  # durations
    text = re.sub(r"\b\d+(\.\d+)? ?(KB|MB|kB|KiB|MiB|bytes)\b", lambda m: "N " + m.group(2), text)
    return text


class Session:
    """One recorded session: commands run in the example project copy, their output kept as shown."""

    def __init__(self, site: Path, env: dict[str, str]):
        self.site, self.env, self.lines = site, env, []  # type: ignore[var-annotated]

    def run(self, *args: str, show: str | None = None, expect: int = 0) -> str:
        proc = subprocess.run([sys.executable, "manage.py", *args], cwd=self.site, env=self.env,
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != expect:
            raise SystemExit(f"{args}: exit {proc.returncode}, expected {expect}\n{proc.stdout}{proc.stderr}")
        self.lines.append("$ " + (show or "python manage.py " + " ".join(args)))
        self.lines += [line for line in (proc.stdout + proc.stderr).splitlines()]
        if expect:
            self.lines.append(f"$ echo $?\n{expect}")
        return proc.stdout

    def run_on_terminal(self, *args: str) -> None:
        """A command whose stdin and stderr are a terminal (a pseudo-terminal), so that it draws its progress
        line. Each redraw of that line (a carriage return) is shown on a line of its own, the way it last
        read: the counts differ from run to run."""
        main, other = os.openpty()
        proc = subprocess.Popen([sys.executable, "manage.py", *args], cwd=self.site, env=self.env, stdin=other,
                                stdout=subprocess.PIPE, stderr=other, text=True)
        os.close(other)
        chunks = []
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the other end closed (Linux: EIO)
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(main)
        assert proc.stdout is not None
        stdout = proc.stdout.read()
        if proc.wait(timeout=300):
            raise SystemExit(f"{args}: exit {proc.returncode}\n{stdout}{b''.join(chunks).decode()}")
        self.lines.append("$ python manage.py " + " ".join(args))
        frames = [f.strip() for f in b"".join(chunks).decode().replace("\r\n", "\n").split("\r")]
        shown: list[str] = []
        for frame in (normalize(f, self.site) for f in frames if f.strip()):
            if not shown or shown[-1] != frame:
                shown.append(frame)
        self.lines += shown + stdout.splitlines()

    def quiet(self, *args: str) -> None:
        """A command the session needs but does not show."""
        proc = subprocess.run([sys.executable, "manage.py", *args], cwd=self.site, env=self.env,
                              capture_output=True, text=True, timeout=300)
        if proc.returncode:
            raise SystemExit(f"{args}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}")

    def sql(self, script: str) -> None:
        conn = sqlite3.connect(self.site / "example_project" / "db.sqlite3")
        try:
            conn.executescript(script)
        finally:
            conn.close()

    def edit(self, relative: str, old: str, new: str) -> None:
        path = self.site / "example_project" / relative
        text = path.read_text()
        if old not in text:
            raise SystemExit(f"{relative} no longer contains {old!r}: update scripts/record_sessions.py")
        path.write_text(text.replace(old, new))

    def text(self) -> str:
        return normalize("\n".join(self.lines), self.site) + "\n"


def example_copy(into: Path) -> tuple[Path, dict[str, str]]:
    shutil.copy(ROOT / "manage.py", into)
    shutil.copytree(ROOT / "example_project", into / "example_project",
                    ignore=shutil.ignore_patterns("*.sqlite3*", "backups", "__pycache__"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXAMPLE_", "DJANGO_SETTINGS"))}
    env.update(PYTHONPATH=os.pathsep.join([str(into), str(ROOT)]), PYTHONDONTWRITEBYTECODE="1",
               COLUMNS="100")
    return into, env


POSTS = """
    INSERT INTO users_user VALUES (1, 'ann', 'ann@example.com', 'Ann', 1, '2026-01-01');
    INSERT INTO users_user VALUES (2, 'bob', 'bob@example.com', 'Bob', 1, '2026-01-01');
    INSERT INTO posts_post VALUES (1, 1, 'Hello', 'First post', 1, '2026-01-01');
    INSERT INTO posts_post VALUES (2, 2, 'Hello', 'Me too', 0, '2026-01-02');
"""


def first_run(s: Session) -> None:
    """The demo: the example project's committed history, shown and applied to a new database."""
    s.run("tablemigrate", "generate", "--noinput")
    s.run("tablemigrate", "show", "--no-sql")
    s.run("tablemigrate", "run", "--noinput")


SUMMARY = ("    body = models.TextField()\n",
           "    body = models.TextField()\n    summary = models.CharField(max_length=200, default='n/a')\n"
           "    score = models.IntegerField(default=0)\n")


def show_rebuild(s: Session) -> None:
    """A change SQLite's ALTER TABLE cannot make: generate writes a rebuild, show prints its SQL."""
    s.quiet("tablemigrate", "run", "--noinput")
    s.sql(POSTS)
    s.edit("posts/models.py", *SUMMARY)
    s.run("tablemigrate", "generate", "AddSummary", "--noinput")
    s.run("tablemigrate", "show")
    s.run("tablemigrate", "run", "--noinput")


def refused_run(s: Session) -> None:
    """Rows that violate a new constraint: run refuses before it changes anything (exit 1)."""
    s.quiet("tablemigrate", "run", "--noinput")
    s.sql(POSTS)
    s.edit("posts/models.py", "    title = models.CharField(max_length=200)\n",
           "    title = models.CharField(max_length=200, unique=True)\n")
    s.run("tablemigrate", "generate", "UniqueTitle", "--noinput")
    s.run("tablemigrate", "run", "--noinput", expect=1)


def online_rebuild(s: Session) -> None:
    """A table of 50,000 rows or more (TABLEMIGRATE_ONLINE_REBUILD_ROWS) in WAL mode is rebuilt while the
    application keeps writing; on a terminal the progress line counts the rows copied."""
    s.quiet("tablemigrate", "run", "--noinput")
    # WAL is a property of the file, kept by every later connection (Django's `init_command` option, the
    # other way, exists only from Django 5.1).
    s.sql("PRAGMA journal_mode = WAL;\n" + POSTS.splitlines()[1] + """
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60000)
        INSERT INTO posts_post SELECT i, 1, 'Post ' || i, 'text', 1, '2026-01-01' FROM n;""")
    s.edit("posts/models.py", *SUMMARY)
    s.quiet("tablemigrate", "generate", "AddSummary", "--noinput")
    s.run("tablemigrate", "show", "--no-sql")
    s.run_on_terminal("tablemigrate", "run")


RECORDED: dict[str, Callable[[Session], None]] = {
    "first-run": first_run,
    "show-rebuild": show_rebuild,
    "refused-run": refused_run,
    "online-rebuild": online_rebuild,
}


def record(name: str) -> str:
    with tempfile.TemporaryDirectory(prefix="tablemigrate-session-") as tmp:
        site, env = example_copy(Path(tmp))
        session = Session(site, env)
        RECORDED[name](session)
        return session.text()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with docs/sessions/ instead of writing")
    parser.add_argument("names", nargs="*", choices=[[], *RECORDED], help="only these sessions")
    args = parser.parse_args()
    stale = 0
    for name in args.names or RECORDED:
        path = SESSIONS / f"{name}.txt"
        text = record(name)
        if not args.check:
            SESSIONS.mkdir(exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
            continue
        old = path.read_text() if path.exists() else ""
        if old != text:
            stale += 1
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), text.splitlines(True),
                                                       f"{path.relative_to(ROOT)} (recorded)", "now"))
    if stale:
        print(f"{stale} recorded session(s) differ from what the commands print now: "
              "run scripts/record_sessions.py and review the diff", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
