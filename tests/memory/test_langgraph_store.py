"""ChromaStore behaves like LangGraph's InMemoryStore: every shared test runs the same
assertions against both (the `store` and `indexed_store` fixtures), then Chroma-only tests cover
persistence, a real Chroma server and a compiled graph using `runtime.store`."""

from __future__ import annotations

import asyncio
import hashlib
import math
import uuid
from collections.abc import Sequence
from datetime import timedelta

import pytest
from langgraph.store.base import (
    GetOp,
    InvalidNamespaceError,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore

from agent_cl.managed_process import free_port
from agent_cl.memory.chroma_server import ChromaServer
from agent_cl.memory.langgraph_store import ChromaStore

DIMS = 64


def bag_of_words(texts: Sequence[str]) -> list[list[float]]:
    """Deterministic fake embeddings: hashed word counts plus a constant bias dimension (so no
    vector is zero); texts sharing words score higher."""
    vectors = []
    for text in texts:
        vector = [0.0] * DIMS
        vector[-1] = 0.5
        for word in text.lower().split():
            word = word.strip('{}[]":,.?!')
            vector[hashlib.md5(word.encode()).digest()[0] % (DIMS - 1)] += 1.0
        vectors.append(vector)
    return vectors


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def index_config() -> dict:
    return {"dims": DIMS, "embed": bag_of_words, "fields": ["text"]}


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory):
    """One real `chroma run` for the module; each test gets collections of its own."""
    with ChromaServer(tmp_path_factory.mktemp("lg-server"), port=free_port()) as server:
        yield server


def make_store(kind: str, request, tmp_path, index=None):
    if kind == "memory":
        return InMemoryStore(index=index)
    if kind == "server":
        server = request.getfixturevalue("chroma_server")
        return ChromaStore.from_url(server.url, index=index, collection=f"t{uuid.uuid4().hex}")
    return ChromaStore.open(tmp_path / "chroma", index=index)


KINDS = ["memory", "chroma", "server"]  # InMemoryStore, embedded Chroma, Chroma's server


@pytest.fixture(params=KINDS)
def store(request, tmp_path):
    made = make_store(request.param, request, tmp_path)
    yield made
    if isinstance(made, ChromaStore):
        made.close()


@pytest.fixture(params=KINDS)
def indexed_store(request, tmp_path):
    made = make_store(request.param, request, tmp_path, index=index_config())
    yield made
    if isinstance(made, ChromaStore):
        made.close()


def keys(items) -> list[str]:
    return [item.key for item in items]


# ------------------------------------------------------------------ shared behaviour


def test_put_get_update_delete(store):
    assert store.get(("users", "1"), "prefs") is None
    store.put(("users", "1"), "prefs", {"theme": "dark", "sizes": [1, 2], "nested": {"a": None}})
    item = store.get(("users", "1"), "prefs")
    assert item.namespace == ("users", "1") and item.key == "prefs"
    assert item.value == {"theme": "dark", "sizes": [1, 2], "nested": {"a": None}}
    assert item.created_at.utcoffset() == timedelta(0)
    assert item.updated_at >= item.created_at

    store.put(("users", "1"), "prefs", {"theme": "light"})
    updated = store.get(("users", "1"), "prefs")
    assert updated.value == {"theme": "light"}
    assert updated.updated_at > item.updated_at
    assert store.get(("users", "2"), "prefs") is None  # namespaces are separate
    assert store.get(("users",), "prefs") is None  # a prefix is not the namespace

    store.delete(("users", "1"), "prefs")
    assert store.get(("users", "1"), "prefs") is None
    store.delete(("users", "1"), "never-there")  # deleting nothing is fine


def test_keys_and_values_round_trip_unusual_text(store):
    ns = ("odd", "ünïcode")
    for key in ("with space", "a.b/c", "\x00nul", "[1, 2]", '"quoted"'):
        store.put(ns, key, {"k": key, "emoji": "🙂"})
    for key in ("with space", "a.b/c", "\x00nul", "[1, 2]", '"quoted"'):
        assert store.get(ns, key).value == {"k": key, "emoji": "🙂"}
    assert sorted(keys(store.search(ns))) == sorted(
        ["with space", "a.b/c", "\x00nul", "[1, 2]", '"quoted"']
    )


