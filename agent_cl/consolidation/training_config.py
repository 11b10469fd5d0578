"""Every knob of consolidation, validated before any model is loaded (TRL's config pattern).

A *method* is a named recipe: a preset of the loss weights below. Any weight given explicitly
overrides the preset, so new mixes need no new code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from agent_cl.config import LORA_PER_NIGHT
from agent_cl.consolidation.anchors import ANCHOR_POOLS

Teacher = Literal["base", "ema"]
TeacherPrompt = Literal["context", "turns", "context+turns"]
Reduction = Literal["sum", "mean"]

# Recipes, each a point on the learn/retain frontier (docs/results/consolidation.md).
RECIPES: dict[str, dict[str, Any]] = {
    # The paper's objective: on-policy reverse KL to the demonstration-conditioned teacher.
    "sdft": {"sdft_weight": 1.0},
    # Cross-entropy on the verified answer sentence.
    "sft": {"sft_weight": 1.0},
    # Cross-entropy on the bare expected answer (e.g. a name): learns fast, leaks it everywhere.
    "sft_name": {"sft_weight": 1.0, "sft_target": "expected"},
    # Cross-entropy on the in-context teacher's own greedy answer (sequence-level
    # self-distillation): the target carries the fact in the model's own words and style.
    "sft_self": {"sft_weight": 1.0, "sft_target": "teacher"},
    # sft_self + the KL-to-base anchor.
    "sft_self_kl": {"sft_weight": 1.0, "sft_target": "teacher", "anchor_kl_weight": 5.0},
    # SFT + the base model's own answers to general prompts (self-replay).
    "sft_replay": {"sft_weight": 1.0, "replay_weight": 1.0},
    # SFT + KL(student || base) on general prompts: self-distillation towards the base.
    "sft_kl": {"sft_weight": 1.0, "anchor_kl_weight": 5.0},
    # sft_kl with half of each anchor batch drawn from the prompts most like the night's own
    # questions, in a pool that also asks real facts the ways users' facts are asked: on one
    # facts night (8 demonstrations, 128 robust items) it learned as sft_kl did (0.81 of
    # held-out phrasings) and flipped 2 items, not 3 (benchmarks/night_kinds_forgetting.py).
    "sft_kl_near": {
        "sft_weight": 1.0,
        "anchor_kl_weight": 5.0,
        "anchor_pool": "world",
        "anchor_near_share": 0.5,
    },
    # sft_kl_near with the near prompts chosen by each demonstration's question *and answer*
    # (numbers alike): a night whose answers are numbers also anchors the base's sums and
    # counts, where such a night's numbers were measured to leak ("2 times 9 is 29"). Not the
    # default: on 6 paired runs of 16 varied facts robust retention moved +0.34 points
    # [-0.94, +1.55] and learning -0.02; arithmetic failures fell 18 -> 11, capitals rose
    # 0 -> 7 (docs/results/consolidation.md).
    "sft_kl_exchange": {
        "sft_weight": 1.0,
        "anchor_kl_weight": 5.0,
        "anchor_pool": "world",
        "anchor_near_share": 0.5,
        "anchor_near_by": "exchange",
    },
    # SFT + on-policy SDFT: SFT bootstraps the answer, SDFT shapes the student's own samples.
    "sdft_sft": {"sft_weight": 1.0, "sdft_weight": 1.0},
    # sdft_sft + the KL-to-base anchor.
    "sdft_sft_kl": {"sft_weight": 1.0, "sdft_weight": 1.0, "anchor_kl_weight": 5.0},
    # GKD-style mixing: half the sequences written by the teacher (forward KL on those).
    "gkd": {"sdft_weight": 1.0, "teacher_written_fraction": 0.5},
    # A short SFT phase, then pure SDFT.
    "sdft_warm": {"sdft_weight": 1.0, "sft_warmup_steps": 16},
}
METHODS: tuple[str, ...] = tuple(RECIPES)
MLP_MODULES = ("gate_proj", "up_proj", "down_proj")
# The default sits best on the measured frontier (docs/results/consolidation.md): with the
# defaults below (MLP-only LoRA, lr 5e-4, 128 steps x 4, anchor along the base's answers) it
# learned 16 invented facts to 0.78-0.91 of held-out paraphrases (teacher 0.94) while robust
# retention fell 0.8-2.4 points (bar: 3; 4 runs), KL from base 0.002-0.003, no leaks. Its
# anchor now looks where the night trains (sft_kl_near): the long run's first mixed night, the
# same 5 demonstrations, lost 7 of 128 robust items under sft_kl (rejected) and 1 under
# sft_kl_near (published), and 3 of 4 quick nights published, not 2
# (docs/results/long_run/README.md).
DEFAULT_METHOD = "sft_kl_near"


# Fields that take one of a few names, and the names (checked in `_validate`).
_CHOICES: dict[str, tuple[str, ...]] = {
    "device": ("auto", "cuda", "cpu"),
    "dtype": ("auto", "float32", "bfloat16", "float16"),
    "teacher": ("base", "ema"),
    "teacher_prompt": ("context", "turns", "context+turns"),
    "kl_reduction": ("sum", "mean"),
    "sft_target": ("answer", "expected", "teacher"),
    "anchor_samples": ("student", "base"),
    "anchor_pool": tuple(ANCHOR_POOLS),
    "anchor_near_by": ("question", "exchange"),
    "lora_per_night": LORA_PER_NIGHT,
}


@dataclass
class ConsolidationConfig:
    """How a sleep turns demonstrations into a LoRA adapter.

    Parameters that choose the objective:
        method: a named recipe from RECIPES (presets the weights below).
        sft_weight, sft_target: cross-entropy on the demonstrated "answer" sentence, on the
            "expected" string alone, or on the "teacher"'s greedy answer (the model with the
            demonstration in context, written once before training; a teacher answer that
            fails the demonstration's expected string falls back to the demonstrated answer).
        sdft_weight: on-policy reverse KL(student || teacher) along the student's own sample.
        teacher_written_fraction: share of SDFT sequences written by the teacher instead of
            sampled from the student (GKD's on-policy fraction, inverted); forward KL on those.
        sft_warmup_steps: steps of SFT only before the SDFT term starts.
        anchor_kl_weight: beta of KL(student || base) on general prompts (the retention anchor).
        anchor_samples: whose continuations of the general prompts the anchor runs along:
            "student" (fresh greedy samples every step, on-policy) or "base" (the base model's
            answers, computed once: cheaper).
        replay_weight: cross-entropy on the base model's own answers to general prompts.
    Parameters that control the teacher (sdft):
        teacher: "base" (frozen base weights) or "ema" (EMA of the student's adapter).
        teacher_prompt: how the demonstration enters the teacher's prompt.
    Parameters that control sampling: max_new_tokens, temperature, anchor_batch_size,
        anchor_max_new_tokens.
    Parameters that control optimisation: steps, batch_size, learning_rate, lora_*.
    """

    method: str = field(default=DEFAULT_METHOD, metadata={"help": f"recipe: {', '.join(RECIPES)}"})
    steps: int = field(default=128, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=4, metadata={"help": "demonstrations per step"})
    learning_rate: float = field(default=5e-4, metadata={"help": "AdamW learning rate"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    lora_r: int = field(default=8, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=16, metadata={"help": "LoRA alpha"})
    lora_dropout: float = field(default=0.0, metadata={"help": "LoRA dropout"})
    lora_per_night: str = field(
        default="continue",
        metadata={
            "help": "after the first night: 'continue' training the served adapter, or "
            "'fresh': a new LoRA on the earlier nights frozen, folded into one adapter "
            "(concatenated; SVD past the served rank)"
        },
    )
    # MLP-only LoRA kept 0.98 of the robust retention set where all-linear kept 0.91 at the
    # same new-skill accuracy: attention carries the general skills the facts must not touch.
    target_modules: str = field(
        default="mlp", metadata={"help": "peft target_modules: 'mlp', 'all-linear' or a,b,c"}
    )
    lora_layers: str = field(
        default="", metadata={"help": "decoder layers to adapt ('' all, '8-20' or '3,5,7')"}
    )
    augment_per_demo: int = field(
        default=0, metadata={"help": "teacher-written questions added per demonstration"}
    )
    augment_candidates: int = field(
        default=8, metadata={"help": "questions drawn per demonstration before the filter"}
    )
    sft_weight: float | None = field(default=None, metadata={"help": "weight of the SFT term"})
    sft_target: str | None = field(
        default=None, metadata={"help": "SFT target: 'answer', 'expected' or 'teacher'"}
    )
    sdft_weight: float | None = field(default=None, metadata={"help": "weight of the SDFT term"})
    teacher_written_fraction: float | None = field(
        default=None, metadata={"help": "share of SDFT sequences written by the teacher"}
    )
    sft_warmup_steps: int | None = field(
        default=None, metadata={"help": "SFT-only steps before SDFT starts"}
    )
    anchor_kl_weight: float | None = field(
        default=None, metadata={"help": "beta of KL(student || base) on general prompts"}
    )
    # "base" (the base's answers, computed once) reached the frontier point of "student"
    # (fresh greedy samples every step): new skill 0.78-0.91 vs 0.81, robust retention
    # 0.976-0.992 (4 runs) vs 0.968, at 40% of the step time (GPU; 1.9-2.2 vs 7-9 s on 2 CPU
    # cores).
    anchor_samples: str = field(
        default="base", metadata={"help": "anchor continuations: 'student' or 'base'"}
    )
    replay_weight: float | None = field(
        default=None, metadata={"help": "weight of SFT on the base's own general answers"}
    )
    anchor_pool: str | None = field(
        default=None,
        metadata={"help": f"anchor prompts: {', '.join(ANCHOR_POOLS)} (default: the recipe's)"},
    )
    anchor_batch_size: int = field(default=4, metadata={"help": "general prompts per step"})
    anchor_near_share: float | None = field(
        default=None,
        metadata={
            "help": "share of each anchor batch drawn from the prompts most like the night's "
            "questions (0: uniform over the pool; default: the recipe's)"
        },
    )
    anchor_near_by: str | None = field(
        default=None,
        metadata={
            "help": "what 'most like the night' compares: 'question' (the night's questions) "
            "or 'exchange' (question and answer, numbers alike, each demonstration in turn; "
            "default: the recipe's)"
        },
    )
    anchor_max_new_tokens: int = field(default=24, metadata={"help": "anchor continuation length"})
    teacher: Teacher = field(default="base", metadata={"help": "teacher weights: base or ema"})
    ema_rate: float = field(default=0.01, metadata={"help": "EMA rate per step (teacher=ema)"})
    teacher_prompt: TeacherPrompt = field(
        default="context", metadata={"help": "how the demonstration enters the teacher prompt"}
    )
    max_new_tokens: int = field(default=32, metadata={"help": "student sample length (sdft)"})
    temperature: float = field(default=1.0, metadata={"help": "student sampling temperature"})
    kl_reduction: Reduction = field(
        default="sum", metadata={"help": "sum or mean the per-token SDFT KL over the sample"}
    )
    device: str = field(default="auto", metadata={"help": "auto (CUDA if present), cuda or cpu"})
    dtype: str = field(default="auto", metadata={"help": "auto (fp32, on CUDA or CPU), ..."})
    seed: int = field(default=0, metadata={"help": "seed for data order and sampling"})
    log_every: int = field(default=1, metadata={"help": "steps between metric records"})

    def __post_init__(self) -> None:
        if self.method not in RECIPES:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {self.method!r}")
        preset = RECIPES[self.method]
        defaults = {
            "sft_weight": 0.0,
            "sft_target": "answer",
            "sdft_weight": 0.0,
            "teacher_written_fraction": 0.0,
            "sft_warmup_steps": 0,
            "anchor_kl_weight": 0.0,
            "replay_weight": 0.0,
            "anchor_pool": "general",
            "anchor_near_share": 0.0,
            "anchor_near_by": "question",
        }
        for name, fallback in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, preset.get(name, fallback))
        self._validate()

    def _validate(self) -> None:
        for name, allowed in _CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}"
                )
        for name in (
            "steps",
            "batch_size",
            "lora_r",
            "lora_alpha",
            "max_new_tokens",
            "log_every",
            "anchor_batch_size",
            "anchor_max_new_tokens",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("sft_weight", "sdft_weight", "anchor_kl_weight", "replay_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not (self.sft_weight or self.sdft_weight):
            raise ValueError("nothing to learn from: sft_weight and sdft_weight are both 0")
        if not 0 <= self.teacher_written_fraction <= 1:
            raise ValueError("teacher_written_fraction must be in [0, 1]")
        if self.sft_warmup_steps < 0:
            raise ValueError(f"sft_warmup_steps must be >= 0, got {self.sft_warmup_steps}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not 0 < self.ema_rate <= 1:
            raise ValueError(f"ema_rate must be in (0, 1], got {self.ema_rate}")
        if self.temperature <= 0:
            raise ValueError(
                f"temperature must be > 0 (on-policy sampling), got {self.temperature}"
            )
        if self.augment_per_demo < 0:
            raise ValueError(f"augment_per_demo must be >= 0, got {self.augment_per_demo}")
        if self.augment_per_demo and self.augment_candidates < self.augment_per_demo:
            raise ValueError("augment_candidates must be >= augment_per_demo")
        _ = self.layers_to_transform  # validates lora_layers
        if not 0 <= self.anchor_near_share <= 1:
            raise ValueError(f"anchor_near_share must be in [0, 1], got {self.anchor_near_share}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")

    @property
    def uses_sdft(self) -> bool:
        return self.sdft_weight > 0

    @property
    def uses_anchor(self) -> bool:
        return self.anchor_kl_weight > 0 or self.replay_weight > 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def layers_to_transform(self) -> list[int] | None:
        """`lora_layers` as peft's layers_to_transform (None: every layer)."""
        spec = self.lora_layers.strip()
        if not spec:
            return None
        layers: list[int] = []
        try:
            for part in spec.split(","):
                lo, _, hi = part.strip().partition("-")
                layers += range(int(lo), int(hi or lo) + 1)
        except ValueError as exc:
            raise ValueError(f"lora_layers must look like '8-20' or '3,5,7', got {spec!r}") from exc
        if not layers or min(layers) < 0:
            raise ValueError(f"lora_layers must name layers >= 0, got {spec!r}")
        return sorted(set(layers))

    @property
    def peft_target_modules(self) -> str | list[str]:
        """'mlp' names the gated MLP projections of Llama-family models (SmolLM2, Gemma)."""
        if self.target_modules == "all-linear":
            return "all-linear"
        if self.target_modules == "mlp":
            return list(MLP_MODULES)
        return [m.strip() for m in self.target_modules.split(",") if m.strip()]
