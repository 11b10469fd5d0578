"""One behavioural suite for every DemonstrationStore backend (see test_stores.py)."""

from __future__ import annotations

import pytest

from agent_cl.memory.base import DemonstrationStore, UnknownDemonstrationError
from agent_cl.memory.schema import Demonstration, DemoStatus


def demo(i: int, tenant: str = "a", skill: str = "facts") -> Demonstration:
    return Demonstration(
        query=f"Who leads the lab number {i}?",
        answer=f"Person {i} leads it.",
        context=f"Lab {i} is led by Person {i}.",
        tenant=tenant,
        skill=skill,
        created_at=1000.0 + i,
        metadata={"expected": f"Person {i}"},
    )


class StoreConformance:
    """Subclass and provide a `store` fixture."""

    def test_add_returns_ids_and_dedups(self, store: DemonstrationStore):
        ids = store.add([demo(1), demo(2), demo(1)])
        assert ids[0] == ids[2] != ids[1]
        assert store.count() == 2
        store.add([demo(2)])
        assert store.count() == 2

    def test_round_trip_keeps_every_field(self, store: DemonstrationStore):
        original = demo(3)
        [demo_id] = store.add([original])
        [back] = store.get([demo_id])
        assert back.model_dump() == original.model_dump()

    def test_get_unknown_raises(self, store: DemonstrationStore):
        with pytest.raises(UnknownDemonstrationError):
            store.get(["nope"])

    def test_get_and_set_status_stay_inside_a_tenant(self, store: DemonstrationStore):
        [mine, theirs] = store.add([demo(1, tenant="a"), demo(2, tenant="b")])
        assert store.get([mine], tenant="a")[0].tenant == "a"
        with pytest.raises(UnknownDemonstrationError):
            store.get([mine, theirs], tenant="a")
        with pytest.raises(UnknownDemonstrationError):
            store.set_status([theirs], DemoStatus.CLAIMED, tenant="a")
        assert store.get([theirs])[0].status == DemoStatus.PENDING  # nothing was written

    def test_list_filters_and_orders_oldest_first(self, store: DemonstrationStore):
        store.add([demo(5), demo(4), demo(6, tenant="b"), demo(7, skill="json")])
        assert [d.query for d in store.list(tenant="a", skill="facts")] == [
            demo(4).query,
            demo(5).query,
        ]
        assert len(store.list(tenant="b")) == 1
        assert len(store.list(limit=2)) == 2

    def test_status_life_cycle(self, store: DemonstrationStore):
        ids = store.add([demo(1), demo(2), demo(3)])
        assert len(store.pending("a")) == 3
        store.set_status(ids[:2], DemoStatus.CONSOLIDATED, adapter_version=4)
        assert [d.id for d in store.pending("a")] == [ids[2]]
        done = store.list(status=DemoStatus.CONSOLIDATED)
        assert {d.adapter_version for d in done} == {4}
        assert store.count(status=DemoStatus.CONSOLIDATED) == 2

    def test_a_rejected_nights_attempts_are_counted_and_kept(self, store: DemonstrationStore):
        ids = store.add([demo(1), demo(2)])
        store.set_status(ids[:1], DemoStatus.PENDING, reason="retried: drop", add_attempt=True)
        store.set_status(ids[:1], DemoStatus.REJECTED, reason="drop", add_attempt=True)
        store.set_status(ids[1:], DemoStatus.CLAIMED)  # other moves leave the count alone
        first, second = store.get(ids)
        assert (first.status, first.attempts, first.status_reason) == (
            DemoStatus.REJECTED,
            2,
            "drop",
        )
        assert second.attempts == 0

    def test_set_status_unknown_id_changes_nothing(self, store: DemonstrationStore):
        ids = store.add([demo(1)])
        with pytest.raises(UnknownDemonstrationError):
            store.set_status([ids[0], "missing"], DemoStatus.CONSOLIDATED)
        assert store.get(ids)[0].status == DemoStatus.PENDING

    def test_search_ranks_similar_first_and_filters(self, store: DemonstrationStore):
        if not store.supports_vector_search:
            with pytest.raises(NotImplementedError):
                store.search("anything")
            pytest.skip("backend declares no vector search")
        store.add(
            [
                Demonstration(query="What is the capital of Veyra?", answer="Tal", tenant="a"),
                Demonstration(query="Who founded the bakery?", answer="Ola", tenant="a"),
                Demonstration(query="What is the capital of Veyra?", answer="X", tenant="b"),
            ]
        )
        hits = store.search("capital of Veyra", k=2, tenant="a")
        assert hits[0].demonstration.answer == "Tal"
        assert all(h.demonstration.tenant == "a" for h in hits)
        assert hits[0].score >= hits[-1].score

    def test_search_rejects_bad_input(self, store: DemonstrationStore):
        if not store.supports_vector_search:
            pytest.skip("backend declares no vector search")
        with pytest.raises(ValueError):
            store.search("   ")
        with pytest.raises(ValueError):
            store.search("q", k=0)
