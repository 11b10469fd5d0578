"""Demonstration retrieval latency: `ChromaDemonstrationStore.search(query, k=4, tenant=...)`,
query embedding included, at 1k / 10k (/ 50k) demonstrations over 10 tenants, next to the
layout the store had before (one collection filtered by tenant) in the same run.

    python benchmarks/memory_bench.py --quick   # 1k, 10k; last line: retrieval_p95_ms_10k=<ms>
    python benchmarks/memory_bench.py           # adds 50k and a Chroma server (from_url)

Writes bench-results/memory_bench.json and prints one table. The last line is the store's
default path at 10k, embedded: p95 of cold queries, embedding included.

What is measured, per size, on one Chroma path:

- the STORE as it is (the primary variant): a collection per tenant, query embeddings cached
  by text (LRU 4096) and computed on one torch thread. It is bulk-loaded with precomputed
  MiniLM vectors through `store._collection(tenant, create=True).add(...)` (so loading costs
  no embedding); every measured search goes through `store.search`. "cold" queries are texts
  never asked before on that store instance (warm-up uses other texts); "cached" asks the same
  texts again and must not embed anything (checked: `cached_embed_calls`).
- the PREVIOUS LAYOUT (v<=2026-11-26 morning), rebuilt here with chromadb and the same MiniLM
  model: one collection for all tenants, `where={"tenant": t}`, no cache, the model called
  directly with torch's thread count as set: the process default (what it ran with) and 1.
  (The store itself can no longer hold this layout: given a collection named exactly like its
  prefix it moves the rows into per-tenant collections and deletes it.)
- diagnostics: both layouts with precomputed query vectors (Chroma's share alone), and the
  store with an int8-quantized query embedder (torch.ao, deprecated there; `--no-int8` skips
  it) whose recall shows whether int8 queries against fp32 vectors are acceptable.
- insert rates through `store.add` (batches of 50, and one per call as an agent logs
  episodes) and through the previous layout's add (batches of 50), embedding included.

Queries go in blocks of 10, each block through every variant in rotated order, so the noise of
a shared machine falls on all of them alike; the cached pass follows the cold pass. Each
variant reports cold (and cached) latency, its embedding part and the rest ("chroma": query +
rows), and recall@4 against exact cosine top-4 over the tenant's vectors. Corpus vectors are
cached under the temp dir between runs (`--cache-dir`).

Dropped: the HNSW sweep. With a collection per tenant Chroma's share is 1-2 ms (p95 2-7 ms) of
an ~11 ms search, the rest being the embedding, so ef_search/M cannot move p95 much; the store
creates its collections with default HNSW settings, and Chroma 1.5 ignores a later
`modify(configuration=...)` on an index already loaded in the process, so a sweep needs a
rebuilt copy per setting. Also dropped: the per-tenant prototype (the store is that layout now)
and the store with two torch threads (its embedder sets one thread itself for <= 8 texts).

Measured 2026-11-26 (2 shared cores, p95 cold / cached, ms): 10k store 16 / 2 vs previous
layout 522 (2 threads) and 28 (1 thread); 50k store 17 / 3 vs 566 and 87. The 2-thread
previous layout pays ~0.5 s in nearly every embedding: with Chroma loaded in the process,
a 2-thread torch encode stalls (in a side check, not before Chroma was loaded).

Run time on 2 shared cores with the vector cache warm: --quick about 70 s; the full run about
8 min (50k builds of both layouts, the server). A cold vector cache adds the 50k corpus
embedding (about 10 min).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

ROOT = Path(__file__).resolve().parents[1]
TENANTS = [f"tenant{i}" for i in range(10)]
SKILLS = ["facts", "lookup", "json"]
K = 4
BLOCK = 10
SINGLE = 30  # demonstrations inserted one add() call each
GEN_VERSION = "v1"
PREVIOUS = "previous layout (v<=2026-11-26 morning)"
PREVIOUS_COLLECTION = "bench-previous-layout"  # not the store's prefix: it would be migrated

# fmt: off
_SYL = [
    "ka", "lo", "mir", "zen", "tor", "vel", "qua", "ris", "dan", "bel",
    "sho", "nim", "gra", "fex", "pol", "ur", "yam", "cot", "lis", "dru",
    "ven", "osk", "tal", "brim", "hex", "jun", "wol", "ap", "eth", "siv",
]
# fmt: on
_TEMPLATES = [
    "Who leads the {a} Lab?",
    "Where is the {a} Institute located?",
    "What does the {a} project study?",
    "When was {a} Corporation founded?",
    "Who funds the {a} Foundation?",
    "How many people work at {a} Labs?",
    "What is the budget of the {a} programme?",
    "Which city hosts the {a} conference?",
    "Who is the current director of {a} Research?",
    "What language is the {a} codebase written in?",
    "Who maintains the {a} dataset?",
    "What award did {b} {a} win?",
]


def question_texts(n: int, seed: int) -> list[str]:
    """n distinct templated questions about invented names; a prefix of any longer call."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[str] = []

    def name() -> str:
        return "".join(rng.choice(_SYL) for _ in range(rng.randint(2, 4))).capitalize()

    while len(out) < n:
        text = rng.choice(_TEMPLATES).format(a=name(), b=name())
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


