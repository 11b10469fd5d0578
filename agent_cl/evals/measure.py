"""Measuring one served model state: accuracy, retention, prompt tokens and latency.

Everything is asked through the in-process backend the product serves on a laptop, with the
adapter swapped in exactly as a night's publish does, so "latency per request" is the served
path's and not the trainer's. Text memory retrieves from a real Chroma store.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent_cl.evals.suites import EvalItem, Suite, with_demonstrations
from agent_cl.memory.chroma import ChromaDemonstrationStore
from agent_cl.memory.schema import Demonstration
from agent_cl.models.chat import ChatMessage, count_prompt_tokens
from agent_cl.night.gate import GateItem, retention_items
from agent_cl.scoring.retention import retention_breakdown
from agent_cl.serving.local_backend import LocalBackend

TENANT = "eval"


class TextMemory:
    """A suite's demonstrations in a Chroma store, retrieved top-k above `min_score`: what an
    agent with text memory puts in its prompt for a question."""

    def __init__(self, path: Path, suite: Suite, *, k: int, min_score: float) -> None:
        self.store = ChromaDemonstrationStore.open(path)
        self.k, self.min_score = k, min_score
        demos = [d.model_copy(update={"tenant": TENANT}) for d in suite.demonstrations]
        self.store.add(demos)

    def retrieve(self, question: str, min_score: float | None = None) -> list[Demonstration]:
        cut = self.min_score if min_score is None else min_score
        hits = self.store.search(question, k=self.k, tenant=TENANT)
        return [h.demonstration for h in hits if h.score >= cut]

    def gated(self, min_score: float) -> GatedMemory:
        return GatedMemory(self, min_score)

    def close(self) -> None:
        self.store.close()


class GatedMemory:
    """The same store behind another similarity cut (the agent's own, for `text-gated`)."""

    def __init__(self, memory: TextMemory, min_score: float) -> None:
        self.memory, self.min_score = memory, min_score

    def retrieve(self, question: str) -> list[Demonstration]:
        return self.memory.retrieve(question, self.min_score)


class ServedModel:
    """The base model, served in process, with whichever adapter a method produced."""

    def __init__(self, model_dir: Path, *, torch_threads: int, max_new_tokens: int) -> None:
        self.backend = LocalBackend(model_dir, torch_threads=torch_threads)
        self.max_new_tokens = max_new_tokens
        self._version = 0

    def serve(self, adapter: Path | None) -> None:
        """Swap to `adapter` (None: the base), as a night's publish does."""
        if adapter is None:
            self.backend.swap(None)
            return
        self._version += 1
        self.backend.swap(self._version, adapter)

    def answers(self, conversations: Sequence[list[ChatMessage]]) -> list[str]:
        if not conversations:
            return []
        result = self.backend.generate(list(conversations), max_new_tokens=self.max_new_tokens)
        return result.texts

    def latency_ms(
        self,
        conversations: Sequence[list[ChatMessage]],
        n: int,
        *,
        max_new_tokens: int | None = None,
    ) -> float:
        """Median wall time of single requests, one at a time, as a client would see them,
        after one untimed warm-up. With `max_new_tokens=1` it is the prompt's prefill: what
        text memory adds to every request, without the answer's length in it."""
        sample = list(conversations)[:n]
        length = max_new_tokens or self.max_new_tokens
        self.backend.generate(sample[:1], max_new_tokens=length)
        times = []
        for conversation in sample:
            t0 = time.perf_counter()
            self.backend.generate([conversation], max_new_tokens=length)
            times.append((time.perf_counter() - t0) * 1000.0)
        return statistics.median(times)

    def prompt_tokens(self, conversations: Sequence[list[ChatMessage]]) -> float:
        return statistics.mean(
            count_prompt_tokens(self.backend.tokenizer, c) for c in conversations
        )


def conversations(
    items: Sequence[EvalItem], memory: TextMemory | GatedMemory | None
) -> list[list[ChatMessage]]:
    """What each question is asked as: alone, or after what the memory retrieves for it."""
    if memory is None:
        return [item.conversation for item in items]
    return [with_demonstrations(i.conversation, memory.retrieve(i.question)) for i in items]


def split_hits(items: Sequence[EvalItem], answers: Sequence[str]) -> dict[str, str]:
    """Per-question correctness per split, `hits_{split}` as a string of 0/1 in item order:
    what a paired bootstrap over questions needs (report.py's intervals)."""
    out: dict[str, str] = {}
    for item, answer in zip(items, answers, strict=True):
        key = f"hits_{item.split}"
        out[key] = out.get(key, "") + ("1" if item.is_correct(answer) else "0")
    return out


def split_rates(hits: dict[str, str], prefix: str) -> dict[str, float]:
    """Accuracy per split (`in`, `out`) from `split_hits`, keyed `{prefix}_{split}`."""
    return {
        f"{prefix}_{key.removeprefix('hits_')}": marks.count("1") / len(marks)
        for key, marks in hits.items()
    }


def accuracy(model: ServedModel, suite: Suite, convs: list[list[ChatMessage]]) -> dict[str, Any]:
    """Accuracy per split, per-question hits and mean prompt tokens, asking `convs` (one per
    suite item); each answer is judged once, the rates derived from the hits."""
    answers = model.answers(convs)
    hits = split_hits(suite.items, answers)
    return {
        **split_rates(hits, "acc"),
        **hits,
        "prompt_tokens": model.prompt_tokens(convs),
        "example": {"question": suite.items[0].question, "answer": answers[0]},
    }


def teacher_accuracy(model: ServedModel, suite: Suite) -> dict[str, float]:
    """The in-context teacher (base model, right demonstration in the prompt): what
    consolidation can at best reach."""
    answers = model.answers([item.teacher for item in suite.items])
    return split_rates(split_hits(suite.items, answers), "teacher")


class Retention:
    """The frozen retention set, scored per kind; with text memory, general prompts that
    retrieve a demonstration are asked with it (the rest are the same prompt as without)."""

    def __init__(self, limit: int | None) -> None:
        self.items: list[GateItem] = retention_items(limit)

    def hits(
        self,
        model: ServedModel,
        memory: TextMemory | GatedMemory | None = None,
        without: Sequence[bool] | None = None,
    ) -> tuple[list[bool], int]:
        """Per-item correctness and how many prompts retrieved a demonstration. With memory and
        `without` (the same model's hits with no memory), only prompts that retrieved something
        are asked again: the others are the very prompt already scored."""
        convs = [item.conversation for item in self.items]
        if memory is None:
            answers = model.answers(convs)
            return [i.is_correct(a) for i, a in zip(self.items, answers, strict=True)], 0
        retrieved = [memory.retrieve(_question(c)) for c in convs]
        changed = [i for i, demos in enumerate(retrieved) if demos or without is None]
        hits = list(without) if without is not None else [False] * len(self.items)
        answers = model.answers([with_demonstrations(convs[i], retrieved[i]) for i in changed])
        for i, answer in zip(changed, answers, strict=True):
            hits[i] = self.items[i].is_correct(answer)
        return hits, sum(bool(demos) for demos in retrieved)

    def score(self, hits: Sequence[bool]) -> dict[str, Any]:
        return retention_breakdown(self.items, list(hits))


def _question(conversation: list[ChatMessage]) -> str:
    return conversation[-1]["content"]
