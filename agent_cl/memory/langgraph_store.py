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
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    ensure_embeddings,
    get_text_at_path,
)

from agent_cl.memory.chroma_clients import ChromaConnection

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
_SEP = "."  # LangGraph forbids "." inside a namespace label, so joining is reversible
_ITEM_VECTOR = [1.0]  # items live in their own collection; Chroma still wants a vector
_FIRST_WINDOW = 32  # vector rows fetched by the first ranking query


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

    def _prepare(
        self, ops: Iterable[Op]
    ) -> tuple[
        list[Op],
        dict[tuple[tuple[str, ...], str], PutOp],
        dict[str, list[tuple[tuple[str, ...], str, str]]],
        list[str],
    ]:
        """Validate the ops; collect the puts (the last one per item wins), the texts to embed
        (text -> the (namespace, key, path) slots it fills) and the distinct queries."""
        ops = list(ops)
        puts: dict[tuple[tuple[str, ...], str], PutOp] = {}
        queries: list[str] = []
        for op in ops:
            if not isinstance(op, GetOp | PutOp | SearchOp | ListNamespacesOp):
                raise ValueError(f"Unknown operation type: {type(op)}")
            validate_op_namespace(op)
            if isinstance(op, PutOp):
                puts[(tuple(op.namespace), op.key)] = op
            elif isinstance(op, SearchOp) and op.query and op.query not in queries:
                queries.append(op.query)
        to_embed: dict[str, list[tuple[tuple[str, ...], str, str]]] = {}
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
        puts: dict[tuple[tuple[str, ...], str], PutOp],
        to_embed: dict[str, list[tuple[tuple[str, ...], str, str]]],
        doc_vectors: list[list[float]],
        query_vectors: dict[str, list[float]],
    ) -> list[Result]:
        """Reads see the store as it was before this batch's writes, as in InMemoryStore."""
        with self._lock:
            results: list[Result] = [None] * len(ops)
            gets = [(i, op) for i, op in enumerate(ops) if isinstance(op, GetOp)]
            if gets:
                found = self._fetch_items(list({_item_id(op.namespace, op.key) for _, op in gets}))
                for i, op in gets:
                    results[i] = found.get(_item_id(op.namespace, op.key))
            for i, op in enumerate(ops):
                if isinstance(op, SearchOp):
                    results[i] = self._search(op, query_vectors.get(op.query or ""))
                elif isinstance(op, ListNamespacesOp):
                    results[i] = self._list_namespaces(op)
            if puts:
                self._write(puts, to_embed, doc_vectors)
            return results

    def _fetch_items(self, ids: list[str]) -> dict[str, Item]:
        found: dict[str, Item] = {}
        for chunk in _chunks(ids, self._batch_size):
            rows = self._items.get(ids=chunk, include=["documents", "metadatas"])
            for item_id, doc, meta in zip(
                rows["ids"], rows["documents"], rows["metadatas"], strict=True
            ):
                found[item_id] = _to_item(doc, meta)
        return found

    def _items_under(self, prefix: tuple[str, ...]) -> list[tuple[str, Item]]:
        """(id, item) under a namespace prefix, oldest first."""
        rows = self._items.get(where=_prefix_where(prefix), include=["documents", "metadatas"])
        items = [
            (item_id, _to_item(doc, meta))
            for item_id, doc, meta in zip(
                rows["ids"], rows["documents"], rows["metadatas"], strict=True
            )
        ]
        items.sort(key=lambda pair: (pair[1].created_at, pair[1].namespace, pair[1].key))
        return items

    def _search(self, op: SearchOp, query_vector: list[float] | None) -> list[SearchItem]:
        candidates = [
            (item_id, item)
            for item_id, item in self._items_under(tuple(op.namespace_prefix))
            if not op.filter or _matches(item.value, op.filter)
        ]
        if query_vector is None or not op.query:
            return [_search_item(item) for _, item in candidates[op.offset : op.offset + op.limit]]
        if not candidates:
            return []
        by_id = dict(candidates)
        ranked, exhausted = self._rank(query_vector, tuple(op.namespace_prefix), by_id, op)
        kept = [
            _search_item(by_id[item_id], score)
            for item_id, score in ranked[max(op.offset, 0) : op.offset + op.limit]
        ]
        if exhausted and len(kept) < op.limit:
            # as InMemoryStore: fill up with the matches that have no vectors, unscored
            scored = {item_id for item_id, _ in ranked}
            unscored = [item for item_id, item in candidates if item_id not in scored]
            kept.extend(_search_item(item) for item in unscored[: op.limit - len(kept)])
        return kept

    def _rank(
        self,
        query_vector: list[float],
        prefix: tuple[str, ...],
        candidates: Mapping[str, Item],
        op: SearchOp,
    ) -> tuple[list[tuple[str, float]], bool]:
        """Candidates by their best-matching vector (max pooling), best first: at least
        offset + limit of them, or all when `exhausted` (every vector under the prefix seen)."""
        wanted = max(op.offset + op.limit, 0)
        window = max(_FIRST_WINDOW, 2 * wanted)
        where = _prefix_where(prefix)
        total = len(self._vectors.get(where=where, include=[])["ids"])
        while True:
            rows = self._vectors.query(
                query_embeddings=[query_vector],
                n_results=max(min(window, total), 1),
                where=where,
                include=["metadatas", "distances"],
            )
            ranked: list[tuple[str, float]] = []
            seen: set[str] = set()
            for meta, distance in zip(rows["metadatas"][0], rows["distances"][0], strict=True):
                item_id = meta["item"]
                if item_id in candidates and item_id not in seen:
                    seen.add(item_id)
                    ranked.append((item_id, 1.0 - float(distance)))
            # A filtered HNSW query may return fewer rows than asked although more exist
            # (measured: an item's only vector missing under load), so "exhausted" is decided
            # by the count, and what the index skipped is scored exactly.
            exhausted = window >= total
            if exhausted:
                return self._score_skipped(query_vector, where, candidates, ranked), True
            if len(ranked) >= wanted:
                return ranked, False
            window *= 4

    def _score_skipped(self, query_vector, where, candidates, ranked):
        seen = {item_id for item_id, _ in ranked}
        rows = self._vectors.get(where=where, include=["metadatas", "embeddings"])
        best: dict[str, float] = {}
        for meta, vector in zip(rows["metadatas"], rows["embeddings"], strict=True):
            item_id = meta["item"]
            if item_id in candidates and item_id not in seen:
                best[item_id] = max(best.get(item_id, -2.0), _cosine(query_vector, vector))
        if not best:
            return ranked
        merged = [*ranked, *best.items()]
        return sorted(merged, key=lambda pair: pair[1], reverse=True)

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        conditions = op.match_conditions or ()
        clauses: list[dict[str, Any]] = []
        for condition in conditions:
            if condition.path:
                clauses.append({"depth": {"$gte": len(condition.path)}})
            if condition.match_type == "prefix":
                fixed = []
                for label in condition.path:
                    if label == "*":
                        break
                    fixed.append(label)
                if fixed:
                    clauses.append(_prefix_where(tuple(fixed)))
        where = None if not clauses else clauses[0] if len(clauses) == 1 else {"$and": clauses}
        rows = self._items.get(where=where, include=["metadatas"])
        namespaces = {_split(meta["namespace"]) for meta in rows["metadatas"]}
        namespaces = {ns for ns in namespaces if all(_ns_matches(c, ns) for c in conditions)}
        if op.max_depth is not None:
            namespaces = {ns[: op.max_depth] for ns in namespaces}
        return sorted(namespaces)[op.offset : op.offset + op.limit]

    def _write(
        self,
        puts: dict[tuple[tuple[str, ...], str], PutOp],
        to_embed: dict[str, list[tuple[tuple[str, ...], str, str]]],
        doc_vectors: list[list[float]],
    ) -> None:
        slots = [slot for slots in to_embed.values() for slot in slots]
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
        # everything that can fail on bad input (JSON encoding) happens before the first write
        upserts = {
            _item_id(ns, key): (ns, key, json.dumps(dict(op.value), ensure_ascii=False))
            for (ns, key), op in puts.items()
            if op.value is not None
        }
        deletes = [_item_id(ns, key) for (ns, key), op in puts.items() if op.value is None]
        touched = list(upserts) + deletes
        existing = self._fetch_items(list(upserts)) if upserts else {}

        # deletions: the item first, then its vectors (an orphan vector is never returned)
        for chunk in _chunks(deletes, self._batch_size):
            self._items.delete(ids=chunk)
        for chunk in _chunks(touched, self._batch_size):
            self._vectors.delete(where={"item": {"$in": chunk}})
        if vectors:
            ids, metas = [], []
            for ns, key, path in slots:
                item_id = _item_id(ns, key)
                ids.append(json.dumps([*ns, key, path]))
                metas.append({"item": item_id, "path": path, **_prefix_metadata(ns)})
            for start in range(0, len(ids), self._batch_size):
                stop = start + self._batch_size
                self._vectors.upsert(
                    ids=ids[start:stop], embeddings=vectors[start:stop], metadatas=metas[start:stop]
                )
        if upserts:
            ids, docs, metas = [], [], []
            for item_id, (ns, key, doc) in upserts.items():
                now = _now()
                created = existing[item_id].created_at if item_id in existing else now
                ids.append(item_id)
                docs.append(doc)
                metas.append(
                    {
                        "namespace": _SEP.join(ns),
                        "depth": len(ns),
                        "key": key,
                        "created_at": created.isoformat(),
                        "updated_at": now.isoformat(),
                        **_prefix_metadata(ns),
                    }
                )
            for start in range(0, len(ids), self._batch_size):
                stop = start + self._batch_size
                self._items.upsert(
                    ids=ids[start:stop],
                    embeddings=[_ITEM_VECTOR] * len(ids[start:stop]),
                    documents=docs[start:stop],
                    metadatas=metas[start:stop],
                )


