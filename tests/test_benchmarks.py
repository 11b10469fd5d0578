"""Every benchmark script starts from a fresh clone: `--help` works from the repository root
without PYTHONPATH tricks, stays cheap (no torch/transformers/vllm before argparse), and no
benchmark imports from `tests`. The shell scripts at least parse."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
HEAVY = {"torch", "transformers", "vllm", "peft"}


def _has_main_block(path: Path) -> bool:
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            return True
    return False


SCRIPTS = sorted(
    p.name for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_") and _has_main_block(p)
)
SHELL_SCRIPTS = sorted(p.name for p in BENCHMARKS.glob("*.sh"))


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def test_scripts_are_found():
    assert "serving_bench.py" in SCRIPTS


@pytest.mark.parametrize("name", SCRIPTS)
def test_help_runs_from_a_fresh_clone_and_is_cheap(name):
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", f"benchmarks/{name}", "--help"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "usage:" in proc.stdout and name in proc.stdout, proc.stdout
    # `-X importtime` lists every module imported, one per line: "import time: ... | name".
    imported = {
        line.rsplit("|", 1)[-1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert not imported & HEAVY, f"{name} --help imports {sorted(imported & HEAVY)}"


@pytest.mark.parametrize("name", sorted(p.name for p in BENCHMARKS.glob("*.py")))
def test_no_benchmark_imports_tests(name):
    tree = ast.parse((BENCHMARKS / name).read_text())
    modules = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.append(node.module)
    assert not [m for m in modules if m == "tests" or m.startswith("tests.")], modules


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
@pytest.mark.parametrize("name", SHELL_SCRIPTS)
def test_shell_scripts_parse(name):
    proc = subprocess.run(
        ["bash", "-n", f"benchmarks/{name}"], cwd=ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
