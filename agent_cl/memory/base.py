"""The store protocol every demonstration backend implements.

Backends declare optional capabilities instead of faking them (as LangGraph's BaseStore does
with `supports_ttl`): a store without vector search raises `NotImplementedError` on `search`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from agent_cl.memory.schema import Demonstration, DemoStatus


class UnknownDemonstrationError(KeyError):
    """An id that the store does not hold."""


@dataclass(frozen=True)
class ScoredDemonstration:
    demonstration: Demonstration
    score: float  # cosine similarity, higher is closer


class DemonstrationStore(ABC):
    supports_vector_search: bool = False

    @abstractmethod
    def add(self, demonstrations: Sequence[Demonstration]) -> list[str]:
        """Store demonstrations; returns their ids. Duplicates (same id) are kept once."""

    @abstractmethod
    def get(self, ids: Sequence[str], *, tenant: str | None = None) -> list[Demonstration]:
        """Demonstrations by id, in the given order; unknown ids raise. With `tenant`, another
        tenant's demonstration is unknown too: a night never reads outside its tenant."""

    @abstractmethod
    def list(
        self,
        *,
        tenant: str | None = None,
        status: DemoStatus | None = None,
        skill: str | None = None,
        limit: int | None = None,
    ) -> list[Demonstration]:
        """Demonstrations matching every given filter, oldest first."""

    @abstractmethod
    def set_status(
        self,
        ids: Sequence[str],
        status: DemoStatus,
        *,
        adapter_version: int | None = None,
        reason: str = "",
        tenant: str | None = None,
        add_attempt: bool = False,
    ) -> None:
        """Move demonstrations to `status` (all or nothing: unknown ids raise first, and with
        `tenant` so do other tenants' ids); `reason` says why (a rejected batch carries the
        gate's verdict); `add_attempt` counts one more rejected night on each."""

    def search(
        self,
        query: str,
        *,
        k: int = 4,
        tenant: str | None = None,
        status: DemoStatus | None = None,
        skill: str | None = None,
    ) -> list[ScoredDemonstration]:
        """The `k` demonstrations whose queries are closest to `query`."""
        raise NotImplementedError(f"{type(self).__name__} does not support vector search")

    def count(self, *, tenant: str | None = None, status: DemoStatus | None = None) -> int:
        return len(self.list(tenant=tenant, status=status))

    def pending(self, tenant: str) -> list[Demonstration]:
        return self.list(tenant=tenant, status=DemoStatus.PENDING)


def check_search_args(query: str, k: int) -> None:
    if not query or not query.strip():
        raise ValueError("search query must not be empty")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def matches(
    demo: Demonstration,
    tenant: str | None,
    status: DemoStatus | None,
    skill: str | None,
) -> bool:
    return (
        (tenant is None or demo.tenant == tenant)
        and (status is None or demo.status == status)
        and (skill is None or demo.skill == skill)
    )


def unique_by_id(demos: Iterable[Demonstration]) -> dict[str, Demonstration]:
    out: dict[str, Demonstration] = {}
    for demo in demos:
        out.setdefault(demo.id, demo)
    return out
