"""The consolidation trainer: orchestration only (losses live in losses.py, teacher in teacher.py).

It loads its own copy of the base model (it never touches a served model), wraps it with a LoRA
adapter, trains on demonstrations with the configured objective and writes a PEFT adapter
directory. Both objectives share one data path: a prompt, a completion, and the logits at the
completion's positions gathered so that student and teacher line up token by token although
their prompts differ in length.
"""

from __future__ import annotations

import logging
import math
import os
import random
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from agent_cl.consolidation import trajectories
from agent_cl.consolidation.anchors import anchor_prompts as named_anchor_prompts
from agent_cl.consolidation.augment import teacher_augment
from agent_cl.consolidation.candidate import CandidateModel
from agent_cl.consolidation.config import ConsolidationConfig
from agent_cl.consolidation.distributed import DataParallel
from agent_cl.consolidation.losses import (
    forward_kl_per_token,
    masked_sequence_loss,
    reverse_kl_per_token,
    token_cross_entropy,
)
from agent_cl.consolidation.prompts import student_messages, teacher_messages
from agent_cl.consolidation.sequences import completion_logits, prompt_ids, sample_completions
from agent_cl.consolidation.teacher import EMATeacher, teacher_context
from agent_cl.durable import atomic_write
from agent_cl.faults import fault_point
from agent_cl.memory.schema import Demonstration
from agent_cl.models.chat import (
    ChatMessage,
    generate_batch,
    generation_batch_size,
    load_causal_lm,
    load_tokenizer,
    render_prompt,
    set_torch_threads,
)
from agent_cl.scoring.matching import answer_matches

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Training produced NaN/inf; the run is aborted and nothing is published."""


@dataclass
class StepRecord:
    step: int
    loss: float
    seconds: float
    sample_seconds: float = 0.0
    terms: dict[str, float] = field(default_factory=dict)  # each weighted term's raw value
    # SDFT diagnostics: mean per-token KL at the tokens that spell the expected answer vs the
    # rest, and the share of student samples that contain the expected answer at all.
    kl_answer_tokens: float | None = None
    kl_other_tokens: float | None = None
    samples_with_answer: float | None = None
    total_steps: int = 0  # the run's length, for progress displays


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
    resumed_from_step: int = 0  # > 0 when training continued from a checkpoint
    augmented: int = 0  # teacher-written demonstrations added to the given ones


class _Run:
    """The mutable state of one training run: data order, random state, teacher, history."""

    def __init__(self, data: list[Demonstration], rng: random.Random, ema, batch_size: int):
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


class Checkpoint:
    """One training-state file, replaced atomically so a kill never leaves half of one. It is a
    cache of work done: a damaged one is set aside and training starts over (nothing lost but
    time), rather than failing the tenant's night every night."""

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / "checkpoint.pt"

    def load(self) -> dict | None:
        try:
            return torch.load(self.path, weights_only=False)
        except FileNotFoundError:
            return None
        except Exception as exc:  # torch raises several kinds on a truncated or foreign file
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            os.replace(self.path, aside)
            log.warning(
                "checkpoint %s unreadable (%s); moved to %s, training from step 0",
                self.path,
                exc,
                aside,
            )
            return None

    def save(self, state: dict) -> None:
        atomic_write(self.path, lambda fh: torch.save(state, fh))


def resolve_device(device: str, dtype: str) -> tuple[torch.device, str]:
    """ "auto" trains on CUDA in bf16 when a GPU is there, else on CPU in fp32."""
    cuda = torch.cuda.is_available()
    if device == "cuda" and not cuda:
        raise RuntimeError("device='cuda' but no CUDA GPU is visible (install the [gpu] extra)")
    chosen = torch.device("cuda" if device == "cuda" or (device == "auto" and cuda) else "cpu")
    if dtype == "auto":
        dtype = "bfloat16" if chosen.type == "cuda" else "float32"
    return chosen, dtype


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# (model dir, device, dtype, anchor prompts, length) -> the base's answer token ids
_BASE_ANSWERS: dict[tuple, list[list[int]]] = {}


