"""Crash safety, by fault injection: SIGKILL the sleep job at every stage boundary and in the
middle of training, then check the store, the registry and the served model are consistent and
that running the job again resumes the killed run instead of starting over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agent_cl.faults import FAULT_ENV
from tests.sleep_worker import CHECKPOINT_EVERY, STEPS

ROOT = Path(__file__).resolve().parents[1]

# (fault point, journal stage the rerun resumes from (None: nothing to resume), first step
# the rerun trains (None: it does not train))
FAULTS = [
    ("after_claim", "claimed", 1),
    ("train_step:1", "training", 1),  # before the first checkpoint: training restarts
    ("train_step:3", "training", CHECKPOINT_EVERY + 1),  # resumes after the step-2 checkpoint
    ("after_train", "trained", None),
    ("after_gate", "gated", None),
    ("publish_copy", "gated", None),  # files copied, rename not done
    ("after_publish", "published", None),
    ("after_swap", "swapped", None),
    ("after_mark", "swapped", None),  # marked; the journal's DONE write was not reached
]


def run_worker(home: Path, model_dir: Path, fault: str | None) -> tuple[int, list[dict]]:
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    env.pop(FAULT_ENV, None)
    if fault:
        env[FAULT_ENV] = fault
    proc = subprocess.run(
        [sys.executable, "-m", "tests.sleep_worker", str(home), str(model_dir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"worker failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.returncode, lines


def assert_consistent(state: dict) -> None:
    published_ids = {i for ids in state["versions"].values() for i in ids}
    for demo_id, status in state["statuses"].items():
        if status == "consolidated":
            assert demo_id in published_ids, "consolidated without a published adapter"
    if state["current"] is not None:
        assert str(state["current"]) in state["versions"]
    if state["served"] is not None:
        assert str(state["served"]) in state["versions"], "serving a version that does not exist"


@pytest.mark.slow
@pytest.mark.parametrize(("fault", "resumed_from", "first_step"), FAULTS)
def test_kill_then_rerun_is_consistent_and_resumes(
    tiny_model_dir, tmp_path, fault, resumed_from, first_step
):
    code, _ = run_worker(tmp_path, tiny_model_dir, fault)
    assert code == -signal.SIGKILL, f"the fault point {fault} was never reached"

    code, lines = run_worker(tmp_path, tiny_model_dir, None)
    assert code == 0
    before = lines[0]["before"]
    assert_consistent(before)  # what a restart finds after the kill
    report = lines[1]["report"]
    after = lines[2]["after"]
    assert_consistent(after)
    assert after["hidden"] == [], "a killed publish's temp dir was not cleaned up"

    assert report["resumed_from"] == resumed_from
    if first_step is None:
        assert report["train"] == {}  # no training repeated
    else:
        assert report["train"]["resumed_from_step"] == first_step - 1
        assert report["train"]["steps"] == STEPS
    # One published version, serving, and every demonstration consolidated by it.
    assert list(after["versions"]) == ["1"] and after["current"] == 1 and after["served"] == 1
    assert set(after["statuses"].values()) == {"consolidated"}
    assert len(after["statuses"]) == 3


@pytest.mark.slow
def test_rerun_after_a_finished_night_has_nothing_to_do(tiny_model_dir, tmp_path):
    assert run_worker(tmp_path, tiny_model_dir, None)[0] == 0
    code, lines = run_worker(tmp_path, tiny_model_dir, None)
    assert code == 0 and lines[1]["report"]["status"] == "nothing_to_do"
    assert lines[2]["after"]["served"] == 1
