"""What the long run lives through: its size, and each day's tasks and the questions that test
them, deterministic from the plan.

A day mixes the three kinds a real agent sees: invented facts read from a note, a JSON format
(shown, never stated), and a tool call through `bind_tools`. Some facts come back on a later
day without their note (a question that recurs); some arrive without a note and are fixed by
feedback (`record_outcome` with a correction). Every skill a day teaches has held-out questions
the morning after asks with nothing in context: other phrasings of a fact, other sentences in
the JSON format, other labs for the tool.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent_cl.evals.facts import Fact, build_facts
from agent_cl.evals.json_skill import JsonTask, build_json_tasks
from agent_cl.evals.suites import TOOL_SPEC, calls_lab_leader
from agent_cl.evals.tools_skill import ToolTask, build_tool_tasks
from agent_cl.models.chat import ChatMessage, task_message
from agent_cl.models.conversation import conversation

KINDS = ("facts", "json", "tools")
MODES = ("new", "recur", "correct")
# Fields that change what a number means: a resumed run must match them.
SIZING = (
    "nights",
    "demos_per_night",
    "kinds",
    "recurring",
    "corrections",
    "seed",
    "steps_per_demo",
    "retention_limit",
    "max_new_tokens",
)


@dataclass
class LongRunPlan:
    """The size of an agent's simulated life (docs/results/long_run/ holds a full one)."""

    nights: int = 20
    demos_per_night: int = 24
    kinds: tuple[str, ...] = KINDS
    recurring: float = 0.125  # share of a day's tasks that re-ask an earlier day's fact
    corrections: float = 0.125  # share that arrive without a note and are fixed by feedback
    seed: int = 0
    steps_per_demo: int | None = None  # None: the product's default (Settings)
    # None: the gate's whole frozen retention set, as `agent-cl sleep` asks it; a number asks
    # a seeded sample in the gate (and so in the morning's retention) instead.
    retention_limit: int | None = None
    # The text-memory baselines (the base with top-k memory, the served model with the agent's
    # own retrieval) on every question so far, every this many mornings and on the last.
    memory_every: int = 4
    max_new_tokens: int = 40

    def __post_init__(self) -> None:
        self.kinds = tuple(self.kinds)
        unknown = sorted(set(self.kinds) - set(KINDS))
        if not self.kinds:
            raise ValueError(f"a long run needs at least one kind: {', '.join(KINDS)}")
        if unknown:
            raise ValueError(f"unknown kinds {unknown}; choose from {', '.join(KINDS)}")
        for name in ("nights", "demos_per_night", "memory_every", "max_new_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("recurring", "corrections"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.recurring + self.corrections >= 1.0:
            raise ValueError("recurring + corrections must leave room for new tasks")
        for name in ("steps_per_demo", "retention_limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 (or None: the default), got {value}")

    @classmethod
    def quick(cls, **overrides: Any) -> LongRunPlan:
        """Four nights of six mixed tasks, each night the product's (its steps per
        demonstration) but for the gate's retention, a 128-item seeded sample of the frozen
        set as `agent-cl eval` asks it. Measured time: docs/results/long_run/README.md."""
        sizes = {
            "nights": 4,
            "demos_per_night": 6,
            "retention_limit": 128,
            "memory_every": 1,
            "corrections": 0.17,
            "recurring": 0.17,
        }
        return cls(**{**sizes, **overrides})

    def sizing(self) -> dict[str, Any]:
        return {name: _plain(getattr(self, name)) for name in SIZING}

    def to_dict(self) -> dict[str, Any]:
        return {k: _plain(v) for k, v in dataclasses.asdict(self).items()}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


@dataclass(frozen=True)
class Task:
    """One task of one day: which kind, how it arrives, and which pool item it is."""

    night: int
    kind: str
    mode: str  # "new", "recur" (an earlier fact, no note), "correct" (no note, then feedback)
    index: int  # into the kind's pool

    @property
    def key(self) -> str:
        """Names the skill (a recurring fact shares its first day's key)."""
        return f"{self.kind}:{self.index}"


@dataclass(frozen=True)
class Question:
    """A held-out question about one night's skill, asked with nothing in context."""

    night: int
    kind: str
    conversation: list[ChatMessage]
    is_correct: Callable[[str], bool]

    @property
    def text(self) -> str:
        return self.conversation[-1]["content"]


@dataclass
class Curriculum:
    """Every day's tasks and the pools they draw from."""

    plan: LongRunPlan
    days: dict[int, list[Task]] = field(default_factory=dict)
    facts: list[Fact] = field(default_factory=list)
    json_tasks: list[JsonTask] = field(default_factory=list)  # demonstrated, then held out
    tools: list[ToolTask] = field(default_factory=list)  # demonstrated, then held out
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def build(cls, plan: LongRunPlan) -> Curriculum:
        rng = random.Random(plan.seed)
        days: dict[int, list[Task]] = {}
        taught: list[int] = []  # facts taught so far (indices), for recurring questions
        next_index = dict.fromkeys(KINDS, 0)
        for night in range(1, plan.nights + 1):
            n = plan.demos_per_night
            n_recur = round(plan.recurring * n) if taught else 0
            n_correct = round(plan.corrections * n) if "facts" in plan.kinds else 0
            n_new = max(n - n_recur - n_correct, 1)
            tasks = []
            for slot in range(n_new):  # kinds in turn, starting one later each day
                kind = plan.kinds[(slot + night - 1) % len(plan.kinds)]
                tasks.append(Task(night, kind, "new", next_index[kind]))
                next_index[kind] += 1
            for _ in range(n_correct):
                tasks.append(Task(night, "facts", "correct", next_index["facts"]))
                next_index["facts"] += 1
            for _ in range(n_recur):
                tasks.append(Task(night, "facts", "recur", rng.choice(taught)))
            taught += [t.index for t in tasks if t.kind == "facts" and t.mode != "recur"]
            days[night] = tasks
        counts = {kind: max(next_index[kind], 2) for kind in KINDS}
        return cls(
            plan=plan,
            days=days,
            facts=build_facts(counts["facts"], seed=plan.seed),
            json_tasks=build_json_tasks(2 * counts["json"], seed=plan.seed),
            tools=build_tool_tasks(2 * counts["tools"], seed=plan.seed),
            counts=counts,
        )

    def held_out(self, task: Task) -> list[Question]:
        """The questions that test what `task` teaches; none for a recurring question (its
        fact was tested from the night that taught it)."""
        if task.mode == "recur":
            return []
        if task.kind == "facts":
            fact = self.facts[task.index]
            return [
                Question(task.night, "facts", _asked(q), fact.is_correct)
                for q in fact.paraphrases[:2]
            ]
        if task.kind == "json":
            other = self.json_tasks[self.counts["json"] + task.index]
            return [Question(task.night, "json", _asked(other.question), other.is_correct)]
        other = self.tools[self.counts["tools"] + task.index]
        asked = _asked(other.question, tools=[TOOL_SPEC])
        return [Question(task.night, "tools", asked, calls_lab_leader(other.lab))]

    def questions(self, night: int) -> list[Question]:
        return [q for task in self.days[night] for q in self.held_out(task)]


def _asked(question: str, tools: list[dict] | None = None) -> list[ChatMessage]:
    """The question as the served app asks it: the one renderer's system line (with the bound
    tools' prompt, as `bind_tools` sends it), then the task."""
    return conversation([{"role": "user", "content": task_message(question)}], tools or ())
