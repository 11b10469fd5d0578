"""Every knob of consolidation, validated before any model is loaded (TRL's config pattern)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Method = Literal["sdft", "sft"]
Teacher = Literal["base", "ema"]
TeacherPrompt = Literal["context", "turns", "context+turns"]
Reduction = Literal["sum", "mean"]
METHODS: tuple[str, ...] = ("sdft", "sft")


@dataclass
class ConsolidationConfig:
    """How a sleep turns demonstrations into a LoRA adapter.

    Parameters that choose the objective:
        method: "sdft" (the paper's on-policy self-distillation: the student samples its own
            answer to the bare query and is pulled towards the demonstration-conditioned teacher
            by per-token reverse KL) or "sft" (cross-entropy on the demonstrated answers).
    Parameters that control the teacher (sdft):
        teacher: "base" (frozen base weights) or "ema" (an exponential moving average of the
            student's adapter, updated every step at `ema_rate`).
        teacher_prompt: how the demonstration enters the teacher's prompt: "context" (the note
            before the question, as the agent saw it by day), "turns" (the demonstrated Q/A as
            an earlier turn), or both.
    Parameters that control student sampling (sdft):
        max_new_tokens, temperature: the on-policy sample's length and temperature.
    Parameters that control optimisation:
        steps, batch_size, learning_rate, lora_r, lora_alpha, lora_dropout, target_modules.
    """

    method: Method = field(default="sdft", metadata={"help": "objective: sdft or sft"})
    steps: int = field(default=64, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=8, metadata={"help": "demonstrations per step"})
    learning_rate: float = field(default=2e-3, metadata={"help": "AdamW learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout"})
    target_modules: str = field(
        default="all-linear", metadata={"help": "peft target_modules ('all-linear' or a,b,c)"}
    )
    teacher: Teacher = field(default="base", metadata={"help": "teacher weights: base or ema"})
    ema_rate: float = field(default=0.01, metadata={"help": "EMA rate per step (teacher=ema)"})
    teacher_prompt: TeacherPrompt = field(
        default="context", metadata={"help": "how the demonstration enters the teacher prompt"}
    )
    max_new_tokens: int = field(default=32, metadata={"help": "student sample length (sdft)"})
    temperature: float = field(default=1.0, metadata={"help": "student sampling temperature"})
    kl_reduction: Reduction = field(
        default="sum", metadata={"help": "sum or mean the per-token KL over the sample"}
    )
    seed: int = field(default=0, metadata={"help": "seed for data order and sampling"})
    log_every: int = field(default=1, metadata={"help": "steps between metric records"})

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.teacher not in ("base", "ema"):
            raise ValueError(f"teacher must be 'base' or 'ema', got {self.teacher!r}")
        if self.teacher_prompt not in ("context", "turns", "context+turns"):
            raise ValueError(f"unknown teacher_prompt {self.teacher_prompt!r}")
        if self.kl_reduction not in ("sum", "mean"):
            raise ValueError(f"kl_reduction must be 'sum' or 'mean', got {self.kl_reduction!r}")
        for name in ("steps", "batch_size", "lora_r", "lora_alpha", "max_new_tokens", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0 < self.ema_rate <= 1:
            raise ValueError(f"ema_rate must be in (0, 1], got {self.ema_rate}")
        if self.temperature <= 0:
            raise ValueError(
                f"temperature must be > 0 (on-policy sampling), got {self.temperature}"
            )
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def peft_target_modules(self) -> str | list[str]:
        if self.target_modules == "all-linear":
            return "all-linear"
        return [m.strip() for m in self.target_modules.split(",") if m.strip()]
