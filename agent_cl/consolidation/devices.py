"""Where training and the gate's questions run, and what the run cost the machine.

Its own module so the trainer and `CandidateModel.load` (a candidate reloaded after a crash,
with no trainer alive) pick the same device and precision without importing each other.
"""

from __future__ import annotations

import resource

import torch


def resolve_device(device: str, dtype: str) -> tuple[torch.device, str]:
    """ "auto" trains on CUDA when a GPU is there, else on CPU, in fp32 on both: on an H200
    the quick long run's first night lost 3-9 of 128 robust items in bf16 (six runs) and 1 in
    fp32 (three runs, as on CPU in all seven), so bf16 is for models too large for fp32 and is
    asked for by name (docs/results/long_run/README.md, gpu_levers/ and gpu_levers_fp32/)."""
    cuda = torch.cuda.is_available()
    if device == "cuda" and not cuda:
        raise RuntimeError("device='cuda' but no CUDA GPU is visible (install the [gpu] extra)")
    chosen = torch.device("cuda" if device == "cuda" or (device == "auto" and cuda) else "cpu")
    if dtype == "auto":
        dtype = "float32"
    return chosen, dtype


def peak_rss_mb() -> float:
    """The process's peak resident memory so far: a run's result reports what it needed."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
