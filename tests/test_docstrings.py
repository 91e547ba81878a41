"""Every module, and the public API's classes and functions, open with a one-line summary (PEP 257).

The first line of a docstring is what `help()`, editors and `pydoc` show alone: a complete sentence that
ends with a period, at most 100 characters, then a blank line before the rest. Reads the source only.
ruff's pydocstyle rules (D205, D400) would check every docstring, private helpers and tests included
(about 540 today, mostly two-line summaries of helpers): this checks the modules and the public API.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tablemigrate"
# The modules a project's code uses by name (docs/modules.md, README): their public classes and functions,
# and those classes' public methods, are held to the same first line when they have a docstring.
PUBLIC_API = ["operations.py", "signals.py", "testing.py", "coexist.py", "conf.py", "errors.py"]
LONGEST = 100


def _summary_problem(doc: str | None) -> str | None:
    if doc is None:
        return "no docstring"
    lines = doc.strip().splitlines()
    first = lines[0].strip() if lines else ""
    if not first.endswith("."):
        return f"first line does not end with a period: {first!r}"
    if len(first) > LONGEST:
        return f"first line has {len(first)} characters (at most {LONGEST}): {first!r}"
    if len(lines) > 1 and lines[1].strip():
        return f"the summary runs onto a second line (a blank line must follow it): {first!r}"
    return None


def test_every_module_opens_with_a_one_line_summary():
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        problem = _summary_problem(ast.get_docstring(ast.parse(path.read_text()), clean=False))
        if problem:
            found.append(f"{path.relative_to(PACKAGE.parent)}: {problem}")
    assert not found, "\n".join(found)


def test_the_public_api_opens_each_docstring_with_a_one_line_summary():
    found = []
    for name in PUBLIC_API:
        tree = ast.parse((PACKAGE / name).read_text())
        for node in tree.body:
            if not isinstance(node, (ast.ClassDef, ast.FunctionDef)) or node.name.startswith("_"):
                continue
            members = [node] + [m for m in getattr(node, "body", []) if isinstance(node, ast.ClassDef)
                                and isinstance(m, ast.FunctionDef) and not m.name.startswith("_")]
            for member in members:
                doc = ast.get_docstring(member, clean=False)
                problem = doc is not None and _summary_problem(doc)
                if problem:
                    where = node.name if member is node else f"{node.name}.{member.name}"
                    found.append(f"tablemigrate/{name}:{member.lineno} {where}: {problem}")
    assert not found, "\n".join(found)
