"""The consolidation trainer: orchestration only (losses live in losses.py, teacher in teacher.py).

It loads its own copy of the base model (it never touches a served model), wraps it with a LoRA
adapter, trains on demonstrations with the configured objective and writes a PEFT adapter
directory. Both objectives share one data path: a prompt, a completion, and the logits at the
completion's positions gathered so that student and teacher line up token by token although
their prompts differ in length.
"""

from __future__ import annotations

import math
import random
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from agent_cl.consolidation.config import ConsolidationConfig
from agent_cl.consolidation.losses import (
    masked_sequence_loss,
    reverse_kl_per_token,
    token_cross_entropy,
)
from agent_cl.consolidation.prompts import student_messages, teacher_messages
from agent_cl.consolidation.teacher import EMATeacher, teacher_context
from agent_cl.memory.schema import Demonstration
from agent_cl.models.chat import (
    ChatMessage,
    generate_batch,
    generate_ids,
    load_causal_lm,
    load_tokenizer,
    render_prompt,
    set_torch_threads,
)


class NonFiniteLossError(RuntimeError):
    """Training produced NaN/inf; the run is aborted and nothing is published."""


@dataclass
class StepRecord:
    step: int
    loss: float
    seconds: float
    sample_seconds: float = 0.0
    # SDFT diagnostics: mean per-token KL at the tokens that spell the expected answer vs the
    # rest, and the share of student samples that contain the expected answer at all.
    kl_answer_tokens: float | None = None
    kl_other_tokens: float | None = None
    samples_with_answer: float | None = None


