"""The package's layers, asserted from its source: every import, lazy ones inside functions
included, so a shortcut upwards cannot slip in unnoticed (docs/architecture.md has the map)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "agent_cl"

# package -> prefixes it must never import
FORBIDDEN = {
    "scoring": ("agent_cl.",),  # the bottom: matching and retention data only
    "models": ("agent_cl.serving", "agent_cl.consolidation", "agent_cl.memory"),
    "memory": ("agent_cl.consolidation", "agent_cl.serving"),
    "consolidation": (),
    "serving": (),
}
NEVER_FROM_LIBRARY = ("agent_cl.graphs", "agent_cl.evals", "agent_cl.cli")
SCORING_MAY_IMPORT = ("agent_cl.scoring",)


def imports_of(path: Path) -> set[str]:
    """Every module `path` imports, relative imports resolved against its package."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
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


def modules(layer: str) -> list[Path]:
    return sorted((PACKAGE / layer).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_library_layers_never_import_upwards(layer):
    assert modules(layer), f"no modules under agent_cl/{layer}"
    offences = []
    for path in modules(layer):
        for name in imports_of(path):
            banned = NEVER_FROM_LIBRARY + FORBIDDEN[layer]
            allowed = layer == "scoring" and name.startswith(SCORING_MAY_IMPORT)
            if name.startswith(banned) and not allowed:
                offences.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not offences, "\n".join(offences)


def test_nothing_in_the_library_imports_the_cli():
    offences = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in PACKAGE.rglob("*.py")
        if "cli" not in path.relative_to(PACKAGE).parts
        for name in imports_of(path)
        if name.startswith("agent_cl.cli")
    ]
    assert not offences, "\n".join(offences)


def test_the_checker_sees_lazy_and_relative_imports(tmp_path):
    """The rule test is only as good as its parser: a planted upward import is caught."""
    planted = PACKAGE / "consolidation" / "_planted_for_test.py"
    planted.write_text("def f():\n    from ..graphs import agent\n    import agent_cl.evals.demo\n")
    try:
        found = imports_of(planted)
    finally:
        planted.unlink()
    assert "agent_cl.graphs.agent" in found and "agent_cl.evals.demo" in found
