"""The SDFT teacher's weights: the frozen base, or an EMA of the student's adapter.

The EMA teacher moves slowly (rate about 0.01 per step in the paper) so the target does not
chase the student's own mistakes. We keep EMA copies of the trainable LoRA tensors and swap them
into the live modules only for the teacher's forward pass: the adapter is small (about 5 M
parameters at r=8 on 135M), so two copies cost milliseconds and avoid a second model in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext

import torch


class EMATeacher:
    def __init__(self, params: list[torch.nn.Parameter], rate: float) -> None:
        if not 0 < rate <= 1:
            raise ValueError(f"EMA rate must be in (0, 1], got {rate}")
        self.params = params
        self.rate = rate
        self.shadow = [p.detach().clone() for p in params]

    @torch.no_grad()
    def update(self) -> None:
        for shadow, param in zip(self.shadow, self.params, strict=True):
            shadow.lerp_(param.detach(), self.rate)

    @contextmanager
    def swapped_in(self) -> Iterator[None]:
        """Within the block the live parameters hold the EMA weights."""
        with torch.no_grad():
            saved = [p.detach().clone() for p in self.params]
            for param, shadow in zip(self.params, self.shadow, strict=True):
                param.copy_(shadow)
        try:
            yield
        finally:
            with torch.no_grad():
                for param, value in zip(self.params, saved, strict=True):
                    param.copy_(value)


def teacher_context(peft_model, ema: EMATeacher | None):
    """Context manager under which `peft_model` computes the teacher's logits."""
    if ema is not None:
        return ema.swapped_in()
    return peft_model.disable_adapter() if hasattr(peft_model, "disable_adapter") else nullcontext()
