"""A trained, not yet published adapter, as the gate and the checks question it.

The gate needs two things of a candidate: greedy answers (new skill, retention) and how far its
answers drift from the base model's (mean per-token KL along its own greedy answers, a sharper
forgetting signal than accuracy: it moves before answers flip). Both run on the weights the
trainer just produced, in the same process, without a server: publishing is what makes a
version servable, and the gate runs before it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import torch

from agent_cl.consolidation.devices import resolve_device
from agent_cl.consolidation.losses import reverse_kl_per_token
from agent_cl.consolidation.sequences import completion_logits, prompt_ids, sample_completions
from agent_cl.models.chat import (
    ChatMessage,
    generate_batch,
    generation_batch_size,
    load_causal_lm,
    load_tokenizer,
    render_prompt,
    set_torch_threads,
)


class CandidateModel:
    """A PEFT model (base + adapter) with the two questions the gate asks of it."""

    def __init__(self, model, tokenizer, *, batch_size: int = 16) -> None:
        if not hasattr(model, "disable_adapter"):
            raise TypeError("a candidate is a PEFT model: KL from base switches its adapter off")
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size

    @classmethod
    def load(
        cls,
        model_dir: Path,
        adapter_dir: Path,
        *,
        torch_threads: int = 2,
        device: str = "auto",
        dtype: str = "auto",
    ) -> CandidateModel:
        """The base model from `model_dir` with the adapter in `adapter_dir` (e.g. after a
        crash, when the candidate exists on disk but no trainer is alive)."""
        from peft import PeftModel

        set_torch_threads(torch_threads)
        chosen, dtype = resolve_device(device, dtype)
        base = load_causal_lm(Path(model_dir), dtype=dtype).to(chosen)
        model = PeftModel.from_pretrained(base, adapter_dir)
        tokenizer = load_tokenizer(Path(model_dir))
        return cls(model, tokenizer, batch_size=generation_batch_size(chosen))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def generate(
        self,
        conversations: Sequence[Sequence[ChatMessage]],
        *,
        max_new_tokens: int = 48,
        adapter: bool = True,
    ) -> list[str]:
        """Greedy answers, with the adapter on or (`adapter=False`) from the base model the
        candidate wraps: the gate's ceiling against the base needs no second model."""
        self.model.eval()
        with contextlib.nullcontext() if adapter else self.model.disable_adapter():
            return generate_batch(
                self.model,
                self.tokenizer,
                conversations,
                max_new_tokens=max_new_tokens,
                batch_size=self.batch_size,
            )

    def kl_from_base(self, prompts: Sequence[str], *, max_new_tokens: int = 24) -> float:
        """Mean per-token KL(candidate || base) along the candidate's own greedy answers."""
        if not prompts:
            raise ValueError("kl_from_base needs at least one prompt")
        self.model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for start in range(0, len(prompts), self.batch_size):
                convs = [
                    [{"role": "user", "content": p}]
                    for p in prompts[start : start + self.batch_size]
                ]
                texts = [render_prompt(self.tokenizer, c) for c in convs]
                completions = sample_completions(
                    self.model, self.tokenizer, texts, max_new_tokens=max_new_tokens, temperature=0
                )
                ids = prompt_ids(self.tokenizer, convs)
                ours, mask = completion_logits(
                    self.model, self.tokenizer, ids, completions, self.device
                )
                with self.model.disable_adapter():
                    base, _ = completion_logits(
                        self.model, self.tokenizer, ids, completions, self.device
                    )
                per_token = reverse_kl_per_token(ours, base)
                total += float((per_token * mask).sum())
                count += int(mask.sum())
        return total / max(count, 1)
