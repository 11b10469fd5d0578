"""The reference store: a dict and brute-force cosine search. Used by tests and as the spec."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

from agent_cl.memory.base import (
    DemonstrationStore,
    ScoredDemonstration,
    UnknownDemonstrationError,
    check_search_args,
    matches,
    unique_by_id,
)
from agent_cl.memory.embeddings import Embedder
from agent_cl.memory.schema import Demonstration, DemoStatus


class InMemoryDemonstrationStore(DemonstrationStore):
    def __init__(self, embedder: Embedder | None = None) -> None:
        self._embedder = embedder
        self.supports_vector_search = embedder is not None
        self._demos: dict[str, Demonstration] = {}
        self._vectors: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def add(self, demonstrations: Sequence[Demonstration]) -> list[str]:
        fresh = unique_by_id(demonstrations)
        with self._lock:
            new = {i: d for i, d in fresh.items() if i not in self._demos}
        vectors = self._embedder.embed([d.query for d in new.values()]) if self._embedder else []
        with self._lock:
            for (demo_id, demo), vec in zip(new.items(), vectors or [None] * len(new), strict=True):
                self._demos[demo_id] = demo.model_copy()
                if vec is not None:
                    self._vectors[demo_id] = vec
        return [d.id for d in demonstrations]

    def get(self, ids: Sequence[str], *, tenant: str | None = None) -> list[Demonstration]:
        with self._lock:
            missing = [i for i in ids if not self._holds(i, tenant)]
            if missing:
                raise UnknownDemonstrationError(f"unknown demonstration ids: {missing}")
            return [self._demos[i].model_copy() for i in ids]

    def list(self, *, tenant=None, status=None, skill=None, limit=None) -> list[Demonstration]:
        with self._lock:
            demos = [d for d in self._demos.values() if matches(d, tenant, status, skill)]
        demos.sort(key=lambda d: d.created_at)
        return [d.model_copy() for d in demos[:limit]]

    def _holds(self, demo_id: str, tenant: str | None) -> bool:
        demo = self._demos.get(demo_id)
        return demo is not None and (tenant is None or demo.tenant == tenant)

    def set_status(
        self,
        ids,
        status: DemoStatus,
        *,
        adapter_version=None,
        reason="",
        tenant=None,
        add_attempt=False,
    ) -> None:
        with self._lock:
            missing = [i for i in ids if not self._holds(i, tenant)]
            if missing:
                raise UnknownDemonstrationError(f"unknown demonstration ids: {missing}")
            for i in ids:
                self._demos[i] = self._demos[i].moved_to(
                    status, adapter_version=adapter_version, reason=reason, add_attempt=add_attempt
                )

    def search(self, query, *, k=4, tenant=None, status=None, skill=None):
        if self._embedder is None:
            return super().search(query, k=k)
        check_search_args(query, k)
        [qv] = self._embedder.embed([query])
        with self._lock:
            scored = [
                ScoredDemonstration(d.model_copy(), _cosine(qv, self._vectors[i]))
                for i, d in self._demos.items()
                if matches(d, tenant, status, skill)
            ]
        scored.sort(key=lambda s: s.score, reverse=True)
        return scored[:k]


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0