@pytest.mark.parametrize(
    "namespace",
    [(), ("langgraph", "x"), ("a.b",), ("",), ("a", ""), ("nul\x00",), ("a", 1)],
)
def test_put_refuses_invalid_namespaces(store, namespace):
    with pytest.raises(InvalidNamespaceError):
        store.put(namespace, "k", {"v": 1})


@pytest.mark.parametrize("namespace", [("a.b",), ("",), ("x", "nul\x00")])
def test_reads_refuse_invalid_labels(store, namespace):
    with pytest.raises(InvalidNamespaceError):
        store.get(namespace, "k")
    with pytest.raises(InvalidNamespaceError):
        store.search(namespace)
    with pytest.raises(InvalidNamespaceError):
        store.delete(namespace, "k")
    with pytest.raises(InvalidNamespaceError):
        store.list_namespaces(prefix=namespace)
    with pytest.raises(InvalidNamespaceError):
        store.list_namespaces(suffix=namespace)


def test_search_filters_like_in_memory(store):
    store.batch(
        [
            PutOp(("docs", "a"), "1", {"color": "red", "score": 5, "meta": {"lang": "en"}}),
            PutOp(("docs", "a"), "2", {"color": "blue", "score": 3.5, "tags": ["x", "y"]}),
            PutOp(("docs", "b"), "3", {"color": "red", "score": 1, "meta": {"lang": "fr"}}),
            PutOp(("docs", "b"), "4", {"color": "green", "score": "7"}),
            PutOp(("other",), "5", {"color": "red", "score": 9}),
        ]
    )

    def found(prefix=("docs",), **filter_):
        return sorted(keys(store.search(prefix, filter=filter_ or None)))

    assert found() == ["1", "2", "3", "4"]
    assert found(("docs", "b")) == ["3", "4"]
    assert found(()) == ["1", "2", "3", "4", "5"]
    assert found(("nothing",)) == []
    assert found(("docs", "a", "deeper")) == []
    assert found(color="red") == ["1", "3"]
    assert found(color={"$eq": "red"}) == ["1", "3"]
    assert found(color={"$ne": "red"}) == ["2", "4"]
    assert found(score={"$gt": 3.5}) == ["1", "4"]  # "7" compares as a number, as in memory
    assert found(score={"$gte": 3.5}) == ["1", "2", "4"]
    assert found(score={"$lt": 3.5}) == ["3"]
    assert found(score={"$lte": 3.5}) == ["2", "3"]
    assert found(score={"$gt": 1, "$lt": 6}) == ["1", "2"]
    assert found(color="red", score={"$gte": 2}) == ["1"]
    assert found(meta={"lang": "fr"}) == ["3"]
    assert found(tags=["x", "y"]) == ["2"]
    assert found(tags=["x"]) == []
    assert found(color="purple") == []
    assert found(missing=None) == ["1", "2", "3", "4"]  # an absent field equals None


def test_search_pages_in_insertion_order_and_updates_keep_their_place(store):
    store.batch([PutOp(("log",), f"k{i}", {"i": i, "even": i % 2 == 0}) for i in range(7)])
    assert keys(store.search(("log",), limit=3)) == ["k0", "k1", "k2"]
    assert keys(store.search(("log",), limit=3, offset=3)) == ["k3", "k4", "k5"]
    assert keys(store.search(("log",), limit=3, offset=6)) == ["k6"]
    assert keys(store.search(("log",), limit=3, offset=9)) == []
    assert keys(store.search(("log",), filter={"even": True}, limit=2, offset=1)) == ["k2", "k4"]
    assert len(store.search(("log",))) == 7  # the default limit is 10

    store.put(("log",), "k1", {"i": 100, "even": True})  # an update keeps its place
    store.delete(("log",), "k0")
    store.put(("log",), "k0", {"i": 0, "even": True})  # re-created: goes last
    assert keys(store.search(("log",), limit=10)) == ["k1", "k2", "k3", "k4", "k5", "k6", "k0"]
    assert all(item.score is None for item in store.search(("log",), query="anything"))


