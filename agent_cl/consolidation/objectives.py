"""The loss terms a consolidation step combines, each computed and backpropagated at once.

Both objectives share one data path: a prompt, a completion, and the logits at the
completion's positions gathered so that student and teacher line up token by token although
their prompts differ in length. The terms live apart from the training loop so each file reads
as one concern; they are a mixin because every term needs the same live model, tokenizer and
config the trainer owns, and tests call them on a trainer directly.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

import torch

from agent_cl.consolidation.distributed import DataParallel
from agent_cl.consolidation.losses import (
    forward_kl_per_token,
    masked_sequence_loss,
    reverse_kl_per_token,
    token_cross_entropy,
)
from agent_cl.consolidation.prompts import student_messages, teacher_messages
from agent_cl.consolidation.records import StepRecord
from agent_cl.consolidation.sequences import completion_logits, prompt_ids, sample_completions
from agent_cl.consolidation.teacher import EMATeacher, teacher_context
from agent_cl.consolidation.training_config import ConsolidationConfig
from agent_cl.memory.schema import Demonstration
from agent_cl.models.chat import ChatMessage, generate_batch, render_prompt
from agent_cl.scoring.matching import answer_matches


class NonFiniteLossError(RuntimeError):
    """Training produced NaN/inf; the run is aborted and nothing is published."""


# (model dir, device, dtype, anchor prompts, length) -> the base's answer token ids
_BASE_ANSWERS: dict[tuple, list[list[int]]] = {}


class ObjectiveTerms:
    """The SFT, SDFT, anchor-KL and replay terms, for a class that sets the attributes below
    (`ConsolidationTrainer` does, in its constructor)."""

    config: ConsolidationConfig
    model: Any  # a PEFT model: the terms switch its adapter off for base and teacher logits
    tokenizer: Any
    device: torch.device
    parallel: DataParallel
    anchor_prompts: list[str]
    near_anchors: list[int]  # indices into anchor_prompts, most like the night's questions
    generate_batch_size: int
    _base_key: tuple
    _teacher_answers: dict[str, str]
    teacher_answers_kept: int

    # -- data path (sequences.py) -----------------------------------------------------------
    def _prompt_ids(self, conversations: Sequence[Sequence[ChatMessage]]) -> list[list[int]]:
        return prompt_ids(self.tokenizer, conversations)

    def completion_logits(
        self, prompts: list[list[int]], completions: list[list[int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return completion_logits(self.model, self.tokenizer, prompts, completions, self.device)

    def _targets(self, completions: list[list[int]], t_c: int) -> torch.Tensor:
        targets = torch.full((len(completions), t_c), -100, dtype=torch.long)
        for i, comp in enumerate(completions):
            targets[i, : len(comp)] = torch.tensor(comp)
        return targets.to(self.device)

    # -- objectives: each term computes its loss and backpropagates at once (less memory) --
    def _sdft_term(
        self,
        batch: list[Demonstration],
        ema: EMATeacher | None,
        record: StepRecord,
        weight: float,
    ) -> float:
        cfg = self.config
        n_teacher = round(cfg.teacher_written_fraction * len(batch))
        on_policy, teacher_written = batch[n_teacher:], batch[:n_teacher]
        total = 0.0
        t0 = time.perf_counter()
        samples: list[tuple[list[Demonstration], list[list[int]], bool]] = []
        if on_policy:
            prompts = [render_prompt(self.tokenizer, student_messages(d)) for d in on_policy]
            samples.append((on_policy, self._sample(prompts, greedy=False), False))
        if teacher_written:
            prompts = [
                render_prompt(self.tokenizer, teacher_messages(d, cfg.teacher_prompt))
                for d in teacher_written
            ]
            with teacher_context(self.model, ema):
                written = self._sample(prompts, greedy=False)
            samples.append((teacher_written, written, True))
        record.sample_seconds += time.perf_counter() - t0
        for demos, completions, written_by_teacher in samples:
            teacher_prompts = self._prompt_ids(
                [teacher_messages(d, cfg.teacher_prompt) for d in demos]
            )
            with torch.no_grad(), teacher_context(self.model, ema):
                teacher_logits, _ = self.completion_logits(teacher_prompts, completions)
            student_prompts = self._prompt_ids([student_messages(d) for d in demos])
            student_logits, mask = self.completion_logits(student_prompts, completions)
            divergence = forward_kl_per_token if written_by_teacher else reverse_kl_per_token
            per_token = divergence(student_logits, teacher_logits)
            loss = masked_sequence_loss(per_token, mask, reduction=cfg.kl_reduction)
            share = len(demos) / len(batch)
            self._backward(weight * share * loss)
            total += share * float(loss.detach())
            if not written_by_teacher:
                self._answer_diagnostics(record, demos, completions, per_token.detach(), mask)
        return total

    def _sft_term(self, batch: list[Demonstration], weight: float) -> float:
        eos = self.tokenizer.eos_token_id
        targets = [self._sft_text(d) for d in batch]
        prompts = self._prompt_ids([student_messages(d) for d in batch])
        completions = [
            [*self.tokenizer(t, add_special_tokens=False).input_ids, eos] for t in targets
        ]
        loss = self._cross_entropy(prompts, completions)
        self._backward(weight * loss)
        return float(loss.detach())

    def _sft_text(self, demo: Demonstration) -> str:
        if self.config.sft_target == "expected":
            expected = str(demo.metadata.get("expected", "")).strip()
            if not expected:
                raise ValueError(
                    f"sft_target='expected' needs metadata['expected'] on every demonstration; "
                    f"{demo.id} has none"
                )
            return expected
        if self.config.sft_target == "teacher":
            return self._teacher_answers[demo.id]
        return demo.answer

    def _write_teacher_answers(self, demonstrations: Sequence[Demonstration]) -> None:
        """The in-context teacher's greedy answer to each demonstration, once, before the
        adapter moves; kept only when it still contains the demonstration's expected answer."""
        self._teacher_answers = {}
        todo = list(demonstrations)
        convs = [teacher_messages(d, self.config.teacher_prompt) for d in todo]
        with teacher_context(self.model, None):
            answers = generate_batch(self.model, self.tokenizer, convs, max_new_tokens=48)
        for demo, answer in zip(todo, answers, strict=True):
            expected = str(demo.metadata.get("expected", "")).strip()
            ok = bool(answer) and (not expected or answer_matches(answer, expected))
            self._teacher_answers[demo.id] = answer if ok else demo.answer
        self.teacher_answers_kept = sum(
            self._teacher_answers[d.id] != d.answer for d in demonstrations
        )

    def _cross_entropy(
        self, prompts: list[list[int]], completions: list[list[int]]
    ) -> torch.Tensor:
        logits, mask = self.completion_logits(prompts, completions)
        per_token = token_cross_entropy(logits, self._targets(completions, logits.shape[1]))
        return masked_sequence_loss(per_token, mask, reduction="mean")

    def _anchor_terms(self, rng: random.Random, record: StepRecord) -> dict[str, float]:
        """KL(student || base) and/or self-replay on a few general prompts."""
        cfg = self.config
        drawn = self._draw_anchors(rng)
        picks = self.parallel.shard(drawn)
        scale = self.parallel.scale(len(picks), len(drawn))
        terms: dict[str, float] = {}
        if not picks:
            return terms
        convs = [[{"role": "user", "content": self.anchor_prompts[i]}] for i in picks]
        prompts = self._prompt_ids(convs)
        if cfg.anchor_kl_weight > 0:
            if cfg.anchor_samples == "student":
                t0 = time.perf_counter()
                texts = [render_prompt(self.tokenizer, c) for c in convs]
                completions = self._sample(texts, greedy=True, max_new=cfg.anchor_max_new_tokens)
                record.sample_seconds += time.perf_counter() - t0
            else:
                completions = [self._base_answer_ids()[i] for i in picks]
            with torch.no_grad(), self.model.disable_adapter():
                base_logits, _ = self.completion_logits(prompts, completions)
            student_logits, mask = self.completion_logits(prompts, completions)
            per_token = reverse_kl_per_token(student_logits, base_logits)
            loss = masked_sequence_loss(per_token, mask, reduction="mean")
            self._backward(scale * cfg.anchor_kl_weight * loss)
            terms["anchor_kl"] = float(loss.detach())
        if cfg.replay_weight > 0:
            completions = [self._base_answer_ids()[i] for i in picks]
            loss = self._cross_entropy(prompts, completions)
            self._backward(scale * cfg.replay_weight * loss)
            terms["replay"] = float(loss.detach())
        return terms

    def _draw_anchors(self, rng: random.Random) -> list[int]:
        """This step's anchor prompts: `anchor_near_share` of the batch from the prompts most
        like the night's questions (`near_anchors`, set by `train`), the rest from the pool."""
        cfg, pool = self.config, len(self.anchor_prompts)
        size = min(cfg.anchor_batch_size, pool)
        n_near = min(round(size * cfg.anchor_near_share), len(self.near_anchors))
        if not n_near:  # the uniform draw, exactly as before the option existed
            return rng.sample(range(pool), size)
        drawn = rng.sample(self.near_anchors, n_near)
        taken = set(drawn)
        return drawn + rng.sample([i for i in range(pool) if i not in taken], size - n_near)

    def _base_answer_ids(self) -> list[list[int]]:
        """The base model's greedy answers to every anchor prompt, computed once per process:
        they depend only on the base weights, so a process that trains many adapters (a
        daemon, `agent-cl eval`) pays the ~20 s on 2 CPU cores once."""
        if self._base_key not in _BASE_ANSWERS:
            texts = [
                render_prompt(self.tokenizer, [{"role": "user", "content": p}])
                for p in self.anchor_prompts
            ]
            answers: list[list[int]] = []
            with self.model.disable_adapter():
                step = self.generate_batch_size
                for start in range(0, len(texts), step):
                    answers += self._sample(
                        texts[start : start + step],
                        greedy=True,
                        max_new=self.config.anchor_max_new_tokens,
                    )
            _BASE_ANSWERS[self._base_key] = answers
        return _BASE_ANSWERS[self._base_key]

    def _sample(
        self, prompts_text: list[str], *, greedy: bool, max_new: int | None = None
    ) -> list[list[int]]:
        """Samples from the live model (or the teacher inside `teacher_context`), cut after eos."""
        return sample_completions(
            self.model,
            self.tokenizer,
            prompts_text,
            max_new_tokens=max_new or self.config.max_new_tokens,
            temperature=0.0 if greedy else self.config.temperature,
        )

    def _backward(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"loss became {loss.item()}; aborting consolidation")
        loss.backward()

    def _answer_diagnostics(
        self,
        record: StepRecord,
        batch: list[Demonstration],
        completions: list[list[int]],
        per_token: torch.Tensor,
        mask: torch.Tensor,
    ) -> None:
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
        record.samples_with_answer = hits / len(batch) if batch else None


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
