"""The gate: a candidate adapter is published only if it learned and did not forget.

Two scores, each measured on the model as served before the night (the current adapter) and on
the candidate, with nothing in context: new-skill accuracy on the night's demonstrations (plus
any held-out items the caller has, such as paraphrases) and accuracy on the retention set (what
the base model could do). The candidate passes when new-skill accuracy rises by more than
`min_new_skill_gain` and retention falls by no more than `max_retention_drop`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from agent_cl.memory.schema import Demonstration
from agent_cl.models.chat import ChatMessage, task_message
from agent_cl.scoring.matching import answer_matches

Generate = Callable[[list[list[ChatMessage]]], list[str]]


@dataclass(frozen=True)
class GateItem:
    """One question asked with nothing in context, and how to tell a right answer."""

    conversation: list[ChatMessage]
    is_correct: Callable[[str], bool]


@dataclass(frozen=True)
class GateConfig:
    enabled: bool = True
    max_retention_drop: float = 0.01  # one point
    min_new_skill_gain: float = 0.0  # after - before must exceed this
    retention_items: int | None = 60  # None: the whole frozen set
    max_new_tokens: int = 40

    def __post_init__(self) -> None:
        if not 0 <= self.max_retention_drop <= 1:
            raise ValueError(f"max_retention_drop must be in [0, 1], got {self.max_retention_drop}")
        if not -1 <= self.min_new_skill_gain < 1:
            raise ValueError(
                f"min_new_skill_gain must be in [-1, 1), got {self.min_new_skill_gain}"
            )
        if self.retention_items is not None and self.retention_items < 1:
            raise ValueError(f"retention_items must be >= 1, got {self.retention_items}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


@dataclass
class GateScores:
    new_skill: float | None  # None: no verifiable new-skill item
    retention: float
    n_new_skill: int
    n_retention: int


@dataclass
class GateDecision:
    passed: bool
    reason: str
    before: GateScores
    after: GateScores
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def demonstration_items(demonstrations: Sequence[Demonstration]) -> list[GateItem]:
    """Each demonstration's question without its demonstration, checked against the expected
    answer it was verified with; demonstrations without one cannot be scored and are skipped."""
    items = []
    for demo in demonstrations:
        expected = str(demo.metadata.get("expected", "")).strip()
        if expected:
            items.append(
                GateItem(
                    [{"role": "user", "content": task_message(demo.query)}],
                    lambda answer, expected=expected: answer_matches(answer, expected),
                )
            )
    return items


def retention_items(limit: int | None) -> list[GateItem]:
    from agent_cl.scoring.retention import load_retention_set

    return [
        GateItem([{"role": "user", "content": task_message(item.prompt)}], item.is_correct)
        for item in load_retention_set(limit=limit)
    ]


class Gate:
    def __init__(
        self,
        config: GateConfig,
        new_skill: Sequence[GateItem],
        retention: Sequence[GateItem] | None = None,
    ) -> None:
        self.config = config
        self.new_skill = list(new_skill)
        self.retention = (
            list(retention) if retention is not None else retention_items(config.retention_items)
        )
        if not self.retention:
            raise ValueError("the gate needs at least one retention item")

    def score(self, generate: Generate) -> GateScores:
        items = self.new_skill + self.retention
        answers = generate([item.conversation for item in items])
        hits = [item.is_correct(a) for item, a in zip(items, answers, strict=True)]
        new, kept = hits[: len(self.new_skill)], hits[len(self.new_skill) :]
        return GateScores(
            new_skill=sum(new) / len(new) if new else None,
            retention=sum(kept) / len(kept),
            n_new_skill=len(new),
            n_retention=len(kept),
        )

    def decide(self, before: GateScores, after: GateScores) -> GateDecision:
        cfg = self.config
        drop = before.retention - after.retention
        reasons = []
        if after.new_skill is None or before.new_skill is None:
            reasons.append("no verifiable new-skill item (demonstrations lack 'expected')")
        elif after.new_skill - before.new_skill <= cfg.min_new_skill_gain:
            reasons.append(
                f"new-skill accuracy {before.new_skill:.3f} -> {after.new_skill:.3f} "
                f"(needs a gain above {cfg.min_new_skill_gain:.3f})"
            )
        if drop > cfg.max_retention_drop + 1e-9:
            reasons.append(
                f"retention {before.retention:.3f} -> {after.retention:.3f} "
                f"(drop {drop:.3f} > {cfg.max_retention_drop:.3f})"
            )
        passed = not reasons
        reason = (
            "; ".join(reasons)
            if reasons
            else (
                f"new skill {before.new_skill:.3f} -> {after.new_skill:.3f}, "
                f"retention {before.retention:.3f} -> {after.retention:.3f}"
            )
        )
        return GateDecision(passed, reason, before, after, asdict(cfg))