def test_batch_reads_see_the_store_before_its_writes_and_the_last_put_wins(store):
    store.put(("b",), "x", {"v": 0})
    results = store.batch(
        [
            PutOp(("b",), "x", {"v": 1}),
            GetOp(("b",), "x"),
            PutOp(("b",), "y", {"v": 1}),
            PutOp(("b",), "y", {"v": 2}),
            SearchOp(("b",)),
            ListNamespacesOp(),
        ]
    )
    assert results[0] is None and results[2] is None and results[3] is None
    assert results[1].value == {"v": 0}
    assert [(i.key, i.value) for i in results[4]] == [("x", {"v": 0})]
    assert results[5] == [("b",)]
    assert store.get(("b",), "x").value == {"v": 1}
    assert store.get(("b",), "y").value == {"v": 2}


NAMESPACES = [
    ("a", "b", "c"),
    ("a", "b", "d", "e"),
    ("a", "b", "d", "i"),
    ("a", "b", "f"),
    ("a", "c", "f"),
    ("x", "y", "f"),
    ("x",),
]


def test_list_namespaces(store):
    store.batch([PutOp(ns, "k", {"n": len(ns)}) for ns in NAMESPACES])
    store.put(("a", "b", "c"), "second", {"n": 0})  # one namespace, listed once

    assert store.list_namespaces() == sorted(NAMESPACES)
    assert store.list_namespaces(prefix=("a", "b")) == [
        ("a", "b", "c"),
        ("a", "b", "d", "e"),
        ("a", "b", "d", "i"),
        ("a", "b", "f"),
    ]
    assert store.list_namespaces(prefix=("a", "b"), max_depth=3) == [
        ("a", "b", "c"),
        ("a", "b", "d"),
        ("a", "b", "f"),
    ]
    assert store.list_namespaces(max_depth=1) == [("a",), ("x",)]
    assert store.list_namespaces(max_depth=2) == [("a", "b"), ("a", "c"), ("x",), ("x", "y")]
    assert store.list_namespaces(suffix=("f",)) == [
        ("a", "b", "f"),
        ("a", "c", "f"),
        ("x", "y", "f"),
    ]
    assert store.list_namespaces(prefix=("a",), suffix=("f",)) == [("a", "b", "f"), ("a", "c", "f")]
    assert store.list_namespaces(prefix=("*", "*", "f")) == [
        ("a", "b", "f"),
        ("a", "c", "f"),
        ("x", "y", "f"),
    ]
    assert store.list_namespaces(prefix=("a", "*", "d")) == [
        ("a", "b", "d", "e"),
        ("a", "b", "d", "i"),
    ]
    assert store.list_namespaces(suffix=("d", "*")) == [("a", "b", "d", "e"), ("a", "b", "d", "i")]
    assert store.list_namespaces(suffix=("*",)) == sorted(NAMESPACES)
    assert store.list_namespaces(prefix=("a", "b", "c", "d")) == []  # longer than any match
    assert store.list_namespaces(prefix=("b",)) == []
    assert store.list_namespaces(limit=2) == [("a", "b", "c"), ("a", "b", "d", "e")]
    assert store.list_namespaces(limit=2, offset=5) == [("x",), ("x", "y", "f")]
    assert store.list_namespaces(offset=10) == []
    conditions = (
        MatchCondition("prefix", ("a", "*")),
        MatchCondition("suffix", ("f",)),
    )
    assert store.batch([ListNamespacesOp(conditions, max_depth=2, limit=1, offset=1)]) == [
        [("a", "c")]
    ]


