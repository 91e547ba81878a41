"""The package's structure, read from its imports (every import, those inside functions included).

The stages are folders, in the order a change travels through them (docs/architecture.md). A module
imports from its own stage and the stages before it, never from a later one; nothing imports in a
circle; no module takes another module's private (underscored) name or re-exports a name it does not
define; below cli/ a module imports the package's modules at its top, except where LAZY says why not.
It reads the source only: `pytest tests/test_layers.py` checks the structure in a second.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tablemigrate"

# Lowest first. A top-level module is a stage of its own; a folder is one stage with all its modules.
STAGES: list[set[str]] = [
    {"tablemigrate", "tablemigrate.errors", "tablemigrate.conf", "tablemigrate.signals", "tablemigrate.progress",
     "tablemigrate.coexist"},
    {"tablemigrate.sqlite"},
    {"tablemigrate.project"},
    {"tablemigrate.operations"},
    {"tablemigrate.history"},
    {"tablemigrate.backups"},
    {"tablemigrate.run"},
    {"tablemigrate.generate"},
    {"tablemigrate.fleet"},
    {"tablemigrate.cli"},
    {"tablemigrate.checks", "tablemigrate.testing", "tablemigrate.apps", "tablemigrate.models",
     "tablemigrate.management"},
]


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _stage(module: str) -> int:
    for rank, members in enumerate(STAGES):
        for member in members:
            if module == member or (member != "tablemigrate" and module.startswith(member + ".")):
                return rank
    raise AssertionError(f"{module} belongs to no stage: put it in a stage's folder (or add it to STAGES)")


def _imports(module: str) -> list[tuple[str, list[str], int, bool]]:
    """(imported module, names taken from it, line, kept with noqa F401) per import of the package."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    lines = path.read_text().splitlines()
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            if not base.startswith("tablemigrate"):
                continue
            kept = any("noqa: F401" in ln for ln in lines[node.lineno - 1:node.end_lineno])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                if sub in MODULES:
                    found.append((sub, [], node.lineno, False))
                else:
                    found.append((base, [alias.name], node.lineno, kept))
        elif isinstance(node, ast.Import):
            found += [(a.name, [], node.lineno, False) for a in node.names if a.name.startswith("tablemigrate.")]
    return [entry for entry in found if entry[0] != module]


GRAPH = {m: _imports(m) for m in MODULES}


def _function_import_lines(module: str) -> set[int]:
    """The lines of the imports inside a function (or a method) of `module`."""
    tree = ast.parse(MODULES[module].read_text())
    return {node.lineno for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
            for node in ast.walk(fn) if isinstance(node, (ast.Import, ast.ImportFrom))}


# Below cli/ the package's modules are imported at the top of a module, except these (importer,
# imported): each would otherwise add a module to what `manage.py tablemigrate run` with nothing pending
# or `manage.py check` imports (`python -X importtime`, the example project).
LAZY = {
    ("tablemigrate.operations", "tablemigrate.project.historical"):
        "every process that reads the history (run, check) loads operations; only a carried data step runs",
    ("tablemigrate.project.build", "tablemigrate.project.fingerprint"):
        "run with nothing pending loads build, not fingerprint",
    ("tablemigrate.run.preflight", "tablemigrate.run.adopt"):
        "adopt brings drift, the diff and the changes: only the refusal of a database to adopt needs it",
    ("tablemigrate.sqlite.shapes", "tablemigrate.sqlite.changes"):
        "run loads shapes (the rehearsal); the changes only word a shape refusal",
}


def _where(module: str, line: int) -> str:
    return f"{MODULES[module].relative_to(PACKAGE.parent)}:{line}"


def test_every_import_goes_to_the_same_or_an_earlier_stage():
    wrong = [f"{_where(m, line)} imports {target} (a later stage)"
             for m, imports in GRAPH.items() for target, _names, line, _kept in imports
             if _stage(target) > _stage(m)]
    assert not wrong, "\n".join(wrong)


def test_no_module_imports_in_a_circle():
    state: dict[str, int] = {}
    stack: list[str] = []
    circles: set[str] = set()

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for target, _names, _line, _kept in GRAPH[m]:
            if target not in MODULES:
                continue
            if state.get(target) == 1:
                circles.add(" -> ".join(stack[stack.index(target):] + [target]))
            elif target not in state:
                visit(target)
        stack.pop()
        state[m] = 2

    for m in sorted(MODULES):
        if m not in state:
            visit(m)
    assert not circles, "\n".join(sorted(circles))


def test_the_stages_are_at_most_ten_levels_deep():
    edges = {(_stage(m), _stage(t)) for m, imports in GRAPH.items() for t, _n, _l, _k in imports
             if _stage(t) < _stage(m)}
    depth: dict[int, int] = {}
    for rank in range(len(STAGES)):  # every edge goes to a lower rank, computed before
        depth[rank] = 1 + max((depth[t] for s, t in edges if s == rank), default=0)
    assert max(depth.values()) <= 10, depth


def test_no_module_takes_a_private_name_of_another():
    private = [f"{_where(m, line)} takes {n} from {target}"
               for m, imports in GRAPH.items() for target, names, line, _kept in imports for n in names
               if n.startswith("_") and not n.startswith("__")]
    assert not private, "\n".join(private)


def test_no_module_re_exports_what_it_imports():
    """A name imported only to be importable from here (kept with `noqa: F401`), or an `__all__` naming
    what the module does not define: a second address for a name, which hides where it lives."""
    found = [f"{_where(m, line)} keeps {names} for others to import from here"
             for m, imports in GRAPH.items() for _target, names, line, kept in imports if kept and names]
    for m, path in MODULES.items():
        tree = ast.parse(path.read_text())
        defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))}
        defined |= {t.id for n in tree.body if isinstance(n, (ast.Assign, ast.AnnAssign))
                    for t in (n.targets if isinstance(n, ast.Assign) else [n.target]) if isinstance(t, ast.Name)}
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
                foreign = sorted(set(ast.literal_eval(node.value)) - defined)
                if foreign:
                    found.append(f"{path.relative_to(PACKAGE.parent)}: __all__ names {foreign}, defined elsewhere")
    assert not found, "\n".join(found)


def test_below_cli_the_package_is_imported_at_the_top_of_a_module():
    """An import inside a function hides a module's dependencies and once stood for a cycle; the layers
    above prove there is none. Below cli/ it is kept only where LAZY says what it saves."""
    cli = _stage("tablemigrate.cli")
    found = set()
    for m, imports in GRAPH.items():
        if _stage(m) < cli:
            lines = _function_import_lines(m)
            found |= {(m, target, line) for target, _names, line, _kept in imports if line in lines}
    wrong = [f"{_where(m, line)} imports {target} inside a function: move it to the top (or add it to LAZY, "
             "with what it saves)" for m, target, line in sorted(found) if (m, target) not in LAZY]
    stale = [f"LAZY lists {pair}, which is no longer imported inside a function"
             for pair in LAZY if pair not in {(m, target) for m, target, _line in found}]
    assert not wrong + stale, "\n".join(wrong + stale)
