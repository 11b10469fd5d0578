from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent_cl.memory.chroma import ChromaDemonstrationStore
from agent_cl.memory.inmemory import InMemoryDemonstrationStore
from agent_cl.memory.schema import Demonstration

from .conformance import StoreConformance


class TestInMemoryStore(StoreConformance):
    @pytest.fixture
    def store(self, hash_embedder):
        return InMemoryDemonstrationStore(hash_embedder)


class TestInMemoryStoreWithoutVectors(StoreConformance):
    @pytest.fixture
    def store(self):
        return InMemoryDemonstrationStore()


class TestChromaStore(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path, hash_embedder):
        return ChromaDemonstrationStore.open(tmp_path / "chroma", embedder=hash_embedder)


def test_chroma_persists_across_reopen(tmp_path, hash_embedder):
    store = ChromaDemonstrationStore.open(tmp_path / "c", embedder=hash_embedder)
    [demo_id] = store.add([Demonstration(query="q?", answer="a")])
    reopened = ChromaDemonstrationStore.open(tmp_path / "c", embedder=hash_embedder)
    assert reopened.get([demo_id])[0].answer == "a"


def test_chroma_with_offline_minilm_finds_paraphrase(tmp_path):
    """The real offline embedder: a paraphrase retrieves its own demonstration first."""
    store = ChromaDemonstrationStore.open(tmp_path / "c")
    store.add(
        [
            Demonstration(query="Who leads the Talvor Lab?", answer="Fenna Quenmar"),
            Demonstration(query="Where is the Dorbri Unit located?", answer="Kasfen"),
            Demonstration(query="When was the Zelost Office founded?", answer="1931"),
        ]
    )
    hits = store.search("Who is the head of the Talvor Lab?", k=1)
    assert hits[0].demonstration.answer == "Fenna Quenmar"


@pytest.mark.parametrize("field", ["query", "answer", "tenant"])
def test_blank_fields_are_refused(field):
    values = {"query": "q", "answer": "a", field: "  "}
    with pytest.raises(ValidationError):
        Demonstration(**values)


def test_a_store_written_in_one_collection_moves_to_one_per_tenant(tmp_path, hash_embedder):
    """Stores from before per-tenant collections: the rows move once, nothing lost."""
    import chromadb

    client = chromadb.PersistentClient(path=str(tmp_path / "old"))
    legacy = client.get_or_create_collection(
        "demonstrations", embedding_function=None, metadata={"hnsw:space": "cosine"}
    )
    from agent_cl.memory.chroma import _to_metadata

    demos = [Demonstration(query=f"q{i}?", answer="a", tenant="ab"[i % 2]) for i in range(5)]
    legacy.add(
        ids=[d.id for d in demos],
        documents=[d.query for d in demos],
        embeddings=hash_embedder.embed([d.query for d in demos]),
        metadatas=[_to_metadata(d) for d in demos],
    )
    store = ChromaDemonstrationStore(client, embedder=hash_embedder)
    assert store.count() == 5 and store.count(tenant="a") == 3 and store.count(tenant="b") == 2
    assert "demonstrations" not in {c.name for c in client.list_collections()}
    assert store.search("q1?", k=1, tenant="b")[0].demonstration.query == "q1?"
    again = ChromaDemonstrationStore(client, embedder=hash_embedder)  # a second open: no-op
    assert again.count() == 5