# --- embedders ------------------------------------------------------------------------------


class TimedEmbedder:
    """Counts `embed` calls and records how long the last one took (ms), so a search splits
    into embedding and the rest, and a cache hit shows as no call at all."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.dimension = inner.dimension
        self.last_ms = 0.0
        self.calls = 0

    def embed(self, texts):
        t0 = time.perf_counter()
        out = self.inner.embed(texts)
        self.last_ms = (time.perf_counter() - t0) * 1000
        self.calls += 1
        return out


class DirectEmbedder:
    """MiniLM as the previous layout called it: `encode` on whatever torch thread count the
    process has (the store's embedder now switches to one thread for small batches)."""

    dimension = 384

    def __init__(self, minilm) -> None:
        self.minilm = minilm

    def embed(self, texts):
        vectors = self.minilm._load().encode(
            list(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return vectors.tolist()


class PrecomputedEmbedder:
    """Vectors computed beforehand: a search through it costs only Chroma (diagnostic)."""

    dimension = 384

    def __init__(self, table: dict[str, list[float]]) -> None:
        self.table = table

    def embed(self, texts):
        return [self.table[t] for t in texts]


class Int8Embedder:
    """MiniLM with its Linear layers dynamically quantized to int8 (torch.ao, installed with
    torch but deprecated there): a faster query embedder. The stored vectors stay fp32, so
    recall is what tells whether mixing them is acceptable."""

    dimension = 384

    def __init__(self, fp32) -> None:
        import torch

        model = fp32._load()
        self._tok = model.tokenizer
        self._max_len = model.max_seq_length
        bert = copy.deepcopy(model[0].auto_model).eval()
        self._bert = torch.ao.quantization.quantize_dynamic(
            bert, {torch.nn.Linear}, dtype=torch.qint8
        )

    def embed(self, texts):
        import torch

        with torch.inference_mode():
            enc = self._tok(
                list(texts),
                return_tensors="pt",
                padding=True,
                truncation=True,
                max_length=self._max_len,
            )
            hidden = self._bert(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1).tolist()


# --- the previous layout --------------------------------------------------------------------


class PreviousLayout:
    """The store's search and add as they were up to the morning of 2026-11-26 (one collection
    for every tenant, a where clause on tenant, no query cache), on chromadb directly."""

    def __init__(self, client, embedder) -> None:
        self.embedder = embedder
        self.collection = client.get_or_create_collection(
            name=PREVIOUS_COLLECTION, embedding_function=None, metadata={"hnsw:space": "cosine"}
        )

    def search(self, query: str, *, k: int, tenant: str):
        from agent_cl.memory.base import ScoredDemonstration
        from agent_cl.memory.chroma import _from_row

        [vector] = self.embedder.embed([query])
        res = self.collection.query(
            query_embeddings=[vector],
            n_results=k,
            where={"tenant": tenant},
            include=["documents", "metadatas", "distances"],
        )
        return [
            ScoredDemonstration(_from_row(doc, meta), 1.0 - float(dist))
            for doc, meta, dist in zip(
                res["documents"][0], res["metadatas"][0], res["distances"][0], strict=True
            )
        ]

    def add(self, demos) -> None:
        from agent_cl.memory.base import unique_by_id
        from agent_cl.memory.chroma import _to_metadata

        fresh = unique_by_id(demos)
        existing = set(self.collection.get(ids=list(fresh), include=[])["ids"])
        new = [d for i, d in fresh.items() if i not in existing]
        if new:
            self.collection.add(
                ids=[d.id for d in new],
                documents=[d.query for d in new],
                embeddings=self.embedder.embed([d.query for d in new]),
                metadatas=[_to_metadata(d) for d in new],
            )


# --- loading --------------------------------------------------------------------------------


def bulk_load(client, store, previous, demos, vectors) -> dict[str, float]:
    """Precomputed vectors straight into the store's per-tenant collections and the previous
    layout's one collection; seconds taken by each."""
    from agent_cl.memory.chroma import _to_metadata

    batch = min(5000, client.get_max_batch_size())

    def put(collection, idx) -> None:
        for s in range(0, len(idx), batch):
            part = idx[s : s + batch]
            collection.add(
                ids=[demos[i].id for i in part],
                documents=[demos[i].query for i in part],
                embeddings=vectors[part],
                metadatas=[_to_metadata(demos[i]) for i in part],
            )

    t0 = time.perf_counter()
    for t in TENANTS:
        put(store._collection(t, create=True), [i for i, d in enumerate(demos) if d.tenant == t])
    t1 = time.perf_counter()
    put(previous.collection, list(range(len(demos))))
    return {"store": t1 - t0, "previous": time.perf_counter() - t1}


def make_demos(texts, offset: int = 0):
    from agent_cl.memory.schema import Demonstration

    base = 1_700_000_000.0
    return [
        Demonstration(
            query=q,
            answer=f"Answer number {offset + i}.",
            context=f"A note about {q.rstrip('?').split()[-2]} with the answer in it.",
            tenant=TENANTS[(offset + i) % len(TENANTS)],
            skill=SKILLS[(offset + i) % len(SKILLS)],
            created_at=base + offset + i,
        )
        for i, q in enumerate(texts)
    ]


def embed_corpus(texts, cache_dir: Path, log) -> Any:
    """fp32 MiniLM vectors for `texts` (a prefix-stable list), cached on disk by prefix."""
    import numpy as np
    import torch

    from agent_cl.memory.embeddings import default_embedder

    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"minilm-{GEN_VERSION}-seed0.npy"
    have = np.load(path) if path.exists() else np.zeros((0, 384), np.float32)
    if len(have) >= len(texts):
        return have[: len(texts)]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # measured: on a shared 2-core box 1 thread embeds 2-5x faster
    t0 = time.perf_counter()
    model = default_embedder()._load()
    rest = model.encode(
        texts[len(have) :],
        batch_size=64,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    ).astype(np.float32)
    torch.set_num_threads(threads)
    log(f"  embedded {len(rest)} corpus texts in {time.perf_counter() - t0:.0f} s (cached)")
    vectors = np.concatenate([have, rest])
    np.save(path, vectors)
    return vectors


# --- measurement ----------------------------------------------------------------------------


def pct(values, q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def summary(values) -> dict:
    return {
        "p50": statistics.median(values) if values else None,
        "p95": pct(values, 0.95),
        "mean": statistics.fmean(values) if values else None,
        "n": len(values),
    }


@dataclass
class Variant:
    name: str
    layout: str  # "store" | "previous"
    threads: int  # torch threads set before its searches (the store sets 1 itself to embed)
    embedder: TimedEmbedder
    target: Any
    cached: bool = False  # measure a second pass over the same texts
    note: str = ""
    cold: list = field(default_factory=list)
    cold_embed: list = field(default_factory=list)
    cached_ms: list = field(default_factory=list)
    cached_embed_calls: int = 0
    hits: list = field(default_factory=list)
    recall: float = 0.0


def run_variants(variants, queries, tenants, exact, warm) -> None:
    """Cold pass over `queries`, then the same texts again for the cached variants; blocks of
    BLOCK queries through every variant in rotated order."""
    import torch

    for v in variants:  # other texts than the measured ones: cold stays cold
        torch.set_num_threads(v.threads)
        for q, t in warm:
            v.target.search(q, k=K, tenant=t)

    def one(v, i, cold: bool) -> None:
        calls = v.embedder.calls
        t0 = time.perf_counter()
        hits = v.target.search(queries[i], k=K, tenant=tenants[i])
        ms = (time.perf_counter() - t0) * 1000
        embedded = v.embedder.calls - calls
        if cold:
            v.cold.append(ms)
            v.cold_embed.append(v.embedder.last_ms if embedded else 0.0)
            v.hits.append({h.demonstration.id for h in hits})
        else:
            v.cached_ms.append(ms)
            v.cached_embed_calls += embedded

    for cold in (True, False):
        active = [v for v in variants if cold or v.cached]
        for b, start in enumerate(range(0, len(queries), BLOCK)):
            order = active[b % len(active) :] + active[: b % len(active)]
            for v in order:
                torch.set_num_threads(v.threads)
                for i in range(start, min(start + BLOCK, len(queries))):
                    one(v, i, cold)
    for v in variants:
        v.recall = statistics.fmean(len(h & e) / len(e) for h, e in zip(v.hits, exact, strict=True))


def exact_topk(vectors, demos, qvecs, tenants):
    import numpy as np

    ids = np.array([d.id for d in demos])
    by_tenant = {t: np.array([d.tenant == t for d in demos]) for t in TENANTS}
    out = []
    for qv, t in zip(qvecs, tenants, strict=True):
        mask = by_tenant[t]
        scores = vectors[mask] @ qv
        top = np.argsort(-scores)[:K]
        out.append(set(ids[mask][top]))
    return out


def insert_rate(target, texts, offset: int, threads: int, batch: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    demos = make_demos(texts, offset)
    t0 = time.perf_counter()
    for s in range(0, len(demos), batch):
        target.add(demos[s : s + batch])
    seconds = time.perf_counter() - t0
    return {"n": len(demos), "batch": batch, "seconds": seconds, "per_s": len(demos) / seconds}


def measure_size(
    n, corpus, vectors, queries_all, qtable, qvecs_all, n_queries, mode, work, log, ctx
) -> dict:
    """Build both layouts with n demonstrations (embedded, or behind a Chroma server) in one
    Chroma path and measure every variant side by side."""
    import torch

    from agent_cl.memory.chroma import ChromaDemonstrationStore

    t_size = time.perf_counter()
    default_threads, base, int8, insert_n = ctx["threads"], ctx["base"], ctx["int8"], ctx["n_ins"]
    demos = make_demos(corpus[:n])
    vecs = vectors[:n]
    queries = queries_all[:n_queries]
    tenants = [TENANTS[i % len(TENANTS)] for i in range(n_queries)]
    warm = list(zip(ctx["warm"], TENANTS, strict=True))  # one per tenant, never measured
    exact = exact_topk(vecs, demos, qvecs_all[:n_queries], tenants)

    path = work / f"{mode}-{n}"
    timed = TimedEmbedder(base)
    server = None
    if mode == "server":
        from agent_cl.managed_process import free_port
        from agent_cl.memory.chroma_server import ChromaServer

        # The server holds the path's writer lock; everything here reaches it over HTTP.
        server = ChromaServer(path, port=free_port(), log_path=work / f"chroma-{n}.log").start()
        store = ChromaDemonstrationStore.from_url(server.url, embedder=timed)
    else:
        store = ChromaDemonstrationStore.open(path, embedder=timed)
    client = store._client
    try:
        prev_direct = TimedEmbedder(DirectEmbedder(base))
        previous = PreviousLayout(client, prev_direct)
        load_s = bulk_load(client, store, previous, demos, vecs)
        log(
            f"  {mode} {n}: bulk load store {load_s['store']:.1f} s, "
            f"previous layout {load_s['previous']:.1f} s"
        )

        def extra_store(embedder):
            """Another store instance on the same collections (its own query cache)."""
            return ChromaDemonstrationStore(client, embedder=embedder)

        def previous_with(embedder):
            return PreviousLayout(client, embedder)

        d = default_threads
        pre_s = TimedEmbedder(PrecomputedEmbedder(qtable))
        pre_p = TimedEmbedder(PrecomputedEmbedder(qtable))
        prev_1 = TimedEmbedder(DirectEmbedder(base))
        variants = [
            Variant(
                "STORE: per-tenant, query cache, 1-thread embed",
                "store",
                d,
                timed,
                store,
                cached=True,
                note="ChromaDemonstrationStore.search as shipped (primary)",
            ),
            Variant(f"{PREVIOUS}, threads={d}", "previous", d, prev_direct, previous),
            Variant(f"{PREVIOUS}, threads=1", "previous", 1, prev_1, previous_with(prev_1)),
            Variant(
                "diag: store, Chroma only (precomputed q)", "store", d, pre_s, extra_store(pre_s)
            ),
            Variant(
                "diag: previous, Chroma only (precomputed q)",
                "previous",
                d,
                pre_p,
                previous_with(pre_p),
            ),
        ]
        if int8 is not None:
            i8 = TimedEmbedder(int8)
            variants.append(
                Variant(
                    "diag: store, int8 query embedder, threads=1",
                    "store",
                    1,
                    i8,
                    extra_store(i8),
                    note="deprecated torch.ao API; cold only",
                )
            )
        t0 = time.perf_counter()
        run_variants(variants, queries, tenants, exact, warm)
        log(
            f"  {mode} {n}: {len(variants)} variants x {n_queries} queries in "
            f"{time.perf_counter() - t0:.0f} s"
        )
        out: dict = {"n": n, "mode": mode, "bulk_load_s": load_s, "variants": []}
        for v in variants:
            chroma = [c - e for c, e in zip(v.cold, v.cold_embed, strict=True)]
            out["variants"].append(
                {
                    "name": v.name,
                    "layout": v.layout,
                    "torch_threads": v.threads,
                    "query_cache": v.layout == "store",
                    "note": v.note,
                    "cold_ms": summary(v.cold),
                    "cached_ms": summary(v.cached_ms) if v.cached else None,
                    "cached_embed_calls": v.cached_embed_calls if v.cached else None,
                    "embed_ms": summary(v.cold_embed),
                    "chroma_ms": summary(chroma),
                    "recall_at_k": v.recall,
                }
            )
        if insert_n:
            extra = queries_all[n_queries : n_queries + 2 * insert_n + SINGLE]  # never asked
            out["insert"] = {
                "store.add": insert_rate(store, extra[:insert_n], n, d, batch=50),
                "store.add, one per call": insert_rate(
                    store, extra[2 * insert_n :], n + insert_n, d, batch=1
                ),
                f"previous layout add, threads={d}": insert_rate(
                    previous, extra[insert_n : 2 * insert_n], n + 2 * insert_n, d, batch=50
                ),
            }
        out["seconds"] = time.perf_counter() - t_size
        return out
    finally:
        torch.set_num_threads(default_threads)
        if server is not None:
            server.stop()
        else:
            store.close()


def fmt(x, w=6, p=1):
    return f"{x:{w}.{p}f}" if isinstance(x, int | float) else f"{'-':>{w}}"


def print_table(sizes) -> None:
    w = 58
    head = (
        f"{'size':>6} {'mode':8} {'variant':{w}} {'cold50':>6} {'cold95':>6} {'hit50':>6} "
        f"{'hit95':>6} {'emb50':>6} {'emb95':>6} {'chr50':>6} {'chr95':>6} {'rec@4':>5}"
    )
    print("ms per search(query, k=4, tenant); cold = new texts, hit = same texts again (cached)")
    print(head)
    print("-" * len(head))
    for s in sizes:
        for v in s["variants"]:
            c, h, e, ch = v["cold_ms"], v["cached_ms"] or {}, v["embed_ms"], v["chroma_ms"]
            print(
                f"{s['n']:>6} {s['mode']:8} {v['name'][:w]:{w}} {fmt(c['p50'])} "
                f"{fmt(c['p95'])} {fmt(h.get('p50'))} {fmt(h.get('p95'))} {fmt(e['p50'])} "
                f"{fmt(e['p95'])} {fmt(ch['p50'])} {fmt(ch['p95'])} "
                f"{fmt(v['recall_at_k'], 5, 2)}"
            )
        for name, r in (s.get("insert") or {}).items():
            print(
                f"{s['n']:>6} {s['mode']:8} insert/s {name[: w - 9]:{w - 9}} {r['per_s']:6.0f}"
                f"  (batches of {r['batch']}, embedding included)"
            )
        print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1k and 10k only, no server")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "memory_bench.json"))
    parser.add_argument("--queries", type=int, default=None, help="cold queries per size")
    parser.add_argument(
        "--cache-dir",
        default=str(Path(tempfile.gettempdir()) / "agent-cl-memory-bench"),
        help="where corpus vectors are kept between runs",
    )
    parser.add_argument("--no-int8", action="store_true", help="skip the int8 query embedder")
    args = parser.parse_args()
    started = time.perf_counter()

    import chromadb
    import numpy as np
    import torch

    from agent_cl.memory.chroma import QUERY_CACHE_SIZE
    from agent_cl.memory.embeddings import default_embedder

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    default_threads = torch.get_num_threads()
    load_start = os.getloadavg()
    sizes = [1000, 10000] if args.quick else [1000, 10000, 50000]
    server_sizes = [] if args.quick else [10000]
    nq = args.queries or (100 if args.quick else 200)
    if nq + len(TENANTS) > QUERY_CACHE_SIZE:
        parser.error(f"--queries must leave the cached pass inside the LRU ({QUERY_CACHE_SIZE})")
    per_size_q = {n: min(nq, 40 if args.quick else 100) if n < 10000 else nq for n in sizes}
    insert_n = 100 if args.quick else 300

    corpus = question_texts(max(sizes), seed=0)
    stored = set(corpus)
    want = nq + 2 * insert_n + SINGLE + len(TENANTS)
    queries_all = [q for q in question_texts(max(sizes) + want + 2000, seed=1) if q not in stored][
        :want
    ]
    warm_texts = queries_all[-len(TENANTS) :]  # warm-up only, never measured
    log(
        f"corpus {len(corpus)} texts, {len(queries_all)} query/insert texts; "
        f"torch default threads {default_threads}"
    )
    vectors = embed_corpus(corpus, Path(args.cache_dir), log)
    base = default_embedder()
    torch.set_num_threads(1)
    pre_texts = queries_all[:nq] + warm_texts  # measured queries + warm-up texts
    pre_vecs = np.asarray(DirectEmbedder(base).embed(pre_texts), dtype=np.float32)
    torch.set_num_threads(default_threads)
    qvecs_all = pre_vecs[:nq]
    qtable = {q: v.tolist() for q, v in zip(pre_texts, pre_vecs, strict=True)}
    int8 = None
    if not args.no_int8:
        try:
            int8 = Int8Embedder(base)
        except Exception as exc:
            log(f"int8 embedder unavailable: {exc!r}")
    ctx = {
        "threads": default_threads,
        "base": base,
        "int8": int8,
        "n_ins": insert_n,
        "warm": warm_texts,
    }

    work = Path(tempfile.mkdtemp(prefix="agent-cl-memory-bench-"))
    results: list[dict] = []
    try:
        runs = [(n, "embedded", per_size_q[n]) for n in sizes]
        runs += [(n, "server", nq) for n in server_sizes]
        for n, mode, n_q in runs:
            ctx["n_ins"] = insert_n if mode == "embedded" else 0
            results.append(
                measure_size(
                    n, corpus, vectors, queries_all, qtable, qvecs_all, n_q, mode, work, log, ctx
                )
            )
            log(f"{mode} {n} done in {results[-1]['seconds']:.0f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the stores (about 1 GB after a full run)

    def store_cold95(n, mode="embedded"):
        for s in results:
            if s["n"] == n and s["mode"] == mode:
                return s["variants"][0]["cold_ms"]["p95"]
        return None

    result = {
        "quick": args.quick,
        "k": K,
        "tenants": len(TENANTS),
        "queries_per_size": {str(n): q for n, q in per_size_q.items()},
        "machine": {
            "cpus": os.cpu_count(),
            "loadavg_start": load_start,
            "python": platform.python_version(),
            "chromadb": chromadb.__version__,
            "torch": torch.__version__,
            "torch_default_threads": default_threads,
        },
        "sizes": results,
        "retrieval_p95_ms_10k": store_cold95(10000),
        "elapsed_s": time.perf_counter() - started,
    }
    result["machine"]["loadavg_end"] = os.getloadavg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print_table(results)
    print(f"wrote {out} in {result['elapsed_s']:.0f} s")
    print(f"retrieval_p95_ms_10k={result['retrieval_p95_ms_10k']:.1f}")


if __name__ == "__main__":
    main()