def test_semantic_search_ranks_by_cosine_with_scores(indexed_store):
    store = indexed_store
    texts = {
        "py": "python tutorial for beginners",
        "ts": "typescript guide for web developers",
        "pasta": "how to cook fresh pasta",
        "snake": "python snake care guide",
    }
    store.batch([PutOp(("docs",), key, {"text": text}) for key, text in texts.items()])
    store.put(("docs",), "raw", {"text": "python python python"}, index=False)
    store.put(("docs",), "untexted", {"title": "python without a text field"})
    store.put(("elsewhere",), "py2", {"text": "python tutorial for beginners"})

    query = "python guide"
    [query_vector] = bag_of_words([query])
    expected = {key: cosine(query_vector, bag_of_words([t])[0]) for key, t in texts.items()}
    ranking = sorted(expected, key=expected.get, reverse=True)

    hits = store.search(("docs",), query=query, limit=4)
    assert keys(hits) == ranking
    for hit in hits:
        assert hit.score == pytest.approx(expected[hit.key], abs=1e-5)
    assert keys(store.search(("docs",), query=query, limit=2, offset=1)) == ranking[1:3]

    # past the ranked items come the unindexed ones, unscored, in insertion order
    everything = store.search(("docs",), query=query, limit=10)
    assert keys(everything) == [*ranking, "raw", "untexted"]
    assert [hit.score is None for hit in everything] == [False] * 4 + [True] * 2

    filtered = store.search(("docs",), query="python", filter={"text": {"$ne": texts["py"]}})
    assert keys(filtered)[0] == "snake" and "py" not in keys(filtered)
    assert keys(store.search(("elsewhere",), query=query)) == ["py2"]
    assert store.search(("none",), query=query) == []


def test_semantic_search_indexes_chosen_fields_and_pools_lists(indexed_store):
    store = indexed_store
    store.put(
        ("n",), "tags", {"text": "cooking", "tags": ["gardening", "python code"]}, index=["tags[*]"]
    )
    store.put(("n",), "title", {"text": "unrelated words", "title": "python code"}, index=["title"])
    store.put(("n",), "plain", {"text": "pasta recipes"})
    hits = store.search(("n",), query="python code", limit=3)
    assert set(keys(hits[:2])) == {"tags", "title"}  # the best list element counts
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[1].score == pytest.approx(1.0, abs=1e-5)

    def scores(query: str) -> dict[str, float]:
        return {hit.key: hit.score for hit in store.search(("n",), query=query)}

    assert scores("cooking")["tags"] < 0.5  # its text field is not indexed

    store.put(("n",), "plain", {"text": "python code"})  # re-embedded on update
    assert scores("pasta recipes")["plain"] < 0.5
    assert scores("python code") == pytest.approx({"tags": 1.0, "title": 1.0, "plain": 1.0})


def test_semantic_search_with_a_selective_filter_looks_past_the_nearest(indexed_store):
    store = indexed_store
    near = [
        PutOp(("many",), f"near{i}", {"text": f"python guide {i}", "keep": False})
        for i in range(70)
    ]
    kept = [
        PutOp(("many",), "far", {"text": "python snakes", "keep": True}),
        PutOp(("many",), "farther", {"text": "pasta", "keep": True}),
        PutOp(("many",), "unindexed", {"title": "python guide", "keep": True}),
    ]
    store.batch(near + kept)
    hits = store.search(("many",), query="python guide", filter={"keep": True})
    assert keys(hits) == ["far", "farther", "unindexed"]
    assert hits[0].score > hits[1].score > 0 and hits[2].score is None
    page = store.search(("many",), query="python guide", filter={"keep": True}, limit=2, offset=1)
    assert keys(page) == ["farther", "unindexed"]
    assert len(store.search(("many",), query="python guide", limit=50)) == 50


