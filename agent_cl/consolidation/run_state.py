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
    ) -> None:
        self.data = data
        self.rng = rng
        self.ema = ema
        self.batch_size = min(batch_size, len(data))
        self.order: list[Demonstration] = []
        self.history: list[StepRecord] = []
        self.first_step = 1

    def next_batch(self) -> list[Demonstration]:
        """The next `batch_size` items of a reshuffled pass over the data (epochs wrap)."""
        batch = []
        while len(batch) < self.batch_size:
            if not self.order:
                self.order = list(self.data)
                self.rng.shuffle(self.order)
            batch.append(self.order.pop())
        return batch