@dataclass
class TrainResult:
    adapter_dir: Path
    method: str
    steps: int
    seconds: float
    seconds_per_step: float
    peak_rss_mb: float
    final_loss: float
    history: list[StepRecord] = field(default_factory=list)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class ConsolidationTrainer:
    def __init__(
        self,
        model_dir: Path,
        config: ConsolidationConfig | None = None,
        *,
        torch_threads: int = 2,
        init_adapter: Path | None = None,
    ) -> None:
        from peft import LoraConfig, PeftModel, get_peft_model

        self.config = config or ConsolidationConfig()
        set_torch_threads(torch_threads)
        torch.manual_seed(self.config.seed)
        self.tokenizer = load_tokenizer(Path(model_dir))
        base = load_causal_lm(Path(model_dir))
        for param in base.parameters():
            param.requires_grad_(False)
        if init_adapter is not None:
            self.model = PeftModel.from_pretrained(base, init_adapter, is_trainable=True)
        else:
            lora = LoraConfig(
                r=self.config.lora_r,
                lora_alpha=self.config.lora_alpha,
                lora_dropout=self.config.lora_dropout,
                target_modules=self.config.peft_target_modules,
                task_type="CAUSAL_LM",
            )
            self.model = get_peft_model(base, lora)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]

    # -- data path -------------------------------------------------------------------------
    def _prompt_ids(self, conversations: Sequence[Sequence[ChatMessage]]) -> list[list[int]]:
        return [
            self.tokenizer(render_prompt(self.tokenizer, c), add_special_tokens=False).input_ids
            for c in conversations
        ]

    def completion_logits(
        self, prompts: list[list[int]], completions: list[list[int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits predicting each completion token: ([B, Tc, V], mask [B, Tc])."""
        pad = self.tokenizer.pad_token_id
        seqs = [p + c for p, c in zip(prompts, completions, strict=True)]
        width = max(len(s) for s in seqs)
        input_ids = torch.full((len(seqs), width), pad, dtype=torch.long)
        attention = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, seq in enumerate(seqs):  # right padding: positions stay 0..n-1 for every row
            input_ids[i, : len(seq)] = torch.tensor(seq)
            attention[i, : len(seq)] = 1
        logits = self.model(input_ids=input_ids, attention_mask=attention).logits
        t_c = max(len(c) for c in completions)
        offsets = torch.arange(t_c)
        starts = torch.tensor([len(p) - 1 for p in prompts])
        lengths = torch.tensor([len(c) for c in completions])
        mask = offsets[None, :] < lengths[:, None]
        index = (starts[:, None] + offsets[None, :]).clamp(max=width - 1)
        gathered = logits.gather(1, index[..., None].expand(-1, -1, logits.shape[-1]))
        return gathered, mask

    def _targets(self, completions: list[list[int]], t_c: int) -> torch.Tensor:
        targets = torch.full((len(completions), t_c), -100, dtype=torch.long)
        for i, comp in enumerate(completions):
            targets[i, : len(comp)] = torch.tensor(comp)
        return targets

    def _sample_completions(self, prompts_text: list[str]) -> list[list[int]]:
        """On-policy samples from the current student, cut after the first end-of-turn token."""
        was_training = self.model.training
        self.model.eval()
        ids = generate_ids(
            self.model,
            self.tokenizer,
            prompts_text,
            max_new_tokens=self.config.max_new_tokens,
            temperature=self.config.temperature,
        )
        self.model.train(was_training)
        eos = self.tokenizer.eos_token_id
        completions = []
        for row in ids.tolist():
            cut = row.index(eos) + 1 if eos in row else len(row)
            completions.append(row[:cut] or [eos])
        return completions

    # -- objectives ------------------------------------------------------------------------
    def _sdft_step(self, batch: list[Demonstration], ema: EMATeacher | None) -> StepRecord:
        cfg = self.config
        student_convs = [student_messages(d) for d in batch]
        t0 = time.perf_counter()
        student_text = [render_prompt(self.tokenizer, c) for c in student_convs]
        completions = self._sample_completions(student_text)
        sample_seconds = time.perf_counter() - t0
        student_prompts = self._prompt_ids(student_convs)
        teacher_prompts = self._prompt_ids([teacher_messages(d, cfg.teacher_prompt) for d in batch])
        with torch.no_grad(), teacher_context(self.model, ema):
            teacher_logits, _ = self.completion_logits(teacher_prompts, completions)
        student_logits, mask = self.completion_logits(student_prompts, completions)
        per_token = reverse_kl_per_token(student_logits, teacher_logits)
        loss = masked_sequence_loss(per_token, mask, reduction=cfg.kl_reduction)
        record = StepRecord(0, 0.0, 0.0, sample_seconds=sample_seconds)
        self._answer_diagnostics(record, batch, completions, per_token.detach(), mask)
        return self._apply(loss, record)

    def _sft_step(self, batch: list[Demonstration]) -> StepRecord:
        eos = self.tokenizer.eos_token_id
        prompts = self._prompt_ids([student_messages(d) for d in batch])
        completions = [
            [*self.tokenizer(d.answer, add_special_tokens=False).input_ids, eos] for d in batch
        ]
        logits, mask = self.completion_logits(prompts, completions)
        per_token = token_cross_entropy(logits, self._targets(completions, logits.shape[1]))
        loss = masked_sequence_loss(per_token, mask, reduction="mean")
        return self._apply(loss, StepRecord(0, 0.0, 0.0))

    def _apply(self, loss: torch.Tensor, record: StepRecord) -> StepRecord:
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"loss became {loss.item()}; aborting consolidation")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.trainable, self.config.max_grad_norm)
        self._optimizer.step()
        self._optimizer.zero_grad(set_to_none=True)
        record.loss = float(loss.item())
        return record

    def _answer_diagnostics(self, record, batch, completions, per_token, mask) -> None:
        """Where does the KL sit: on the tokens that spell the answer, or elsewhere?"""
        answer_kl: list[float] = []
        other_kl: list[float] = []
        hits = 0
        for i, (demo, comp) in enumerate(zip(batch, completions, strict=True)):
            expected = str(demo.metadata.get("expected", "")).lower()
            spans = _answer_token_flags(self.tokenizer, comp, expected)
            hits += any(spans)
            for j, flag in enumerate(spans):
                if mask[i, j]:
                    (answer_kl if flag else other_kl).append(float(per_token[i, j]))
        record.kl_answer_tokens = sum(answer_kl) / len(answer_kl) if answer_kl else None
        record.kl_other_tokens = sum(other_kl) / len(other_kl) if other_kl else None
        record.samples_with_answer = hits / len(batch)

    # -- loop ------------------------------------------------------------------------------
    def train(
        self,
        demonstrations: Sequence[Demonstration],
        out_dir: Path,
        *,
        on_step: Callable[[StepRecord], None] | None = None,
    ) -> TrainResult:
        if not demonstrations:
            raise ValueError("nothing to consolidate: no demonstrations given")
        cfg = self.config
        self._optimizer = torch.optim.AdamW(
            self.trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
        ema = EMATeacher(self.trainable, cfg.ema_rate) if cfg.teacher == "ema" else None
        rng = random.Random(cfg.seed)
        order: list[Demonstration] = []
        history: list[StepRecord] = []
        self.model.train()
        start = time.perf_counter()
        for step in range(1, cfg.steps + 1):
            batch = []
            while len(batch) < min(cfg.batch_size, len(demonstrations)):
                if not order:
                    order = list(demonstrations)
                    rng.shuffle(order)
                batch.append(order.pop())
            t0 = time.perf_counter()
            sdft = cfg.method == "sdft"
            record = self._sdft_step(batch, ema) if sdft else self._sft_step(batch)
            if ema is not None:
                ema.update()
            record.step, record.seconds = step, time.perf_counter() - t0
            if step % cfg.log_every == 0 or step == cfg.steps:
                history.append(record)
            if on_step is not None:
                on_step(record)
        seconds = time.perf_counter() - start
        self.model.eval()
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(out_dir)
        return TrainResult(
            adapter_dir=out_dir,
            method=cfg.method,
            steps=cfg.steps,
            seconds=seconds,
            seconds_per_step=seconds / cfg.steps,
            peak_rss_mb=peak_rss_mb(),
            final_loss=history[-1].loss if history else math.nan,
            history=history,
        )

    def generate(
        self, conversations: Sequence[Sequence[ChatMessage]], *, max_new_tokens: int = 48
    ) -> list[str]:
        """Greedy answers from the candidate (adapter on), for the sleep job's checks."""
        self.model.eval()
        return generate_batch(
            self.model, self.tokenizer, conversations, max_new_tokens=max_new_tokens
        )


def _answer_token_flags(tokenizer, completion: list[int], expected: str) -> list[bool]:
    """For each completion token, whether it overlaps the expected answer in the decoded text."""
    pieces = [tokenizer.decode([t], skip_special_tokens=True) for t in completion]
    text = "".join(pieces).lower()
    if not expected or expected not in text:
        return [False] * len(completion)
    begin = text.index(expected)
    end = begin + len(expected)
    flags, pos = [], 0
    for piece in pieces:
        flags.append(pos < end and pos + len(piece) > begin and bool(piece.strip()))
        pos += len(piece)
    return flags