def test_concurrent_async_calls(indexed_store):
    store = indexed_store

    async def scenario():
        await asyncio.gather(
            *(
                store.aput(("async", str(i % 3)), f"k{i}", {"text": f"word{i} shared", "i": i})
                for i in range(12)
            )
        )
        got = await asyncio.gather(*(store.aget(("async", str(i % 3)), f"k{i}") for i in range(12)))
        assert [item.value["i"] for item in got] == list(range(12))
        batches = await asyncio.gather(
            store.abatch([GetOp(("async", "0"), "k0"), SearchOp(("async",), limit=20)]),
            store.abatch([PutOp(("async", "0"), "k0", {"text": "changed", "i": -1})]),
            store.asearch(("async",), query="word5 shared", limit=1),
            store.alist_namespaces(prefix=("async",)),
        )
        assert batches[0][0].key == "k0" and len(batches[0][1]) == 12
        assert keys(batches[2]) == ["k5"]
        assert batches[3] == [("async", "0"), ("async", "1"), ("async", "2")]
        assert (await store.aget(("async", "0"), "k0")).value == {"text": "changed", "i": -1}
        # racing writers on one key: one of them wins, whole
        await asyncio.gather(*(store.aput(("race",), "k", {"writer": w}) for w in range(6)))
        assert (await store.aget(("race",), "k")).value["writer"] in range(6)
        await asyncio.gather(*(store.adelete(("async", str(i % 3)), f"k{i}") for i in range(12)))
        assert await store.asearch(("async",)) == []

    asyncio.run(scenario())


def test_async_only_embedder_works_through_the_async_api(tmp_path):
    async def embed(texts):
        return bag_of_words(texts)

    for made in (
        InMemoryStore(index={"dims": DIMS, "embed": embed}),  # fields: the whole value, "$"
        ChromaStore.open(tmp_path / "c", index={"dims": DIMS, "embed": embed}),
    ):

        async def scenario(store=made):
            await store.aput(("a",), "1", {"text": "alpha beta"})
            await store.aput(("a",), "2", {"text": "gamma delta"})
            return await store.asearch(("a",), query="gamma")

        assert keys(asyncio.run(scenario()))[0] == "2"
        with pytest.raises(ValueError):  # as in memory: an async embedder has no sync path
            made.search(("a",), query="gamma")
        if isinstance(made, ChromaStore):
            made.close()


# ------------------------------------------------------------------ Chroma only


def test_chroma_persists_and_refuses_bad_input(tmp_path):
    with ChromaStore.open(tmp_path / "c", index=index_config()) as store:
        store.put(("keep",), "k", {"text": "python notes"})
        first = store.get(("keep",), "k")
        store.put(("keep",), "k", {"text": "python notes, revised"})
        second = store.get(("keep",), "k")
        # deliberate difference: created_at survives an update (InMemoryStore resets it)
        assert second.created_at == first.created_at < second.updated_at
        store.put(("gone",), "k", {"v": 1})
        store.delete(("gone",), "k")
        # deliberate difference: emptied namespaces are not listed
        assert store.get(("never",), "k") is None
        assert store.list_namespaces() == [("keep",)]  # in memory: also ("gone",), ("never",)
        # InMemoryStore raises on one text in two places in a batch; we embed it once
        store.batch(
            [
                PutOp(
                    ("dup",),
                    "1",
                    {"text": "same words", "tags": ["same words"]},
                    ["text", "tags[*]"],
                ),
                PutOp(("dup",), "2", {"text": "same words"}, index=["text", "text"]),
            ]
        )
        hits = store.search(("dup",), query="same words")
        assert sorted(keys(hits)) == ["1", "2"]
        assert [h.score for h in hits] == pytest.approx([1.0, 1.0])
        assert store.search(("dup",), filter={"missing": {"$gt": 1}}) == []  # in memory: raises
        with pytest.raises(InvalidNamespaceError):  # ops given straight to batch are checked
            store.batch([PutOp(("a.b",), "k", {"v": 1})])
        with pytest.raises(TypeError):
            store.put(("keep",), "bad", {"v": object()})  # values must be JSON
        assert store.get(("keep",), "bad") is None
        misconfigured = ChromaStore(store._client, index={"dims": 3, "embed": bag_of_words})
        with pytest.raises(ValueError, match="dims"):
            misconfigured.put(("keep",), "big", {"text": "x"})
        assert store.get(("keep",), "big") is None

    with ChromaStore.open(tmp_path / "c", index=index_config()) as reopened:
        assert reopened.get(("keep",), "k").value == {"text": "python notes, revised"}
        [hit] = reopened.search(("keep",), query="python notes")
        [query, text] = bag_of_words(["python notes", "python notes, revised"])
        assert hit.score == pytest.approx(cosine(query, text), abs=1e-5)


