"""What a training run reports: one record per logged step and the run's result.

Kept apart from the trainer because progress displays, evals and the sleep job read these
records without needing the trainer's heavy dependencies, and checkpoints store them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class StepRecord:
    step: int
    loss: float
    seconds: float
    sample_seconds: float = 0.0
    terms: dict[str, float] = field(default_factory=dict)  # each weighted term's raw value
    # SDFT diagnostics: mean per-token KL at the tokens that spell the expected answer vs the
    # rest, and the share of student samples that contain the expected answer at all.
    kl_answer_tokens: float | None = None
    kl_other_tokens: float | None = None
    samples_with_answer: float | None = None
    total_steps: int = 0  # the run's length, for progress displays


@dataclass
class TrainResult:
    adapter_dir: Path
    method: str
    steps: int
    seconds: float
    seconds_per_step: float
    peak_rss_mb: float
    final_loss: float
    history: list[StepRecord] = field(default_factory=list)
    resumed_from_step: int = 0  # > 0 when training continued from a checkpoint
    augmented: int = 0  # teacher-written demonstrations added to the given ones
    # A stacked night (lora_per_night="fresh"): ranks and how they became one adapter.
    fold: dict[str, Any] | None = None
    # Where it trained: a night's forgetting depends on it (bf16 on a GPU lost 3-9 robust items
    # of 128 where fp32 lost 1, on the GPU as on CPU), so reports must say which was which.
    device: str = ""
    dtype: str = ""
