"""Seeded random weight perturbations: the noise floor a forgetting measure must rise above.

An item that a 1%-of-std perturbation of every weight flips measures luck, not memory; the
retention fixture keeps as robust only items that survive several such perturbations, and the
gate's threshold comes from the spread seen under perturbations it was not built from.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


@contextmanager
def perturbed_weights(model: nn.Module, *, noise: float, seed: int) -> Iterator[None]:
    """Inside the block every parameter carries N(0, (noise * its std)^2) noise; restored after."""
    import torch

    if noise <= 0:
        raise ValueError(f"noise must be > 0, got {noise}")
    generator = torch.Generator(device="cpu").manual_seed(seed)
    saved = {}
    with torch.no_grad():
        for name, param in model.named_parameters():
            saved[name] = param.detach().clone()
            delta = torch.randn(param.shape, generator=generator, dtype=torch.float32)
            param.add_((delta * float(param.float().std()) * noise).to(param.device, param.dtype))
    try:
        yield
    finally:
        with torch.no_grad():
            for name, param in model.named_parameters():
                param.copy_(saved[name])
