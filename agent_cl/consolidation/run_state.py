"""The mutable state of one training run, in one object so a checkpoint can capture all of it
and a resumed run continues the same data order and random stream as the killed one."""

from __future__ import annotations

import random

from agent_cl.consolidation.records import StepRecord
from agent_cl.consolidation.teacher import EMATeacher
from agent_cl.memory.schema import Demonstration


class TrainingRun:
    """Data order, random state, EMA teacher and logged history of one run."""

    def __init__(
        self,
        data: list[Demonstration],
        rng: random.Random,
        ema: EMATeacher | None,
        batch_size: int,
        draws: list[int] | None = None,
    ) -> None:
        if draws is not None and (len(draws) != len(data) or min(draws, default=1) < 1):
            raise ValueError("draws needs one count >= 1 per example")
        self.data = data
        # how many times each example appears in one pass (None: once each)
        self.draws = draws
        self.rng = rng
        self.ema = ema
        self.batch_size = min(batch_size, len(data))
        self.order: list[Demonstration] = []
        self.history: list[StepRecord] = []
        self.first_step = 1

    def next_batch(self) -> list[Demonstration]:
        """The next `batch_size` items of a reshuffled pass over the data (epochs wrap); a pass
        holds each example as many times as `draws` says."""
        batch = []
        while len(batch) < self.batch_size:
            if not self.order:
                counts = self.draws or [1] * len(self.data)
                self.order = [d for d, n in zip(self.data, counts, strict=True) for _ in range(n)]
                self.rng.shuffle(self.order)
            batch.append(self.order.pop())
        return batch
