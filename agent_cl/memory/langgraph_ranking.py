"""Semantic ranking for `ChromaStore.search`: items by their best-matching vector, through
Chroma's cosine index, widening the window until enough of the filtered candidates turn up.

Kept apart from the store because the tricky part is here: a filtered HNSW query may return
fewer rows than asked although more exist, so completeness is judged by counting, and whatever
the index skipped is scored exactly in Python.
"""

from __future__ import annotations

import math
from collections.abc import Container, Sequence
from typing import Any

from agent_cl.memory.langgraph_records import prefix_where

FIRST_WINDOW = 32  # vector rows fetched by the first ranking query

Ranked = list[tuple[str, float]]  # (item id, cosine similarity), best first


def rank(
    vectors: Any,
    query_vector: list[float],
    prefix: tuple[str, ...],
    candidates: Container[str],
    wanted: int,
) -> tuple[Ranked, bool]:
    """Candidates by their best-matching vector (max pooling), best first: at least `wanted`
    of them, or all when `exhausted` (every vector under the prefix seen)."""
    window = max(FIRST_WINDOW, 2 * wanted)
    where = prefix_where(prefix)
    total = len(vectors.get(where=where, include=[])["ids"])
    while True:
        rows = vectors.query(
            query_embeddings=[query_vector],
            n_results=max(min(window, total), 1),
            where=where,
            include=["metadatas", "distances"],
        )
        ranked: Ranked = []
        seen: set[str] = set()
        for meta, distance in zip(rows["metadatas"][0], rows["distances"][0], strict=True):
            item_id = meta["item"]
            if item_id in candidates and item_id not in seen:
                seen.add(item_id)
                ranked.append((item_id, 1.0 - float(distance)))
        # A filtered HNSW query may return fewer rows than asked although more exist
        # (measured: an item's only vector missing under load), so "exhausted" is decided
        # by the count, and what the index skipped is scored exactly.
        if window >= total:
            return _score_skipped(vectors, query_vector, where, candidates, ranked), True
        if len(ranked) >= wanted:
            return ranked, False
        window *= 4


def _score_skipped(
    vectors: Any,
    query_vector: list[float],
    where: dict[str, Any] | None,
    candidates: Container[str],
    ranked: Ranked,
) -> Ranked:
    seen = {item_id for item_id, _ in ranked}
    rows = vectors.get(where=where, include=["metadatas", "embeddings"])
    best: dict[str, float] = {}
    for meta, vector in zip(rows["metadatas"], rows["embeddings"], strict=True):
        item_id = meta["item"]
        if item_id in candidates and item_id not in seen:
            best[item_id] = max(best.get(item_id, -2.0), _cosine(query_vector, vector))
    if not best:
        return ranked
    merged = [*ranked, *best.items()]
    return sorted(merged, key=lambda pair: pair[1], reverse=True)


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norms if norms else 0.0