# -------------------------------------------------------------------- helpers


_clock_lock = threading.Lock()
_last_now = datetime.min.replace(tzinfo=UTC)


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norms if norms else 0.0


def _now() -> datetime:
    """UTC now, strictly increasing within the process, so creation order is a total order."""
    global _last_now
    with _clock_lock:
        now = datetime.now(UTC)
        if now <= _last_now:
            now = _last_now + timedelta(microseconds=1)
        _last_now = now
        return now


def _item_id(namespace: Sequence[str], key: str) -> str:
    return json.dumps([*namespace, key])


def _split(joined: str) -> tuple[str, ...]:
    return tuple(joined.split(_SEP)) if joined else ()


def _prefix_metadata(namespace: tuple[str, ...]) -> dict[str, str]:
    return {f"ns_{n}": _SEP.join(namespace[:n]) for n in range(1, len(namespace) + 1)}


def _prefix_where(prefix: tuple[str, ...]) -> dict[str, Any] | None:
    return {f"ns_{len(prefix)}": _SEP.join(prefix)} if prefix else None


def _to_item(document: str, meta: Mapping[str, Any]) -> Item:
    return Item(
        value=json.loads(document),
        key=str(meta["key"]),
        namespace=_split(str(meta["namespace"])),
        created_at=datetime.fromisoformat(str(meta["created_at"])),
        updated_at=datetime.fromisoformat(str(meta["updated_at"])),
    )


