"""Data parallelism for the trainer under `accelerate launch` (or torchrun): one code path.

Every process builds the same global batch (same seed, same data order) and trains on its own
slice of it; gradients of the adapter are averaged across processes before each optimizer
step, so every process takes the same step and holds the same adapter. Each slice's loss is
scaled by its share of the batch, so the average equals the single-process loss over the whole
batch even when the batch does not split evenly. LoRA gradients are a few MB, so a plain
all-reduce per step is all DDP would do here too; sharded models (FSDP) are not supported yet.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TypeVar

import torch

T = TypeVar("T")


class DataParallel:
    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = 0
        if self.world > 1:
            from accelerate import PartialState

            # accelerate picks MULTI_CPU (gloo) only when told the run is on CPU; without that
            # it falls back to one process on a machine without CUDA (measured).
            state = PartialState(cpu=not torch.cuda.is_available())
            self.rank, self.world = state.process_index, state.num_processes

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: Sequence[T]) -> list[T]:
        return list(items[self.rank :: self.world])

    def scale(self, shard_size: int, total: int) -> float:
        """Weight of this process's mean loss so the cross-process average is the global mean."""
        return shard_size * self.world / total if total else 0.0

    def average_gradients(self, params: Sequence[torch.nn.Parameter]) -> None:
        if self.world == 1:
            return
        import torch.distributed as dist

        for param in params:
            if param.grad is None:
                param.grad = torch.zeros_like(param)
            dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
            param.grad /= self.world

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()
