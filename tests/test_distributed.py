"""The trainer under `accelerate launch` with 2 CPU processes (gloo) gives the adapter a single
process gives on the same data: same code path, gradients averaged across processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _train(cmd: list[str], timeout: int = 300) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_two_processes_train_the_same_adapter_as_one(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file

    single, double = tmp_path / "single", tmp_path / "double"
    _train([sys.executable, "-m", "tests.ddp_worker", str(tiny_model_dir), str(single)])
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu"]
    launch += ["--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no"]
    launch += ["--dynamo_backend", "no", "-m", "tests.ddp_worker"]
    _train([*launch, str(tiny_model_dir), str(double)])

    a = load_file(single / "adapter_model.safetensors")
    b = load_file(double / "adapter_model.safetensors")
    assert a.keys() == b.keys() and len(a) > 0
    lora_b = [k for k in a if "lora_B" in k]
    assert max(a[k].abs().max().item() for k in lora_b) > 1e-2  # it trained (B starts at 0)
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4