def _search_item(item: Item, score: float | None = None) -> SearchItem:
    return SearchItem(
        namespace=item.namespace,
        key=item.key,
        value=item.value,
        created_at=item.created_at,
        updated_at=item.updated_at,
        score=score,
    )


def _chunks(values: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _ns_matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    """A namespace against a prefix/suffix pattern in which "*" stands for any one label."""
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        part = namespace[: len(path)]
    elif condition.match_type == "suffix":
        part = namespace[len(namespace) - len(path) :]
    else:
        raise ValueError(f"Unsupported match type: {condition.match_type}")
    return all(want in ("*", label) for want, label in zip(path, part, strict=True))


def _matches(value: Mapping[str, Any], filter: Mapping[str, Any]) -> bool:
    return all(_value_matches(value.get(field), want) for field, want in filter.items())


def _value_matches(actual: Any, want: Any) -> bool:
    """InMemoryStore's filter semantics: an operator dict, a nested dict (every field must
    match), a list (same length, element-wise), else plain equality."""
    if isinstance(want, dict):
        if any(str(k).startswith("$") for k in want):
            return all(_compare(actual, operator, arg) for operator, arg in want.items())
        return isinstance(actual, dict) and all(
            _value_matches(actual.get(k), v) for k, v in want.items()
        )
    if isinstance(want, list | tuple):
        return (
            isinstance(actual, list | tuple)
            and len(actual) == len(want)
            and all(_value_matches(a, w) for a, w in zip(actual, want, strict=True))
        )
    return actual == want


def _compare(actual: Any, operator: str, arg: Any) -> bool:
    if operator == "$eq":
        return actual == arg
    if operator == "$ne":
        return actual != arg
    if operator not in ("$gt", "$gte", "$lt", "$lte"):
        raise ValueError(f"Unsupported operator: {operator}")
    try:
        left, right = float(actual), float(arg)
    except (TypeError, ValueError):
        return False  # InMemoryStore raises here; a missing field simply does not match
    if operator == "$gt":
        return left > right
    if operator == "$gte":
        return left >= right
    if operator == "$lt":
        return left < right
    return left <= right