class ConsolidationTrainer:
    def __init__(
        self,
        model_dir: Path,
        config: ConsolidationConfig | None = None,
        *,
        torch_threads: int = 2,
        init_adapter: Path | None = None,
        anchor_prompts: Sequence[str] | None = None,
    ) -> None:
        from peft import LoraConfig, PeftModel, get_peft_model

        self.config = config or ConsolidationConfig()
        self.parallel = DataParallel()
        set_torch_threads(torch_threads)
        torch.manual_seed(self.config.seed)
        self.tokenizer = load_tokenizer(Path(model_dir))
        self.device, dtype = resolve_device(self.config.device, self.config.dtype)
        base = load_causal_lm(Path(model_dir), dtype=dtype).to(self.device)
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
                layers_to_transform=self.config.layers_to_transform,
                task_type="CAUSAL_LM",
            )
            self.model = get_peft_model(base, lora)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.anchor_prompts = list(anchor_prompts or named_anchor_prompts(self.config.anchor_pool))
        if self.config.uses_anchor and not self.anchor_prompts:
            raise ValueError("the anchor/replay terms need at least one general prompt")
        # what the base's anchor answers depend on (the weights, device, prompts, length)
        self._base_key = (
            str(Path(model_dir).resolve()),
            str(self.device),
            dtype,
            tuple(self.anchor_prompts),
            self.config.anchor_max_new_tokens,
        )
        self.augmented: list[Demonstration] = []
        self.generate_batch_size = generation_batch_size(self.device)

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
        self, batch: list[Demonstration], ema: EMATeacher | None, record, weight: float
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
        self._teacher_answers: dict[str, str] = {}
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

    def _cross_entropy(self, prompts, completions) -> torch.Tensor:
        logits, mask = self.completion_logits(prompts, completions)
        per_token = token_cross_entropy(logits, self._targets(completions, logits.shape[1]))
        return masked_sequence_loss(per_token, mask, reduction="mean")

    def _anchor_terms(self, rng: random.Random, record) -> dict[str, float]:
        """KL(student || base) and/or self-replay on a few general prompts."""
        cfg = self.config
        drawn = rng.sample(
            range(len(self.anchor_prompts)), min(cfg.anchor_batch_size, len(self.anchor_prompts))
        )
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

    def _step(self, batch, ema, rng, step: int) -> StepRecord:
        cfg = self.config
        record = StepRecord(step, 0.0, 0.0, total_steps=cfg.steps)
        warming_up = step <= cfg.sft_warmup_steps
        weights = {
            "sft": cfg.sft_weight or (1.0 if warming_up else 0.0),
            "sdft": 0.0 if warming_up else cfg.sdft_weight,
            "anchor_kl": cfg.anchor_kl_weight,
            "replay": cfg.replay_weight,
        }
        shard = self.parallel.shard(batch)  # the whole batch in a single process
        scale = self.parallel.scale(len(shard), len(batch))
        if weights["sft"] > 0 and shard:
            record.terms["sft"] = self._sft_term(shard, scale * weights["sft"])
        if weights["sdft"] > 0 and shard:
            record.terms["sdft"] = self._sdft_term(shard, ema, record, scale * weights["sdft"])
        if cfg.uses_anchor:
            record.terms.update(self._anchor_terms(rng, record))
        record.loss = sum(weights[k] * v for k, v in record.terms.items())
        self.parallel.average_gradients(self.trainable)
        torch.nn.utils.clip_grad_norm_(self.trainable, cfg.max_grad_norm)
        self._optimizer.step()
        self._optimizer.zero_grad(set_to_none=True)
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
        record.samples_with_answer = hits / len(batch) if batch else None

    # -- loop ------------------------------------------------------------------------------
    def train(
        self,
        demonstrations: Sequence[Demonstration],
        out_dir: Path,
        *,
        on_step: Callable[[StepRecord], None] | None = None,
        checkpoint_dir: Path | None = None,
        checkpoint_every: int = 0,
        exclude_questions: Sequence[str] = (),
    ) -> TrainResult:
        """Train and save the adapter to `out_dir`.

        With `checkpoint_dir` and `checkpoint_every` > 0 the full training state (adapter,
        optimizer, data order, random state, EMA, history, augmented data) is saved atomically
        every that many steps, and a checkpoint found there at start is resumed from: a killed
        run loses at most `checkpoint_every` steps and repeats none of the earlier ones.
        `exclude_questions` are never written as augmented questions (the gate's held-out items).
        """
        if not demonstrations:
            raise ValueError("nothing to consolidate: no demonstrations given")
        demonstrations = trajectories.expand(demonstrations)  # one example per assistant turn
        if checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {checkpoint_every}")
        checkpoint = Checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
        state = checkpoint.load() if checkpoint is not None else None
        run = self._prepare(demonstrations, state, exclude_questions)
        self.model.train()
        start = time.perf_counter()
        for step in range(run.first_step, self.config.steps + 1):
            t0 = time.perf_counter()
            record = self._step(run.next_batch(), run.ema, run.rng, step)
            if run.ema is not None:
                run.ema.update()
            record.seconds = time.perf_counter() - t0
            if step % self.config.log_every == 0 or step == self.config.steps:
                run.history.append(record)
            if checkpoint is not None and checkpoint_every and step % checkpoint_every == 0:
                if self.parallel.is_main:
                    checkpoint.save(self._state(step, run))
                self.parallel.barrier()
            fault_point(f"train_step:{step}")
            if on_step is not None:
                on_step(record)
        return self._finish(run, out_dir, time.perf_counter() - start)

    def _prepare(self, demonstrations, state: dict | None, exclude_questions) -> _Run:
        """Optimizer, teacher, one-off targets and data, fresh or restored from a checkpoint."""
        cfg = self.config
        self._optimizer = torch.optim.AdamW(
            self.trainable, lr=cfg.learning_rate, weight_decay=cfg.weight_decay
        )
        ema = EMATeacher(self.trainable, cfg.ema_rate) if cfg.teacher == "ema" else None
        if state is not None and state.get("augmented") is not None:
            extra = [Demonstration.model_validate(d) for d in state["augmented"]]
        else:
            extra = self._augment(demonstrations, exclude_questions)
        self.augmented = extra
        data = [*demonstrations, *extra]
        if cfg.uses_anchor and (cfg.replay_weight > 0 or cfg.anchor_samples == "base"):
            self._base_answer_ids()  # once, before the adapter moves
        if cfg.sft_target == "teacher" and (cfg.sft_weight > 0 or cfg.sft_warmup_steps > 0):
            self._write_teacher_answers(data)
        run = _Run(data, random.Random(cfg.seed), ema, cfg.batch_size)
        if state is not None:
            run.first_step = self._restore(state, run.rng, ema, data) + 1
            by_id = {d.id: d for d in data}
            run.order = [by_id[i] for i in state["order"]]
            run.history = [StepRecord(**r) for r in state["history"]]
        return run

    def _augment(self, demonstrations, exclude_questions) -> list[Demonstration]:
        cfg = self.config
        if cfg.augment_per_demo < 1:
            return []

        def generate(convs, temperature, max_new):
            with teacher_context(self.model, None):
                return generate_batch(
                    self.model,
                    self.tokenizer,
                    convs,
                    max_new_tokens=max_new,
                    temperature=temperature,
                    generator_seed=cfg.seed if temperature > 0 else None,
                    batch_size=self.generate_batch_size,
                )

        return teacher_augment(
            demonstrations,
            generate,
            per_demo=cfg.augment_per_demo,
            candidates_per_demo=cfg.augment_candidates,
            exclude=exclude_questions,
        )

    def _finish(self, run: _Run, out_dir: Path, seconds: float) -> TrainResult:
        trained_steps = self.config.steps - run.first_step + 1
        self.model.eval()
        out_dir = Path(out_dir)
        if self.parallel.is_main:  # every process holds the same adapter
            out_dir.mkdir(parents=True, exist_ok=True)
            self.model.save_pretrained(out_dir)
        self.parallel.barrier()
        return TrainResult(
            adapter_dir=out_dir,
            method=self.config.method,
            steps=self.config.steps,
            seconds=seconds,
            seconds_per_step=seconds / max(trained_steps, 1),
            peak_rss_mb=peak_rss_mb(),
            final_loss=run.history[-1].loss if run.history else math.nan,
            history=run.history,
            resumed_from_step=run.first_step - 1,
            augmented=len(self.augmented),
        )

    def _state(self, step: int, run: _Run) -> dict:
        return {
            "step": step,
            "adapter": [p.detach().clone() for p in self.trainable],
            "optimizer": self._optimizer.state_dict(),
            "python_rng": run.rng.getstate(),
            "torch_rng": torch.get_rng_state(),
            "ema": [s.clone() for s in run.ema.shadow] if run.ema is not None else None,
            "order": [d.id for d in run.order],
            "history": [asdict(r) for r in run.history],
            "augmented": [d.model_dump(mode="json") for d in self.augmented],
        }

    def _restore(self, state: dict, rng, ema, demonstrations) -> int:
        """Load a checkpoint into the live objects; returns the step it was taken after."""
        if len(state["adapter"]) != len(self.trainable):
            raise ValueError("checkpoint does not match this adapter's layout; delete it")
        with torch.no_grad():
            for param, saved in zip(self.trainable, state["adapter"], strict=True):
                param.copy_(saved)
            if ema is not None and state["ema"] is not None:
                for shadow, saved in zip(ema.shadow, state["ema"], strict=True):
                    shadow.copy_(saved)
        self._optimizer.load_state_dict(state["optimizer"])
        rng.setstate(state["python_rng"])
        torch.set_rng_state(state["torch_rng"])
        known = {d.id for d in demonstrations}
        if not set(state["order"]) <= known:
            raise ValueError("checkpoint was taken on other demonstrations; delete it")
        return int(state["step"])

    def candidate(self) -> CandidateModel:
        """The adapter as trained so far, for the gate's questions (no copy of the weights)."""
        return CandidateModel(self.model, self.tokenizer, batch_size=self.generate_batch_size)


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
