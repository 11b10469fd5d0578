"""Where training and the gate's questions run, and what the run cost the machine.

Its own module so the trainer and `CandidateModel.load` (a candidate reloaded after a crash,
with no trainer alive) pick the same device and precision without importing each other.
"""

from __future__ import annotations

import resource

import torch


def resolve_device(device: str, dtype: str) -> tuple[torch.device, str]:
    """ "auto" trains on CUDA in bf16 when a GPU is there, else on CPU in fp32."""
    cuda = torch.cuda.is_available()
    if device == "cuda" and not cuda:
        raise RuntimeError("device='cuda' but no CUDA GPU is visible (install the [gpu] extra)")
    chosen = torch.device("cuda" if device == "cuda" or (device == "auto" and cuda) else "cpu")
    if dtype == "auto":
        dtype = "bfloat16" if chosen.type == "cuda" else "float32"
    return chosen, dtype


def peak_rss_mb() -> float:
    """The process's peak resident memory so far: a run's result reports what it needed."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