def test_chroma_store_through_a_chroma_server(tmp_path):
    with ChromaServer(tmp_path / "server", port=free_port()) as server:
        writer = ChromaStore.from_url(server.url, index=index_config())
        reader = ChromaStore.from_url(server.url, index=index_config())
        writer.batch(
            [
                PutOp(("team", "a"), "1", {"text": "python tutorial", "n": 1}),
                PutOp(("team", "b"), "2", {"text": "pasta recipes", "n": 2}),
            ]
        )
        assert reader.get(("team", "a"), "1").value == {"text": "python tutorial", "n": 1}
        assert keys(reader.search(("team",), query="python")) == ["1", "2"]
        assert keys(reader.search(("team",), filter={"n": {"$gt": 1}})) == ["2"]
        assert reader.list_namespaces(prefix=("team",)) == [("team", "a"), ("team", "b")]

        async def concurrent():
            await asyncio.gather(
                *(reader.aput(("team", "c"), f"k{i}", {"text": "x"}) for i in range(5))
            )
            return await writer.asearch(("team", "c"))

        assert sorted(keys(asyncio.run(concurrent()))) == [f"k{i}" for i in range(5)]
        writer.delete(("team", "a"), "1")
        assert reader.get(("team", "a"), "1") is None


def test_a_compiled_graph_reads_and_writes_through_runtime_store(tmp_path):
    from typing import TypedDict

    from langgraph.graph import END, START, StateGraph
    from langgraph.runtime import Runtime

    class State(TypedDict):
        user: str
        visits: int

    def count_visit(state: State, runtime: Runtime) -> dict:
        namespace = ("visits", state["user"])
        seen = runtime.store.get(namespace, "count")
        visits = (seen.value["n"] if seen else 0) + 1
        runtime.store.put(namespace, "count", {"n": visits})
        return {"visits": visits}

    def build(store):
        graph = StateGraph(State)
        graph.add_node("count_visit", count_visit)
        graph.add_edge(START, "count_visit")
        graph.add_edge("count_visit", END)
        return graph.compile(store=store)

    with ChromaStore.open(tmp_path / "graph") as store:
        assert build(store).invoke({"user": "ann", "visits": 0})["visits"] == 1
    with ChromaStore.open(tmp_path / "graph") as store:  # a new store, as in a new process
        app = build(store)
        assert app.invoke({"user": "ann", "visits": 0})["visits"] == 2
        assert asyncio.run(app.ainvoke({"user": "bob", "visits": 0}))["visits"] == 1
        assert store.get(("visits", "ann"), "count").value == {"n": 2}


def test_a_row_the_index_skips_is_still_ranked_exactly(tmp_path):
    """Filtered HNSW queries can return fewer rows than asked (seen once under load: an item
    came back unscored); whatever the index skips is scored from its stored vector."""
    store = ChromaStore.open(tmp_path / "chroma", index=index_config())
    store.batch(
        [
            PutOp(("s",), "a", {"text": "python guide"}),
            PutOp(("s",), "b", {"text": "python snakes"}),
        ]
    )
    real_query = store._vectors.query

    def lossy_query(**kwargs):
        rows = real_query(**kwargs)
        keep = [
            i
            for i, m in enumerate(rows["metadatas"][0])
            if m["item"] != rows["metadatas"][0][-1]["item"]
        ]
        return {key: [[rows[key][0][i] for i in keep]] for key in ("ids", "metadatas", "distances")}

    store._vectors.query = lossy_query
    hits = store.search(("s",), query="python guide")
    assert keys(hits) == ["a", "b"] and all(hit.score is not None for hit in hits)
    expected = cosine(bag_of_words(["python guide"])[0], bag_of_words(["python snakes"])[0])
    assert abs(hits[1].score - expected) < 1e-5
    store.close()
