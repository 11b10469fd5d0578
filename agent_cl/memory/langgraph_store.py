"""LangGraph's long-term memory (`BaseStore`) kept in Chroma, so `graph.compile(store=...)` and
`runtime.store` outlive the process.

LangGraph ships `InMemoryStore`, which loses everything on exit and cannot be shared. We already
run Chroma for demonstrations, embedded (`open`, one process) or as a server (`from_url`, any
number of processes), so this store puts LangGraph items there too and behaves like
`InMemoryStore`: the same get/put/delete, filter operators, pagination, namespace listing and
semantic ranking, so a graph can swap one for the other.

Layout, in two collections of their own:

* `<collection>` holds one row per item: the JSON value as the document, and in the metadata the
  namespace (joined with ".", which a label may not contain), its depth, the key, the ISO
  timestamps and one `ns_<n>` entry per prefix depth (`ns_2 = "users.42"`), so that a namespace
  prefix is a single equality Chroma can filter on. Chroma wants a vector per row; items carry a
  constant one-dimensional vector.
* `<collection>_vectors` holds the embeddings when an `index` is configured: one row per indexed
  text (field path), pointing at its item, with the same `ns_<n>` entries. We embed ourselves
  (`embedding_function=None`), so Chroma never loads a model.

Value filters run in Python on the values under the namespace prefix, with InMemoryStore's
semantics (nested dicts, lists, `$eq $ne $gt $gte $lt $lte`), so a search or a namespace
listing reads every item under its prefix (fine for agent memories, not for millions of rows); a
query ranks through Chroma's cosine index, widening the window until enough filtered items are
found (exact on small collections, approximate like any HNSW on large ones). Differences from
InMemoryStore, all deliberate: `created_at` survives updates (InMemoryStore resets it); an
update or `index=False` drops the item's old vectors (InMemoryStore keeps stale ones); a
namespace whose items are all deleted is no longer listed; a comparison operator on a missing or
non-numeric field does not match (InMemoryStore raises); values must be JSON (tuples come back
as lists); and unranked results are ordered by creation time, not grouped by namespace.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterable
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    ensure_embeddings,
    get_text_at_path,
)

from agent_cl.memory.chroma_clients import ChromaConnection
from agent_cl.memory.langgraph_filters import matches, namespaces_where, ns_matches
from agent_cl.memory.langgraph_ranking import rank
from agent_cl.memory.langgraph_records import (
    ITEM_VECTOR,
    chunks,
    item_id,
    item_metadata,
    now,
    prefix_where,
    split_namespace,
    to_item,
    to_search_item,
    vector_id,
    vector_metadata,
)

try:  # langgraph >= 1.1: the label checks for ops that reach `batch` directly
    from langgraph.store.base import validate_op_namespace
except ImportError:  # pragma: no cover - older langgraph
    from langgraph.store.base import _validate_namespace_labels

    def validate_op_namespace(op: Op) -> None:
        if isinstance(op, GetOp | PutOp):
            _validate_namespace_labels(op.namespace)
        elif isinstance(op, SearchOp):
            _validate_namespace_labels(op.namespace_prefix)
        elif isinstance(op, ListNamespacesOp):
            for condition in op.match_conditions or ():
                _validate_namespace_labels(condition.path)


COLLECTION = "langgraph_store"

# (namespace, key) -> the put that wins; text -> the (namespace, key, field path) slots it fills
Puts = dict[tuple[tuple[str, ...], str], PutOp]
ToEmbed = dict[str, list[tuple[tuple[str, ...], str, str]]]


class ChromaStore(ChromaConnection, BaseStore):
    """A LangGraph `BaseStore` in Chroma, behaving like `InMemoryStore` (see the module doc).

    `index` is LangGraph's IndexConfig: `{"dims": int, "embed": Embeddings | callable,
    "fields": ["text", ...]}` (fields default to the whole value, "$").
    """

    def __init__(
        self, client: Any, *, index: IndexConfig | None = None, collection: str = COLLECTION
    ) -> None:
        self._client = client
        self._items = client.get_or_create_collection(
            name=collection, embedding_function=None, metadata={"hnsw:space": "cosine"}
        )
        self._vectors = client.get_or_create_collection(
            name=f"{collection}_vectors",
            embedding_function=None,
            metadata={"hnsw:space": "cosine"},
        )
        self._batch_size = int(client.get_max_batch_size())
        self._lock = threading.RLock()
        if index:
            self.index_config: dict[str, Any] | None = dict(index)
            self.embeddings = ensure_embeddings(index.get("embed"))
            self._dims = int(index["dims"])
            self._fields: list[str] = list(index.get("fields") or ["$"])
        else:
            self.index_config = None
            self.embeddings = None

    # construction: open / from_url / for_settings / close come from ChromaConnection,
    # with the demonstration store's one-writer rule

    # ---------------------------------------------------------------- BaseStore

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        ops, puts, to_embed, queries = self._prepare(ops)
        query_vectors: dict[str, list[float]] = {}
        doc_vectors: list[list[float]] = []
        if self.embeddings is not None:
            if queries:
                query_vectors = {q: self.embeddings.embed_query(q) for q in queries}
            if to_embed:
                doc_vectors = self.embeddings.embed_documents(list(to_embed))
        return self._execute(ops, puts, to_embed, doc_vectors, query_vectors)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        ops, puts, to_embed, queries = self._prepare(ops)
        query_vectors: dict[str, list[float]] = {}
        doc_vectors: list[list[float]] = []
        if self.embeddings is not None:
            if queries:
                vectors = await asyncio.gather(*(self.embeddings.aembed_query(q) for q in queries))
                query_vectors = dict(zip(queries, vectors, strict=True))
            if to_embed:
                doc_vectors = await self.embeddings.aembed_documents(list(to_embed))
        return await asyncio.to_thread(
            self._execute, ops, puts, to_embed, doc_vectors, query_vectors
        )

    # ---------------------------------------------------------------- planning (no I/O)

    def _prepare(self, ops: Iterable[Op]) -> tuple[list[Op], Puts, ToEmbed, list[str]]:
        """Validate the ops; collect the puts (the last one per item wins), the texts to embed
        (text -> the (namespace, key, path) slots it fills) and the distinct queries."""
        ops = list(ops)
        puts: Puts = {}
        queries: list[str] = []
        for op in ops:
            if not isinstance(op, GetOp | PutOp | SearchOp | ListNamespacesOp):
                raise ValueError(f"Unknown operation type: {type(op)}")
            validate_op_namespace(op)
            if isinstance(op, PutOp):
                puts[(tuple(op.namespace), op.key)] = op
            elif isinstance(op, SearchOp) and op.query and op.query not in queries:
                queries.append(op.query)
        to_embed: ToEmbed = {}
        if self.embeddings is not None:
            for (namespace, key), op in puts.items():
                if op.value is None or op.index is False:
                    continue
                for path in dict.fromkeys(self._fields if op.index is None else op.index):
                    texts = get_text_at_path(op.value, path)
                    for i, text in enumerate(texts):
                        slot = path if len(texts) == 1 else f"{path}.{i}"
                        to_embed.setdefault(text, []).append((namespace, key, slot))
        return ops, puts, to_embed, queries

    # ---------------------------------------------------------------- execution (Chroma)

    def _execute(
        self,
        ops: list[Op],
        puts: Puts,
        to_embed: ToEmbed,
        doc_vectors: list[list[float]],
        query_vectors: dict[str, list[float]],
    ) -> list[Result]:
        """Reads see the store as it was before this batch's writes, as in InMemoryStore."""
        with self._lock:
            results: list[Result] = [None] * len(ops)
            gets = [(i, op) for i, op in enumerate(ops) if isinstance(op, GetOp)]
            if gets:
                found = self._fetch_items(list({item_id(op.namespace, op.key) for _, op in gets}))
                for i, op in gets:
                    results[i] = found.get(item_id(op.namespace, op.key))
            for i, op in enumerate(ops):
                if isinstance(op, SearchOp):
                    results[i] = self._search(op, query_vectors.get(op.query or ""))
                elif isinstance(op, ListNamespacesOp):
                    results[i] = self._list_namespaces(op)
            if puts:
                self._write(puts, to_embed, doc_vectors)
            return results

    # ---------------------------------------------------------------- reads

    def _fetch_items(self, ids: list[str]) -> dict[str, Item]:
        found: dict[str, Item] = {}
        for chunk in chunks(ids, self._batch_size):
            rows = self._items.get(ids=chunk, include=["documents", "metadatas"])
            for row_id, doc, meta in zip(
                rows["ids"], rows["documents"], rows["metadatas"], strict=True
            ):
                found[row_id] = to_item(doc, meta)
        return found

    def _items_under(self, prefix: tuple[str, ...]) -> list[tuple[str, Item]]:
        """(id, item) under a namespace prefix, oldest first."""
        rows = self._items.get(where=prefix_where(prefix), include=["documents", "metadatas"])
        items = [
            (row_id, to_item(doc, meta))
            for row_id, doc, meta in zip(
                rows["ids"], rows["documents"], rows["metadatas"], strict=True
            )
        ]
        items.sort(key=lambda pair: (pair[1].created_at, pair[1].namespace, pair[1].key))
        return items

    def _search(self, op: SearchOp, query_vector: list[float] | None) -> list[SearchItem]:
        candidates = [
            (row_id, item)
            for row_id, item in self._items_under(tuple(op.namespace_prefix))
            if not op.filter or matches(item.value, op.filter)
        ]
        if query_vector is None or not op.query:
            return [
                to_search_item(item) for _, item in candidates[op.offset : op.offset + op.limit]
            ]
        if not candidates:
            return []
        by_id = dict(candidates)
        ranked, exhausted = rank(
            self._vectors,
            query_vector,
            tuple(op.namespace_prefix),
            by_id,
            wanted=max(op.offset + op.limit, 0),
        )
        kept = [
            to_search_item(by_id[row_id], score)
            for row_id, score in ranked[max(op.offset, 0) : op.offset + op.limit]
        ]
        if exhausted and len(kept) < op.limit:
            # as InMemoryStore: fill up with the matches that have no vectors, unscored
            scored = {row_id for row_id, _ in ranked}
            unscored = [item for row_id, item in candidates if row_id not in scored]
            kept.extend(to_search_item(item) for item in unscored[: op.limit - len(kept)])
        return kept

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        conditions = op.match_conditions or ()
        rows = self._items.get(where=namespaces_where(conditions), include=["metadatas"])
        namespaces = {split_namespace(meta["namespace"]) for meta in rows["metadatas"]}
        namespaces = {ns for ns in namespaces if all(ns_matches(c, ns) for c in conditions)}
        if op.max_depth is not None:
            namespaces = {ns[: op.max_depth] for ns in namespaces}
        return sorted(namespaces)[op.offset : op.offset + op.limit]

    # ---------------------------------------------------------------- writes

    def _write(self, puts: Puts, to_embed: ToEmbed, doc_vectors: list[list[float]]) -> None:
        # everything that can fail on bad input (vector shapes, JSON encoding) happens before
        # the first write
        vectors = self._slot_vectors(to_embed, doc_vectors)
        upserts = {
            item_id(ns, key): (ns, key, json.dumps(dict(op.value), ensure_ascii=False))
            for (ns, key), op in puts.items()
            if op.value is not None
        }
        deletes = [item_id(ns, key) for (ns, key), op in puts.items() if op.value is None]
        existing = self._fetch_items(list(upserts)) if upserts else {}

        # deletions: the item first, then its vectors (an orphan vector is never returned)
        for chunk in chunks(deletes, self._batch_size):
            self._items.delete(ids=chunk)
        for chunk in chunks(list(upserts) + deletes, self._batch_size):
            self._vectors.delete(where={"item": {"$in": chunk}})
        if vectors:
            slots = [slot for slots in to_embed.values() for slot in slots]
            self._upsert_vectors(slots, vectors)
        if upserts:
            self._upsert_items(upserts, existing)

    def _slot_vectors(self, to_embed: ToEmbed, doc_vectors: list[list[float]]) -> list[list[float]]:
        """One vector per slot (a text shared by several slots is embedded once), after
        checking the embedder returned what the index config promised."""
        if len(doc_vectors) != len(to_embed):
            raise ValueError(
                f"the embedder returned {len(doc_vectors)} vectors for {len(to_embed)} texts"
            )
        vectors = [
            vec for vec, text in zip(doc_vectors, to_embed, strict=True) for _ in to_embed[text]
        ]
        for vector in doc_vectors:
            if len(vector) != self._dims:
                raise ValueError(f"index dims is {self._dims}, the embedder gave {len(vector)}")
        return vectors

    def _upsert_vectors(
        self, slots: list[tuple[tuple[str, ...], str, str]], vectors: list[list[float]]
    ) -> None:
        ids = [vector_id(ns, key, path) for ns, key, path in slots]
        metas = [vector_metadata(ns, key, path) for ns, key, path in slots]
        for start in range(0, len(ids), self._batch_size):
            stop = start + self._batch_size
            self._vectors.upsert(
                ids=ids[start:stop], embeddings=vectors[start:stop], metadatas=metas[start:stop]
            )

    def _upsert_items(
        self, upserts: dict[str, tuple[tuple[str, ...], str, str]], existing: dict[str, Item]
    ) -> None:
        """`created_at` survives an update (see the module doc); `updated_at` is now."""
        ids, docs, metas = [], [], []
        for row_id, (ns, key, doc) in upserts.items():
            updated = now()
            created = existing[row_id].created_at if row_id in existing else updated
            ids.append(row_id)
            docs.append(doc)
            metas.append(item_metadata(ns, key, created, updated))
        for start in range(0, len(ids), self._batch_size):
            stop = start + self._batch_size
            self._items.upsert(
                ids=ids[start:stop],
                embeddings=[ITEM_VECTOR] * len(ids[start:stop]),
                documents=docs[start:stop],
                metadatas=metas[start:stop],
            )
