"""A share of a night's update: the served adapter plus `factor` times what the night changed.

Why: a night that learned its skills but lost retention items past the gate lost most of them
to the last part of its update, and WiSE-FT's weight interpolation between the weights before
and after fine-tuning trades the two off along the way. Measured on the quick long run's night
2 (`benchmarks/shrink_rejected.py`), rejected at 7.8 points of robust retention under the base
while it answered all its skills' held-out questions: at 0.75 of its update it stood 2.3
points under the base and still answered them all; at 0.5, 0.8 points under, and none of its
facts (docs/results/long_run/README.md).

The interpolation is on the LoRA's own parameters (A and B alike), so the result keeps the
served rank and the next night continues it as it would the candidate. A first night has no
served adapter; its LoRA started at B = 0, so its share is B scaled by `factor`, which scales
the weight update exactly.
"""

from __future__ import annotations

import shutil
from pathlib import Path

ADAPTER_WEIGHTS = "adapter_model.safetensors"


class ShrinkUnavailableError(ValueError):
    """The candidate is not the served adapter trained further (e.g. a fresh LoRA per night,
    folded beside the earlier ones), so there is no update to take a share of."""


def shrunk_weights(candidate: dict, served: dict | None, factor: float) -> dict:
    """`served + factor * (candidate - served)`, tensor by tensor, in the candidate's dtype."""
    if not 0 < factor < 1:
        raise ValueError(f"a share of the update is in (0, 1), got {factor}")
    if served is not None:
        if set(served) != set(candidate):
            raise ShrinkUnavailableError(
                "the candidate's LoRA adapts other modules than the served one"
            )
        for name, tensor in candidate.items():
            if served[name].shape != tensor.shape:
                raise ShrinkUnavailableError(
                    f"{name} is {tuple(tensor.shape)} in the candidate and "
                    f"{tuple(served[name].shape)} in the served adapter (not trained from it)"
                )
    mixed = {}
    for name, tensor in candidate.items():
        if served is not None:
            start = served[name].float()
        elif "lora_B" in name:
            start = tensor.float().new_zeros(tensor.shape)
        else:
            start = tensor.float()
        mixed[name] = (start + factor * (tensor.float() - start)).to(tensor.dtype)
    return mixed


def write_shrunk_adapter(
    candidate_dir: Path, served_dir: Path | None, factor: float, out_dir: Path
) -> None:
    """The candidate's adapter directory, copied into `out_dir` (an empty staging folder) with
    its weights replaced by `factor` of the night's update from `served_dir` (None: the base)."""
    from safetensors.torch import load_file, save_file

    candidate_dir, out_dir = Path(candidate_dir), Path(out_dir)
    candidate = load_file(str(candidate_dir / ADAPTER_WEIGHTS))
    served = load_file(str(Path(served_dir) / ADAPTER_WEIGHTS)) if served_dir else None
    mixed = shrunk_weights(candidate, served, factor)
    for item in candidate_dir.iterdir():
        if item.is_file() and item.name != ADAPTER_WEIGHTS:
            shutil.copy2(item, out_dir / item.name)
    save_file(mixed, str(out_dir / ADAPTER_WEIGHTS), metadata={"format": "pt"})
