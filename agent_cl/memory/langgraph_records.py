"""How a LangGraph item maps onto Chroma rows and back, kept apart from the store so the layout
(described in `langgraph_store`) is decided in one place: ids, the namespace prefix metadata
that lets Chroma filter a prefix with one equality, and the timestamps.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from langgraph.store.base import Item, SearchItem

SEP = "."  # LangGraph forbids "." inside a namespace label, so joining is reversible
ITEM_VECTOR = [1.0]  # items live in their own collection; Chroma still wants a vector

_clock_lock = threading.Lock()
_last_now = datetime.min.replace(tzinfo=UTC)


def now() -> datetime:
    """UTC now, strictly increasing within the process, so creation order is a total order."""
    global _last_now
    with _clock_lock:
        current = datetime.now(UTC)
        if current <= _last_now:
            current = _last_now + timedelta(microseconds=1)
        _last_now = current
        return current


def item_id(namespace: Sequence[str], key: str) -> str:
    """JSON rather than a joined string, so no key or label can collide with another."""
    return json.dumps([*namespace, key])


def vector_id(namespace: Sequence[str], key: str, path: str) -> str:
    """One row per indexed text: the field path keeps an item's vectors apart."""
    return json.dumps([*namespace, key, path])


def split_namespace(joined: str) -> tuple[str, ...]:
    return tuple(joined.split(SEP)) if joined else ()


def prefix_metadata(namespace: tuple[str, ...]) -> dict[str, str]:
    """One `ns_<n>` entry per depth, so any namespace prefix is a single equality filter."""
    return {f"ns_{n}": SEP.join(namespace[:n]) for n in range(1, len(namespace) + 1)}


def prefix_where(prefix: tuple[str, ...]) -> dict[str, Any] | None:
    return {f"ns_{len(prefix)}": SEP.join(prefix)} if prefix else None


def item_metadata(
    namespace: tuple[str, ...], key: str, created: datetime, updated: datetime
) -> dict[str, Any]:
    return {
        "namespace": SEP.join(namespace),
        "depth": len(namespace),
        "key": key,
        "created_at": created.isoformat(),
        "updated_at": updated.isoformat(),
        **prefix_metadata(namespace),
    }


def vector_metadata(namespace: tuple[str, ...], key: str, path: str) -> dict[str, Any]:
    """Points back at the item, and carries the prefixes so a ranking query can filter too."""
    return {"item": item_id(namespace, key), "path": path, **prefix_metadata(namespace)}


def to_item(document: str, meta: Mapping[str, Any]) -> Item:
    return Item(
        value=json.loads(document),
        key=str(meta["key"]),
        namespace=split_namespace(str(meta["namespace"])),
        created_at=datetime.fromisoformat(str(meta["created_at"])),
        updated_at=datetime.fromisoformat(str(meta["updated_at"])),
    )


def to_search_item(item: Item, score: float | None = None) -> SearchItem:
    return SearchItem(
        namespace=item.namespace,
        key=item.key,
        value=item.value,
        created_at=item.created_at,
        updated_at=item.updated_at,
        score=score,
    )


def chunks(values: list[Any], size: int) -> Iterable[list[Any]]:
    """Chroma refuses a request over its max batch size, so large writes go in slices."""
    for start in range(0, len(values), size):
        yield values[start : start + size]
