"""The documentation site (mkdocs.yml, docs/): it builds strictly, a broken link or a page left out of the
navigation fails it, the recorded sessions still match what the commands print, and every reference page
lists what the package has (settings, system checks, signals, exit codes, error lines, options)."""

from __future__ import annotations

import argparse
import ast
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import django.dispatch
import pytest

from tablemigrate import errors, signals

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PACKAGE = ROOT / "tablemigrate"


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.subprocess
def test_the_site_builds_strictly(tmp_path):
    built = mkdocs_build(ROOT / "mkdocs.yml", tmp_path / "site")
    assert built.returncode == 0, built.stdout + built.stderr
    commands = (tmp_path / "site" / "reference" / "commands" / "index.html").read_text()
    for option in ("--allow-destructive", "--rename", "--from-other-database", "--no-sql"):
        assert option in commands
    assert "rows copied" in (tmp_path / "site" / "how-to" / "big-tables" / "index.html").read_text()


@pytest.mark.subprocess
def test_a_broken_link_or_a_page_missing_from_the_nav_fails_the_build(tmp_path):
    docs = tmp_path / "docs"
    shutil.copytree(DOCS, docs)
    with open(docs / "index.md", "a") as f:
        f.write("\n[gone](no-such-page.md) [no anchor](how-to/ci.md#no-such-heading)\n")
    (docs / "orphan.md").write_text("# A page in no nav\n")
    config = (ROOT / "mkdocs.yml").read_text()
    config = config.replace("docs_dir: docs", f"docs_dir: {docs}").replace(
        "  - scripts/docs_hooks.py", f"  - {ROOT / 'scripts' / 'docs_hooks.py'}")
    (tmp_path / "mkdocs.yml").write_text(config)
    built = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    out = built.stdout + built.stderr
    assert built.returncode != 0
    assert "orphan.md" in out and "not included in the \"nav\"" in out
    assert "no-such-page.md" in out and "#no-such-heading" in out


@pytest.mark.subprocess
def test_the_recorded_sessions_match_what_the_commands_print():
    proc = subprocess.run([sys.executable, "scripts/record_sessions.py", "--check"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _strings(path: Path) -> list[str]:
    """The string literals of a module; an f-string's replacement fields become '…'."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found.append(node.value)
        elif isinstance(node, ast.JoinedStr):
            found.append("".join(v.value if isinstance(v, ast.Constant) else "…" for v in node.values))
    return found


def package_strings() -> list[str]:
    return [s for path in sorted(PACKAGE.rglob("*.py")) for s in _strings(path)]


def test_every_setting_the_package_reads_has_a_row_on_the_settings_page():
    page = (DOCS / "reference" / "settings.md").read_text()
    read = {m for s in package_strings() for m in re.findall(r"\bTABLEMIGRATE_[A-Z_]+[A-Z]\b", s)}
    assert "TABLEMIGRATE_BUSY_TIMEOUT" in read
    missing = sorted(name for name in read if f"| `{name}` |" not in page)
    assert not missing, f"settings without a row in docs/reference/settings.md: {missing}"


def test_every_system_check_has_a_row_on_the_checks_page():
    page = (DOCS / "reference" / "checks.md").read_text()
    ids = set(re.findall(r"tablemigrate\.[EW]\d{3}", (PACKAGE / "checks.py").read_text()))
    assert "tablemigrate.W001" in ids
    assert sorted(i for i in ids if f"| `{i}` |" not in page) == []


def test_every_signal_has_a_row_on_the_signals_page():
    page = (DOCS / "reference" / "signals.md").read_text()
    names = [n for n, v in vars(signals).items() if isinstance(v, django.dispatch.Signal)]
    assert "post_run" in names
    assert sorted(n for n in names if f"| `{n}` |" not in page) == []


def test_every_exit_code_has_a_row_on_the_exit_codes_page():
    from tablemigrate.cli.process import EXIT_SIGPIPE

    page = (DOCS / "reference" / "exit-codes.md").read_text()
    rows = {int(c) for row in re.findall(r"(?m)^\| ([\d /]+) \|", page) for c in row.split("/")}
    codes = {cls.exit_code for cls in vars(errors).values()
             if isinstance(cls, type) and issubclass(cls, errors.TablemigrateError)}
    codes |= {0, 2, EXIT_SIGPIPE, 130, 143}  # success, argparse's usage error, the signals
    assert sorted(codes - rows) == []


def test_every_troubleshooting_heading_is_a_line_the_package_writes():
    """Each `### `line`` heading, split at its '…', is found in one string of the package, in order."""
    headings = re.findall(r"(?m)^### `(.+)`$", (DOCS / "troubleshooting.md").read_text())
    assert len(headings) > 15
    strings = package_strings()
    # Strings the parser joined from several literals read as one; a heading may also span two literals
    # of one call (a message built with +): compare against neighbours joined too.
    joined = strings + [a + b for a, b in zip(strings, strings[1:])]

    def found(heading: str) -> bool:
        pieces = [p.strip() for p in heading.split("…") if p.strip()]
        pattern = ".*?".join(re.escape(p) for p in pieces)
        return any(re.search(pattern, s.replace("`", "")) for s in joined)

    missing = [h for h in headings if not found(h.replace("`", ""))]
    assert not missing, f"troubleshooting headings the package no longer writes: {missing}"


def test_the_command_reference_lists_every_option_of_the_parser():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "scripts" / "docs_hooks.py")
    assert spec is not None and spec.loader is not None
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    parser = hooks.tablemigrate_parser()
    page = hooks.render(parser)
    sub = next(a for a in parser._actions if a.dest == "action")
    for name, command in sub.choices.items():
        assert f"## {name}\n" in page
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            for option in action.option_strings:
                assert f"`{option}" in page, (name, option)
