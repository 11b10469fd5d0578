"""What an evaluation run tells a display while it goes on (the CLI draws it with rich).
Kept apart from the runner so the CLI can subclass it without importing torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent_cl.consolidation.trainer import StepRecord


class EvalProgress:
    """No-op hooks; override the ones a display needs."""

    def begin(self, total: int, done: int) -> None: ...

    def unit(self, label: str) -> None: ...

    def step(self, record: StepRecord) -> None: ...

    def advance(self) -> None: ...
