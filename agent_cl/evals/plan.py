"""What an evaluation run measures and how big it is, validated before any model loads.

The sizes live in one place so a resumed run can check it is continuing the same experiment:
results measured at another size are never mixed into one table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from agent_cl.consolidation.training_config import DEFAULT_METHOD, RECIPES
from agent_cl.evals.suites import KNOWN_SUITES, SUITES
from agent_cl.graphs.middleware import DEFAULT_MIN_SCORE

# Methods compared on the same model, demonstrations and LoRA budget. `text` and the `+text`
# method add retrieved demonstrations to the prompt; the others ask with nothing in context.
METHODS: dict[str, dict[str, Any]] = {
    "none": {"recipe": None, "memory": False},
    "text": {"recipe": None, "memory": True},
    # The agent's own text memory: top-k kept only at cosine >= its cut (build_agent's default).
    "text-gated": {"recipe": None, "memory": True, "min_score": DEFAULT_MIN_SCORE},
    "sft": {"recipe": "sft", "memory": False},
    "sdft": {"recipe": "sdft", "memory": False},
    "default": {"recipe": DEFAULT_METHOD, "memory": False},
    "default+text": {"recipe": DEFAULT_METHOD, "memory": True},
}
# the agent's own memory (text-gated) beside plain top-k: the baseline a user actually runs
DEFAULT_METHODS = ("none", "text-gated", "text", "sft", "sdft", "default", "default+text")
EXPERIMENTS = ("one-night", "sequential", "scaling")
# Fields that change what a number means; a resumed run must match them.
SIZING = (
    "n_demos",
    "steps_per_demo",
    "steps",
    "scaling_steps",
    "text_k",
    "min_score",
    "retention_limit",
    "kl_prompts",
    "max_new_tokens",
)


@dataclass
class EvalPlan:
    """The experiments of `agent-cl eval` (docs/results/eval/ holds a full run)."""

    suites: tuple[str, ...] = SUITES
    methods: tuple[str, ...] = DEFAULT_METHODS
    seeds: int = 3
    experiments: tuple[str, ...] = EXPERIMENTS
    # 8 demonstrations a suite: a night of 64 steps, affordable on 2 CPU cores for every
    # method (SDFT samples on-policy at ~4 s a step there); `--demos 16` is the demo's size.
    n_demos: int = 8
    steps_per_demo: int = 8  # the night's default budget (NightPlan.steps_per_demo)
    steps: int | None = None  # a fixed step count for every night instead
    sequential_methods: tuple[str, ...] = ("default", "sft")
    scaling_suite: str = "facts"
    scaling_sizes: tuple[int, ...] = (8, 32, 128)
    # Scaling holds the night's compute fixed (one default night of n_demos), so it asks how
    # many demonstrations one night absorbs (at steps_per_demo it would be a longer night).
    scaling_steps: int = 64
    text_k: int = 2
    # Plain top-k, the LangMem/ExpeL-style baseline. The agent's own cut (0.8, tuned on facts)
    # starves procedural skills: measured on 8 demonstrations, text memory at 0.8 vs top-k
    # answered json 0.375 vs 0.75 and tools 0.0 vs 0.875 (their questions score 0.7-0.8).
    min_score: float = 0.0
    # 128 robust prompts (a seeded sample; the whole frozen set is 346): ~30 s per model on 2
    # CPU cores instead of ~90. None: the whole set, as the gate asks it.
    retention_limit: int | None = 128
    kl_prompts: int | None = None  # None: all open prompts
    latency_requests: int = 8
    max_new_tokens: int = 40  # the gate's answer length
    extra: dict[str, Any] = field(default_factory=dict)  # ConsolidationConfig overrides

    def __post_init__(self) -> None:
        self.suites = _known("suite", self.suites, KNOWN_SUITES)
        self.methods = _known("method", self.methods, tuple(METHODS))
        self.experiments = _known("experiment", self.experiments, EXPERIMENTS)
        self.sequential_methods = _known(
            "sequential method", self.sequential_methods, _trained(tuple(METHODS))
        )
        if self.scaling_suite not in KNOWN_SUITES:
            raise ValueError(f"unknown scaling suite {self.scaling_suite!r}")
        for name in ("seeds", "n_demos", "steps_per_demo", "scaling_steps", "text_k"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_demos < 2 or min(self.scaling_sizes, default=2) < 2:
            raise ValueError("every suite needs at least 2 demonstrations")
        if self.steps is not None and self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        for name in ("retention_limit", "kl_prompts"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (or None: all), got {getattr(self, name)}")
        if self.latency_requests < 1 or self.max_new_tokens < 1:
            raise ValueError("latency_requests and max_new_tokens must be >= 1")
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {self.min_score}")
        for recipe in {METHODS[m]["recipe"] for m in self.methods} - {None}:
            if recipe not in RECIPES:
                raise ValueError(f"method recipe {recipe!r} is not a consolidation recipe")

    @classmethod
    def quick(cls, **overrides: Any) -> EvalPlan:
        """The smoke run `make test` does (a few minutes on 2 cores): every experiment, suite
        and method, tiny sizes. Its numbers show the harness works, not what the methods do."""
        sizes = {
            "seeds": 1,
            "n_demos": 4,
            "steps": 4,
            "sequential_methods": ("default",),
            "scaling_sizes": (2, 4),
            "scaling_steps": 4,
            "retention_limit": 16,
            "kl_prompts": 4,
            "latency_requests": 1,
            "max_new_tokens": 32,
        }
        return cls(**{**sizes, **overrides})

    def night_steps(self, n_demos: int) -> int:
        return self.steps or self.steps_per_demo * n_demos

    @property
    def trained_methods(self) -> tuple[str, ...]:
        return _trained(self.methods)

    def sizing(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SIZING}

    def to_dict(self) -> dict[str, Any]:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }


def _trained(methods: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(m for m in methods if METHODS[m]["recipe"] is not None)


def _known(what: str, values, allowed: tuple[str, ...]) -> tuple[str, ...]:
    values = tuple(values)
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise ValueError(f"unknown {what} {', '.join(unknown)}; choose from {', '.join(allowed)}")
    if not values:
        raise ValueError(f"name at least one {what}")
    return tuple(dict.fromkeys(values))
