"""The README's examples run as a user runs them (separate processes, the embedded model),
and what they wrote is there afterwards for the next process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def run_example(name: str, *args: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / name), *args],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()


def test_create_agent_middleware_example_logs_only_verified_runs(tmp_path):
    from langchain_core.messages import messages_from_dict

    from agent_cl.memory.chroma import ChromaDemonstrationStore
    from agent_cl.memory.schema import DemoStatus

    lines = run_example("create_agent_middleware.py", str(tmp_path))
    logged = int(lines[-1].removeprefix("logged_demonstrations="))
    assert logged == sum(line.endswith("-> logged") for line in lines) >= 1
    with ChromaDemonstrationStore.open(tmp_path) as store:
        demos = store.list()
        assert demos and all(d.status == DemoStatus.PENDING for d in demos)
        for demo in demos:  # the verifier's verdict holds in what was stored
            lab = "Nerost Lab" if "Nerost" in demo.query else "Dorbri Unit"
            leader = {"Nerost Lab": "Quenvel Ostrami", "Dorbri Unit": "Fenna Kasfen"}[lab]
            assert leader in demo.answer
            assert messages_from_dict(demo.messages)[0].content == demo.query


def test_stategraph_store_example_remembers_across_processes(tmp_path):

    from agent_cl.memory.langgraph_store import ChromaStore

    lines = run_example("stategraph_store.py", str(tmp_path))
    assert lines[-1] == "remembered_items=2"
    with ChromaStore.open(tmp_path / "langgraph") as store:
        texts = {item.value["text"] for item in store.search(("users", "ana"), limit=10)}
    assert texts == {"My favourite colour is teal.", "I live in Kasfen."}
