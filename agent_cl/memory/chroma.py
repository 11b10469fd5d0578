"""Demonstrations in Chroma: one collection per tenant.

We compute embeddings ourselves (offline MiniLM) and hand Chroma vectors, so Chroma never tries
to download its default embedding model. Each tenant has its own collection: measured with
`benchmarks/memory_bench.py` (10k demonstrations over 10 tenants, 2 cores), a tenant filter on
one shared collection costs Chroma time in proportion to the tenant's rows (p95 31 ms at 10k,
84 ms at 50k, query embedding included), while a collection per tenant stays at 14-17 ms and
20 ms. Query embeddings are computed on one torch thread (two threads stalled for about 0.5 s
under load) and cached by text, so an agent asking the same question again pays about 2 ms.

Two processes writing one PersistentClient path lose vectors silently (measured: 18-27% lost),
so `open` takes an exclusive lock on the path and a second process fails at once, told to use a
Chroma server (`agent-cl memory serve`, setting `store_url`), which any number of processes
share (`chroma_clients.py`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections import OrderedDict
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
_TENANT_KEY = "agent_cl_tenant"
QUERY_CACHE_SIZE = 4096


class ChromaDemonstrationStore(ChromaConnection, DemonstrationStore):
    supports_vector_search = True

    def __init__(
        self, client: Any, *, embedder: Embedder | None = None, collection: str = COLLECTION
    ):
        self._client = client
        self._embedder = embedder or default_embedder()
        self._prefix = collection
        self._collections: dict[str, Any] = {}
        self._queries: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()
        self._move_single_collection()

    # -- collections ------------------------------------------------------------------------
    def _name(self, tenant: str) -> str:
        # Chroma names must start and end with a letter or digit; tenant names may not
        return f"{self._prefix}-{hashlib.sha256(tenant.encode()).hexdigest()[:16]}"

    def _collection(self, tenant: str, *, create: bool = False):
        """The tenant's collection; None if it has none yet and `create` is False."""
        found = self._collections.get(tenant)
        if found is not None:
            return found
        if create:
            found = self._client.get_or_create_collection(
                name=self._name(tenant),
                embedding_function=None,
                metadata={"hnsw:space": "cosine", _TENANT_KEY: tenant},
            )
        else:
            names = {c.name for c in self._client.list_collections()}
            if self._name(tenant) not in names:
                return None
            found = self._client.get_collection(self._name(tenant), embedding_function=None)
        self._collections[tenant] = found
        return found

    def _tenant_collections(self, tenant: str | None) -> list[Any]:
        """`tenant`'s collection, or every tenant's (asking the server each time, so tenants
        another process created are seen)."""
        if tenant is not None:
            found = self._collection(tenant)
            return [found] if found is not None else []
        out = []
        for info in self._client.list_collections():
            owner = (info.metadata or {}).get(_TENANT_KEY)
            if owner is not None and info.name == self._name(owner):
                if owner not in self._collections:  # seen listed: no second listing
                    self._collections[owner] = self._client.get_collection(
                        info.name, embedding_function=None
                    )
                out.append(self._collections[owner])
        return out

    def _move_single_collection(self) -> None:
        """Stores written before per-tenant collections kept every tenant in one collection
        named `<prefix>`; move its rows over once (idempotent if two processes race)."""
        names = {c.name for c in self._client.list_collections()}
        if self._prefix not in names:
            return
        old = self._client.get_collection(self._prefix, embedding_function=None)
        with self._lock:
            while True:
                rows = old.get(limit=500, include=["embeddings", "documents", "metadatas"])
                if not rows["ids"]:
                    break
                by_tenant: dict[str, list[tuple]] = {}
                for row in zip(
                    rows["ids"],
                    rows["documents"],
                    rows["metadatas"],
                    rows["embeddings"],
                    strict=True,
                ):
                    by_tenant.setdefault(row[2]["tenant"], []).append(row)
                for tenant, moved in by_tenant.items():
                    self._collection(tenant, create=True).upsert(
                        ids=[r[0] for r in moved],
                        documents=[r[1] for r in moved],
                        metadatas=[r[2] for r in moved],
                        embeddings=[list(r[3]) for r in moved],
                    )
                old.delete(ids=rows["ids"])
            with contextlib.suppress(Exception):  # another process finished the move first
                self._client.delete_collection(self._prefix)

    # -- writes -----------------------------------------------------------------------------
    def add(self, demonstrations: Sequence[Demonstration]) -> list[str]:
        fresh = unique_by_id(demonstrations)
        with self._lock:
            by_tenant: dict[str, list[Demonstration]] = {}
            for demo in fresh.values():
                by_tenant.setdefault(demo.tenant, []).append(demo)
            new: list[Demonstration] = []
            for tenant, demos in by_tenant.items():
                existing = set(
                    self._collection(tenant, create=True).get(
                        ids=[d.id for d in demos], include=[]
                    )["ids"]
                )
                new += [d for d in demos if d.id not in existing]
            vectors = self._embedder.embed([d.query for d in new]) if new else []
            for tenant in by_tenant:
                rows = [(d, v) for d, v in zip(new, vectors, strict=True) if d.tenant == tenant]
                if rows:
                    self._collection(tenant).add(
                        ids=[d.id for d, _ in rows],
                        documents=[d.query for d, _ in rows],
                        embeddings=[v for _, v in rows],
                        metadatas=[_to_metadata(d) for d, _ in rows],
                    )
        return [d.id for d in demonstrations]

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
        if not ids:
            return
        with self._lock:
            demos = self.get(ids, tenant=tenant)  # raises before any write if an id is unknown
            for owner in {d.tenant for d in demos}:
                updated = [
                    d.moved_to(
                        status,
                        adapter_version=adapter_version,
                        reason=reason,
                        add_attempt=add_attempt,
                    )
                    for d in demos
                    if d.tenant == owner
                ]
                self._collection(owner).update(
                    ids=[d.id for d in updated], metadatas=[_to_metadata(d) for d in updated]
                )

    # -- reads ------------------------------------------------------------------------------
    def get(self, ids: Sequence[str], *, tenant: str | None = None) -> list[Demonstration]:
        if not ids:
            return []
        by_id: dict[str, Demonstration] = {}
        for collection in self._tenant_collections(tenant):
            rows = collection.get(ids=list(ids), include=["documents", "metadatas"])
            for i, doc, meta in zip(rows["ids"], rows["documents"], rows["metadatas"], strict=True):
                by_id[i] = _from_row(doc, meta)
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise UnknownDemonstrationError(f"unknown demonstration ids: {missing}")
        return [by_id[i] for i in ids]

    def list(self, *, tenant=None, status=None, skill=None, limit=None) -> list[Demonstration]:
        demos = []
        for collection in self._tenant_collections(tenant):
            rows = collection.get(
                where=_where(None, status, skill), include=["documents", "metadatas"]
            )
            demos += [
                _from_row(doc, meta)
                for doc, meta in zip(rows["documents"], rows["metadatas"], strict=True)
            ]
        demos.sort(key=lambda d: d.created_at)
        return demos[:limit]

    def search(self, query, *, k=4, tenant=None, status=None, skill=None):
        check_search_args(query, k)
        collections = self._tenant_collections(tenant)
        if not collections:
            return []
        vector = self._query_vector(query)
        hits = []
        for collection in collections:
            res = collection.query(
                query_embeddings=[vector],
                n_results=k,
                where=_where(None, status, skill),
                include=["documents", "metadatas", "distances"],
            )
            hits += [
                ScoredDemonstration(_from_row(doc, meta), 1.0 - float(dist))
                for doc, meta, dist in zip(
                    res["documents"][0], res["metadatas"][0], res["distances"][0], strict=True
                )
            ]
        hits.sort(key=lambda h: h.score, reverse=True)
        return hits[:k]

    def _query_vector(self, query: str) -> list[float]:
        """Cached by text: agents ask the same questions again (about 2 ms instead of 10)."""
        with self._lock:
            cached = self._queries.get(query)
            if cached is not None:
                self._queries.move_to_end(query)
                return cached
        [vector] = self._embedder.embed([query])
        with self._lock:
            self._queries[query] = vector
            if len(self._queries) > QUERY_CACHE_SIZE:
                self._queries.popitem(last=False)
        return vector

    def count(self, *, tenant=None, status=None) -> int:
        total = 0
        for collection in self._tenant_collections(tenant):
            if status is None:
                total += collection.count()
            else:
                total += len(collection.get(where=_where(None, status, None), include=[])["ids"])
        return total


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
        "attempts": demo.attempts,
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
        attempts=int(meta.get("attempts", 0)),
        metadata=json.loads(meta.get("extra") or "{}"),
        messages=json.loads(meta.get("messages") or "[]"),
        schema_version=int(meta.get("schema_version", 1)),  # rows written before trajectories
    )
