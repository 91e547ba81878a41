"""What tablemigrate writes and runs: owner-only files, no shell, no user text spliced into SQL unquoted."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tablemigrate"


def test_no_shell_or_subprocess_anywhere_in_the_package():
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                assert not any(n and n.split(".")[0] in ("subprocess", "pty") for n in names), path
            if isinstance(node, ast.Attribute) and node.attr in ("system", "popen", "execv", "execvp", "spawnv"):
                raise AssertionError(f"{path}:{node.lineno}: os.{node.attr}")
            if isinstance(node, ast.keyword) and node.arg == "shell":
                raise AssertionError(f"{path}:{node.lineno}: shell=")


def test_every_file_tablemigrate_creates_is_created_owner_only():
    """Backups, snapshots, partial copies, cache files and the lock are opened with mode 0600 (checked
    where they are created; the tests of each check the resulting mode)."""
    creators = []
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        for line_no, line in enumerate(text.splitlines(), 1):
            if "os.open(" in line and "O_CREAT" in line:
                creators.append((path.name, line_no, "0o600" in line))
    assert creators and all(ok for *_where, ok in creators), creators
