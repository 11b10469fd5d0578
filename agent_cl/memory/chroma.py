"""Demonstrations in Chroma: the only module that imports `chromadb`.

We compute embeddings ourselves (offline MiniLM) and hand Chroma vectors, so Chroma never tries
to download its default embedding model. Two processes writing one PersistentClient path lose
vectors silently (measured: 18-27% lost), so `open` takes an exclusive lock on the path and a
second process fails at once, told to use a Chroma server (`agent-cl memory serve`, setting
`store_url`), which any number of processes share (`chroma_clients.py`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

from agent_cl.memory.base import (
    DemonstrationStore,
    ScoredDemonstration,
    UnknownDemonstrationError,
    check_search_args,
    unique_by_id,
)
from agent_cl.memory.chroma_clients import ChromaConnection, StoreLockedError
from agent_cl.memory.embeddings import Embedder, default_embedder
from agent_cl.memory.schema import Demonstration, DemoStatus

__all__ = ["ChromaDemonstrationStore", "StoreLockedError"]  # the error: the usual import path

COLLECTION = "demonstrations"
_NO_VERSION = -1  # Chroma metadata cannot hold None


class ChromaDemonstrationStore(ChromaConnection, DemonstrationStore):
    supports_vector_search = True

    def __init__(
        self, client: Any, *, embedder: Embedder | None = None, collection: str = COLLECTION
    ):
        self._client = client
        self._embedder = embedder or default_embedder()
        self._collection = client.get_or_create_collection(
            name=collection, embedding_function=None, metadata={"hnsw:space": "cosine"}
        )
        self._lock = threading.Lock()

    def add(self, demonstrations: Sequence[Demonstration]) -> list[str]:
        fresh = unique_by_id(demonstrations)
        with self._lock:
            existing = (
                set(self._collection.get(ids=list(fresh), include=[])["ids"]) if fresh else set()
            )
            new = [d for i, d in fresh.items() if i not in existing]
            if new:
                self._collection.add(
                    ids=[d.id for d in new],
                    documents=[d.query for d in new],
                    embeddings=self._embedder.embed([d.query for d in new]),
                    metadatas=[_to_metadata(d) for d in new],
                )
        return [d.id for d in demonstrations]

    def get(self, ids: Sequence[str], *, tenant: str | None = None) -> list[Demonstration]:
        if not ids:
            return []
        rows = self._collection.get(
            ids=list(ids), where=_where(tenant, None, None), include=["documents", "metadatas"]
        )
        by_id = {
            i: _from_row(doc, meta)
            for i, doc, meta in zip(rows["ids"], rows["documents"], rows["metadatas"], strict=True)
        }
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise UnknownDemonstrationError(f"unknown demonstration ids: {missing}")
        return [by_id[i] for i in ids]

    def list(self, *, tenant=None, status=None, skill=None, limit=None) -> list[Demonstration]:
        rows = self._collection.get(
            where=_where(tenant, status, skill), include=["documents", "metadatas"]
        )
        demos = [
            _from_row(doc, meta)
            for doc, meta in zip(rows["documents"], rows["metadatas"], strict=True)
        ]
        demos.sort(key=lambda d: d.created_at)
        return demos[:limit]

    def set_status(
        self, ids, status: DemoStatus, *, adapter_version=None, reason="", tenant=None
    ) -> None:
        if not ids:
            return
        with self._lock:
            demos = self.get(ids, tenant=tenant)  # raises before any write if an id is unknown
            updated = [
                d.model_copy(
                    update={
                        "status": DemoStatus(status),
                        "adapter_version": adapter_version,
                        "status_reason": reason,
                    }
                )
                for d in demos
            ]
            self._collection.update(ids=list(ids), metadatas=[_to_metadata(d) for d in updated])

    def search(self, query, *, k=4, tenant=None, status=None, skill=None):
        check_search_args(query, k)
        [vector] = self._embedder.embed([query])
        res = self._collection.query(
            query_embeddings=[vector],
            n_results=k,
            where=_where(tenant, status, skill),
            include=["documents", "metadatas", "distances"],
        )
        return [
            ScoredDemonstration(_from_row(doc, meta), 1.0 - float(dist))
            for doc, meta, dist in zip(
                res["documents"][0], res["metadatas"][0], res["distances"][0], strict=True
            )
        ]

    def count(self, *, tenant=None, status=None) -> int:
        if tenant is None and status is None:
            return self._collection.count()
        return len(self._collection.get(where=_where(tenant, status, None), include=[])["ids"])


def _where(tenant: str | None, status: DemoStatus | None, skill: str | None) -> dict | None:
    clauses = [
        {key: value}
        for key, value in (("tenant", tenant), ("status", status and str(status)), ("skill", skill))
        if value is not None
    ]
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _to_metadata(demo: Demonstration) -> dict[str, Any]:
    return {
        "tenant": demo.tenant,
        "skill": demo.skill,
        "status": str(demo.status),
        "context": demo.context,
        "answer": demo.answer,
        "created_at": demo.created_at,
        "adapter_version": _NO_VERSION if demo.adapter_version is None else demo.adapter_version,
        "extra": json.dumps(demo.metadata),
        "status_reason": demo.status_reason,
        "messages": json.dumps(demo.messages),
        "schema_version": demo.schema_version,
    }


def _from_row(document: str, meta: dict[str, Any]) -> Demonstration:
    version = meta.get("adapter_version", _NO_VERSION)
    return Demonstration(
        query=document,
        answer=meta["answer"],
        context=meta.get("context", ""),
        tenant=meta["tenant"],
        skill=meta["skill"],
        status=DemoStatus(meta["status"]),
        adapter_version=None if version == _NO_VERSION else int(version),
        created_at=float(meta["created_at"]),
        status_reason=meta.get("status_reason", ""),
        metadata=json.loads(meta.get("extra") or "{}"),
        messages=json.loads(meta.get("messages") or "[]"),
        schema_version=int(meta.get("schema_version", 1)),  # rows written before trajectories
    )
