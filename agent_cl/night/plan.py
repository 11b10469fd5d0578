"""What each night does, derived from `Settings` and nothing else.

`Settings` owns the night's defaults and their validation (one field each, `sleep_*` and
`gate_*`); the recipe names belong to `ConsolidationConfig` and the gate's own invariants to
`GateConfig`. This object only translates, so the CLI, the daemon, the demo and the benchmarks
cannot disagree about a default: they all change a night by changing its `Settings`.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent_cl.config import Settings
from agent_cl.consolidation.training_config import DEFAULT_METHOD, ConsolidationConfig
from agent_cl.night.gate import GateConfig


@dataclass(frozen=True)
class NightPlan:
    method: str
    steps: int | None  # None: `steps_per_demo` x the demonstrations the night claims
    steps_per_demo: int
    gate: bool
    max_retention_drop: float
    max_drop_from_base: float
    max_kl_from_base: float
    replay: int  # consolidated demonstrations mixed into each night's training
    max_demos: int | None  # the night's budget (None: every pending demonstration)
    max_attempts: int  # nights a demonstration may be trained in before a rejection is final
    checkpoint_every: int
    seed: int
    lora_per_night: str = "continue"  # or "fresh": a new LoRA on the earlier nights frozen
    replay_recent: float = 0.0  # share of the replay taken from the newest night's demonstrations
    dtype: str = "auto"  # training and gate precision ("auto": fp32, on CUDA or CPU)
    lora_rank: int = 8  # the LoRA a night trains (alpha twice it)
    replay_steps_per_demo: int | None = None  # None: a replayed demonstration trains as a new one
    gate_shrink: tuple[float, ...] = ()  # shares of a rejected night's update tried in turn

    @classmethod
    def from_settings(cls, settings: Settings) -> NightPlan:
        """The plan `settings` describe; building it checks the recipe and the gate, so a bad
        night fails here, before any model loads."""
        plan = cls(
            method=settings.sleep_method or DEFAULT_METHOD,
            steps=settings.sleep_steps,
            steps_per_demo=settings.sleep_steps_per_demo,
            gate=settings.gate_enabled,
            max_retention_drop=settings.gate_max_retention_drop,
            max_drop_from_base=settings.gate_max_drop_from_base,
            max_kl_from_base=settings.gate_max_kl_from_base,
            replay=settings.sleep_replay,
            max_demos=settings.sleep_max_demos,
            max_attempts=settings.sleep_max_attempts,
            checkpoint_every=settings.sleep_checkpoint_every,
            seed=settings.seed,
            lora_per_night=settings.sleep_lora_per_night,
            replay_recent=settings.sleep_replay_recent,
            dtype=settings.sleep_dtype,
            lora_rank=settings.sleep_lora_rank,
            replay_steps_per_demo=settings.sleep_replay_steps_per_demo,
            gate_shrink=settings.gate_shrink,
        )
        plan.consolidation()
        plan.gate_config()
        return plan

    def consolidation(self) -> ConsolidationConfig:
        steps = {} if self.steps is None else {"steps": self.steps}
        return ConsolidationConfig(
            method=self.method,
            seed=self.seed,
            lora_per_night=self.lora_per_night,
            dtype=self.dtype,
            lora_r=self.lora_rank,
            lora_alpha=2 * self.lora_rank,
            **steps,
        )

    def gate_config(self) -> GateConfig | None:
        if not self.gate:
            return None
        return GateConfig(
            max_retention_drop=self.max_retention_drop,
            max_drop_from_base=self.max_drop_from_base,
            max_kl_from_base=self.max_kl_from_base,
            shrink=self.gate_shrink,
        )

    @property
    def night_steps_per_demo(self) -> int | None:
        """What the sleep job sizes training by: a fixed `steps` wins over the per-demo rate."""
        return None if self.steps is not None else self.steps_per_demo
