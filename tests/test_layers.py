"""The package's layers, asserted from its source: every import, lazy ones inside functions
included, so a shortcut upwards cannot slip in unnoticed (docs/architecture.md has the map).

The picture is an allowlist: each package and top-level module names the parts of agent_cl it
may import, and a part that is not listed fails the test until someone places it. The issue's
"never" rules are kept as their own table and checked against the allowlist, so loosening the
allowlist past one of them fails too. A planted violation proves the checker catches it.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "agent_cl"

BOTTOM = {"config", "durable", "faults", "managed_process", "scoring"}
EVERYTHING = {
    *BOTTOM,
    "models",
    "memory",
    "adapters",
    "serving",
    "consolidation",
    "night",
    "graphs",
    "evals",
}
# part -> the other parts of agent_cl it may import (its own modules always)
ALLOWED: dict[str, set[str]] = {
    "config": set(),
    "durable": set(),
    "faults": set(),
    "managed_process": set(),
    "scoring": set(),
    "models": {"durable", "scoring"},
    "memory": {"config", "durable", "managed_process"},
    "adapters": {"config", "durable", "faults", "models"},
    "serving": {"adapters", "config", "durable", "faults", "managed_process", "models", "scoring"},
    "consolidation": {"config", "durable", "faults", "memory", "models", "scoring"},
    "night": EVERYTHING - {"graphs", "evals", "night"},
    "graphs": {"adapters", "config", "durable", "memory", "models", "scoring", "serving"},
    "evals": EVERYTHING - {"evals"},
    "cli": EVERYTHING,
    "__init__": set(),  # agent_cl/__init__.py: the version, nothing heavy
}
# The rules as the design states them; the allowlist must never contradict one.
NEVER: dict[str, set[str]] = {
    "scoring": EVERYTHING - {"scoring"},
    "config": EVERYTHING - {"config"},
    "models": {"memory", "serving", "consolidation", "night", "adapters", "graphs", "evals"},
    "memory": {"models", "serving", "consolidation", "night", "adapters", "graphs", "evals"},
    "serving": {"consolidation", "night", "graphs", "evals"},
    "adapters": {"serving", "consolidation", "night", "graphs", "evals", "memory"},
    "consolidation": {"night", "serving", "adapters", "graphs", "evals"},
    "graphs": {"consolidation", "night", "evals"},
    "night": {"graphs", "evals"},
}
OUTSIDE = ("benchmarks", "tests")  # nothing in agent_cl imports these


def part_of(path: Path, root: Path) -> str:
    """The layer a source file belongs to: its top-level package or module name."""
    first = path.relative_to(root).parts[0]
    return first.removesuffix(".py")


def imports_of(path: Path, root: Path = PACKAGE) -> set[str]:
    """Every module `path` imports, relative imports resolved against its package."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(root.parent).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def violations(root: Path = PACKAGE) -> list[str]:
    """Every import in `root` that breaks the allowlist, and every part it does not place."""
    found = []
    for path in sorted(root.rglob("*.py")):
        part = part_of(path, root)
        if part not in ALLOWED:
            found.append(f"{path.relative_to(root)}: '{part}' has no place in ALLOWED")
            continue
        for name in imports_of(path, root):
            top = name.split(".")[0]
            if top in OUTSIDE:
                found.append(f"{path.relative_to(root)} imports {name} (outside the library)")
            if top != "agent_cl" or name.count(".") == 0:
                continue
            target = name.split(".")[1]
            if target != part and target not in ALLOWED[part] | {"__version__"}:
                found.append(f"{path.relative_to(root)} ({part}) imports {name}")
    return found


def module_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the agent_cl modules it imports (a name imported from a module counts as that
    module; a package's own `__init__` counts as the package)."""
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = set()
        for imported in imports_of(path, root):
            while imported and imported not in modules:
                imported = imported.rpartition(".")[0]
            if imported and imported != name:
                edges.add(imported)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Import circles, each once (Tarjan's strongly connected components of size > 1)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def is_package_init_edge(cycle: list[str], graph: dict[str, set[str]]) -> bool:
    """A package's `__init__` re-exporting its own module is not a circle a reader trips on."""
    return len(cycle) == 2 and (cycle[1].startswith(cycle[0] + ".") or cycle[0] == cycle[1])


def test_every_part_has_a_place_and_no_import_runs_against_the_picture():
    assert not violations(), "\n".join(violations())


@pytest.mark.parametrize("part", sorted(NEVER))
def test_the_allowlist_never_grants_what_the_design_forbids(part):
    assert not ALLOWED[part] & NEVER[part], f"{part} may import {ALLOWED[part] & NEVER[part]}"


def test_every_package_and_top_level_module_is_placed():
    parts = {part_of(p, PACKAGE) for p in PACKAGE.rglob("*.py")}
    assert parts == set(ALLOWED), f"unplaced: {parts - set(ALLOWED)}; gone: {set(ALLOWED) - parts}"


def test_no_import_circle():
    graph = module_graph()
    circles = [c for c in cycles(graph) if not is_package_init_edge(c, graph)]
    assert not circles, "\n".join(" <-> ".join(c) for c in circles)


@pytest.mark.parametrize(
    ("where", "planted", "expected"),
    [
        ("config.py", "from agent_cl.consolidation import trainer", "config.py (config)"),
        ("scoring/x.py", "def f():\n    import agent_cl.models.chat", "(scoring) imports"),
        ("models/x.py", "from agent_cl.memory.schema import Demonstration", "(models)"),
        ("memory/x.py", "from ..serving import backend", "(memory) imports agent_cl.serving"),
        ("serving/x.py", "import agent_cl.night.sleep", "(serving) imports agent_cl.night"),
        ("graphs/x.py", "from agent_cl.evals import demo", "(graphs) imports agent_cl.evals"),
        ("night/x.py", "def f():\n    from agent_cl.graphs import agent", "(night)"),
        ("adapters/x.py", "import tests.adapters", "outside the library"),
        ("newpart.py", "x = 1", "'newpart' has no place"),
        ("evals/x.py", "from agent_cl.cli import app", "(evals) imports agent_cl.cli"),
    ],
)
def test_a_planted_violation_fails_the_check(tmp_path, where, planted, expected):
    """The rule test is only as good as its parser: plant each kind of violation in a copy of
    the package and the check must name it."""
    copy = tmp_path / "agent_cl"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / where
    target.write_text(target.read_text() + "\n" + planted + "\n" if target.exists() else planted)
    found = violations(copy)
    assert any(expected in line for line in found), found


def test_a_planted_circle_is_found(tmp_path):
    copy = tmp_path / "agent_cl"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "consolidation" / "x.py").write_text("from agent_cl.consolidation import y\n")
    (copy / "consolidation" / "y.py").write_text("def f():\n    from . import x\n")
    assert ["agent_cl.consolidation.x", "agent_cl.consolidation.y"] in cycles(module_graph(copy))
