"""Training checkpoints: the whole state of a run, written so a kill never leaves half of one
and read so a planted or damaged file can neither run code nor fail the tenant's night.

The file is a `torch.save` archive read back with `weights_only=True`: every value in it is a
tensor, a number, a string, None or a list/tuple/dict of those (the optimizer's state dict,
`random.getstate()`'s tuple of ints, the torch RNG state as a byte tensor, the augmented data
as JSON-ready dicts). The restricted unpickler refuses anything else, so a `checkpoint.pt`
that names a callable is rejected before any of it runs.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from agent_cl.consolidation.records import StepRecord
from agent_cl.consolidation.run_state import TrainingRun
from agent_cl.durable import atomic_write, set_aside
from agent_cl.memory.schema import Demonstration

log = logging.getLogger(__name__)

# what every checkpoint written by `capture_state` holds; a file without them is not one
_KEYS = frozenset(
    {"step", "adapter", "optimizer", "python_rng", "torch_rng", "ema", "order", "history"}
)


class Checkpoint:
    """One training-state file. It is a cache of work done: a damaged or refused one is set
    aside and training starts over (nothing lost but time), rather than failing the tenant's
    night every night."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / "checkpoint.pt"

    def load(self) -> dict[str, Any] | None:
        """The saved state, or None when there is none or it cannot be trusted."""
        try:
            state = torch.load(self.path, weights_only=True)
            if not isinstance(state, dict) or _KEYS - state.keys():
                raise ValueError("not a training checkpoint")
            return state
        except FileNotFoundError:
            return None
        except Exception as exc:  # torch raises several kinds on a truncated or foreign file
            aside = set_aside(self.path)
            log.warning(
                "checkpoint %s unreadable (%s); moved to %s, training from step 0",
                self.path,
                exc,
                aside,
            )
            return None

    def save(self, state: dict[str, Any]) -> None:
        atomic_write(self.path, lambda fh: torch.save(state, fh))


def capture_state(
    step: int,
    run: TrainingRun,
    trainable: list[torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
    augmented: list[Demonstration],
) -> dict[str, Any]:
    """Everything a resumed run needs to repeat none of the steps before `step`, in types the
    weights-only loader accepts (demonstrations and records as plain dicts, not objects)."""
    return {
        "step": step,
        "adapter": [p.detach().clone() for p in trainable],
        "optimizer": optimizer.state_dict(),
        "python_rng": run.rng.getstate(),
        "torch_rng": torch.get_rng_state(),
        "ema": [s.clone() for s in run.ema.shadow] if run.ema is not None else None,
        "order": [d.id for d in run.order],
        "history": [asdict(r) for r in run.history],
        "augmented": [d.model_dump(mode="json") for d in augmented],
    }


def restore_state(
    state: dict[str, Any],
    run: TrainingRun,
    trainable: list[torch.nn.Parameter],
    optimizer: torch.optim.Optimizer,
) -> None:
    """Load a checkpoint into the live objects so the run continues after its step. A layout
    or data mismatch is an error, not a silent restart: it means the caller changed the job."""
    if len(state["adapter"]) != len(trainable):
        raise ValueError("checkpoint does not match this adapter's layout; delete it")
    with torch.no_grad():
        for param, saved in zip(trainable, state["adapter"], strict=True):
            param.copy_(saved)
        if run.ema is not None and state["ema"] is not None:
            for shadow, saved in zip(run.ema.shadow, state["ema"], strict=True):
                shadow.copy_(saved)
    optimizer.load_state_dict(state["optimizer"])
    run.rng.setstate(state["python_rng"])
    torch.set_rng_state(state["torch_rng"])
    known = {d.id for d in run.data}
    if not set(state["order"]) <= known:
        raise ValueError("checkpoint was taken on other demonstrations; delete it")
    run.first_step = int(state["step"]) + 1
    by_id = {d.id: d for d in run.data}
    run.order = [by_id[i] for i in state["order"]]
    run.history = [StepRecord(**r) for r in state["history"]]
