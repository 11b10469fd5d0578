"""The consolidation trainer: orchestration only (the loss terms live in objectives.py, the
checkpoint format in checkpoint.py, the run's data order in run_state.py).

It loads its own copy of the base model (it never touches a served model), wraps it with a LoRA
adapter, trains on demonstrations with the configured objective and writes a PEFT adapter
directory.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from agent_cl.consolidation import trajectories
from agent_cl.consolidation.anchors import anchor_prompts as named_anchor_prompts
from agent_cl.consolidation.anchors import nearest_anchor_indices, nearest_exchange_indices
from agent_cl.consolidation.augment import teacher_augment
from agent_cl.consolidation.candidate import CandidateModel
from agent_cl.consolidation.checkpoint import Checkpoint, capture_state, restore_state
from agent_cl.consolidation.devices import peak_rss_mb, resolve_device
from agent_cl.consolidation.distributed import DataParallel
from agent_cl.consolidation.objectives import NonFiniteLossError, ObjectiveTerms
from agent_cl.consolidation.records import StepRecord, TrainResult
from agent_cl.consolidation.run_state import TrainingRun
from agent_cl.consolidation.stacking import fold_night_adapter, stack_night_adapter
from agent_cl.consolidation.teacher import EMATeacher, teacher_context
from agent_cl.consolidation.training_config import ConsolidationConfig
from agent_cl.faults import fault_point
from agent_cl.memory.schema import Demonstration
from agent_cl.models.chat import (
    ChatMessage,
    generate_batch,
    generation_batch_size,
    load_causal_lm,
    load_tokenizer,
    set_torch_threads,
)

# Callers import these from here since before they had modules of their own.
__all__ = [
    "Checkpoint",
    "ConsolidationTrainer",
    "NonFiniteLossError",
    "StepRecord",
    "TrainResult",
    "peak_rss_mb",
    "resolve_device",
]


class ConsolidationTrainer(ObjectiveTerms):
    """One LoRA adapter trained on one set of demonstrations, resumable from a checkpoint."""

    def __init__(
        self,
        model_dir: Path,
        config: ConsolidationConfig | None = None,
        *,
        torch_threads: int = 2,
        init_adapter: Path | None = None,
        anchor_prompts: Sequence[str] | None = None,
        max_rank: int | None = None,
    ) -> None:
        """`init_adapter`: the published adapter the night starts from (`lora_per_night`
        says whether it trains on or stays frozen under a new LoRA); `max_rank`: the served
        rank ceiling a stacked adapter is folded to."""
        from peft import LoraConfig, PeftModel, get_peft_model

        self.config = config or ConsolidationConfig()
        self.parallel = DataParallel()
        set_torch_threads(torch_threads)
        torch.manual_seed(self.config.seed)
        self.tokenizer = load_tokenizer(Path(model_dir))
        self.device, self.dtype = resolve_device(self.config.device, self.config.dtype)
        base = load_causal_lm(Path(model_dir), dtype=self.dtype).to(self.device)
        for param in base.parameters():
            param.requires_grad_(False)
        lora = LoraConfig(
            r=self.config.lora_r,
            lora_alpha=self.config.lora_alpha,
            lora_dropout=self.config.lora_dropout,
            target_modules=self.config.peft_target_modules,
            layers_to_transform=self.config.layers_to_transform,
            task_type="CAUSAL_LM",
        )
        self.max_rank = max_rank
        self.stacked = init_adapter is not None and self.config.lora_per_night == "fresh"
        self.fold: dict[str, Any] | None = None  # how a stacked night became one adapter
        if self.stacked:
            self.model = stack_night_adapter(base, init_adapter, lora)
        elif init_adapter is not None:
            self.model = PeftModel.from_pretrained(base, init_adapter, is_trainable=True)
        else:
            self.model = get_peft_model(base, lora)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.anchor_prompts = list(anchor_prompts or named_anchor_prompts(self.config.anchor_pool))
        self.near_anchors: list[int] = []  # set by `train` when anchor_near_share > 0
        if self.config.uses_anchor and not self.anchor_prompts:
            raise ValueError("the anchor/replay terms need at least one general prompt")
        # what the base's anchor answers depend on (the weights, device, prompts, length)
        self._base_key = (
            str(Path(model_dir).resolve()),
            str(self.device),
            self.dtype,
            tuple(self.anchor_prompts),
            self.config.anchor_max_new_tokens,
        )
        self.augmented: list[Demonstration] = []
        self.generate_batch_size = generation_batch_size(self.device)

    def _step(
        self,
        batch: list[Demonstration],
        ema: EMATeacher | None,
        rng: random.Random,
        step: int,
    ) -> StepRecord:
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
        replayed: Sequence[Demonstration] = (),
        draws: tuple[int, int] = (1, 1),
    ) -> TrainResult:
        """Train and save the adapter to `out_dir`.

        `replayed` demonstrations (ones an earlier night consolidated) train beside the new
        ones; a pass over the data draws each new example `draws[0]` times and each replayed
        one `draws[1]` times, so a night can replay a large pool lightly without taking the
        new demonstrations' share of the steps.

        With `checkpoint_dir` and `checkpoint_every` > 0 the full training state (adapter,
        optimizer, data order, random state, EMA, history, augmented data) is saved atomically
        every that many steps, and a checkpoint found there at start is resumed from: a killed
        run loses at most `checkpoint_every` steps and repeats none of the earlier ones.
        `exclude_questions` are never written as augmented questions (the gate's held-out items).
        """
        if not demonstrations:
            raise ValueError("nothing to consolidate: no demonstrations given")
        if min(draws) < 1:
            raise ValueError(f"draws must be >= 1 each, got {draws}")
        replayed = trajectories.expand(replayed)
        demonstrations = [*trajectories.expand(demonstrations), *replayed]  # one per ai turn
        if self.config.anchor_near_share > 0:
            self.near_anchors = self._nearest_anchors(demonstrations)
        if checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {checkpoint_every}")
        checkpoint = Checkpoint(checkpoint_dir) if checkpoint_dir is not None else None
        state = checkpoint.load() if checkpoint is not None else None
        run = self._prepare(demonstrations, state, exclude_questions, replayed, draws)
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
                    checkpoint.save(
                        capture_state(step, run, self.trainable, self._optimizer, self.augmented)
                    )
                self.parallel.barrier()
            fault_point(f"train_step:{step}")
            if on_step is not None:
                on_step(record)
        return self._finish(run, out_dir, time.perf_counter() - start)

    def _nearest_anchors(self, demonstrations: list[Demonstration]) -> list[int]:
        """The anchor prompts each step draws its near share from (`anchor_near_by`)."""
        queries = dict.fromkeys(d.query for d in demonstrations)
        k = max(8, 2 * len(queries))
        if self.config.anchor_near_by == "question":
            return nearest_anchor_indices(self.anchor_prompts, queries, k=k)
        answers = self.tokenizer.batch_decode(self._base_answer_ids(), skip_special_tokens=True)
        exchanges = ((d.query, d.answer) for d in demonstrations)
        return nearest_exchange_indices(self.anchor_prompts, answers, exchanges, k=k)

    def _prepare(
        self,
        demonstrations: Sequence[Demonstration],
        state: dict[str, Any] | None,
        exclude_questions: Sequence[str],
        replayed: Sequence[Demonstration] = (),
        draws: tuple[int, int] = (1, 1),
    ) -> TrainingRun:
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
        counts = None  # every example alike: plain passes, the order nights drew before
        if replayed and draws[0] != draws[1]:
            counts = example_draws(data, {d.id for d in replayed}, draws)
        run = TrainingRun(data, random.Random(cfg.seed), ema, cfg.batch_size, counts)
        if state is not None:
            restore_state(state, run, self.trainable, self._optimizer)
        return run

    def _augment(
        self, demonstrations: Sequence[Demonstration], exclude_questions: Sequence[str]
    ) -> list[Demonstration]:
        cfg = self.config
        if cfg.augment_per_demo < 1:
            return []

        def generate(convs: list[list[ChatMessage]], temperature: float, max_new: int) -> list[str]:
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

    def _finish(self, run: TrainingRun, out_dir: Path, seconds: float) -> TrainResult:
        trained_steps = self.config.steps - run.first_step + 1
        self.model.eval()
        if self.stacked and self.fold is None:  # the gate then scores what is served
            self.fold = fold_night_adapter(self.model, self.max_rank)
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
            fold=self.fold,
            device=self.device.type,
            dtype=self.dtype,
        )

    def candidate(self) -> CandidateModel:
        """The adapter as trained so far, for the gate's questions (no copy of the weights)."""
        return CandidateModel(self.model, self.tokenizer, batch_size=self.generate_batch_size)


def example_draws(
    data: Sequence[Demonstration], replayed_ids: set[str], draws: tuple[int, int]
) -> list[int]:
    """Each training example's count in one pass: a replayed demonstration's, or a paraphrase
    written from one (`augmented_from`), takes `draws[1]`; every other example `draws[0]`."""
    new, old = draws
    return [
        old if d.id in replayed_ids or d.metadata.get("augmented_from") in replayed_ids else new
        for d in data
    ]
