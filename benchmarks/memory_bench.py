"""Demonstration retrieval latency: `ChromaDemonstrationStore.search(query, k=4, tenant=...)`,
query embedding included, at 1k / 10k (/ 50k) demonstrations over 10 tenants, and what it takes
to reach p95 <= 20 ms at 10k and <= 60 ms at 50k.

    python benchmarks/memory_bench.py --quick   # 1k, 10k; last line: retrieval_p95_ms_10k=<ms>
    python benchmarks/memory_bench.py           # adds 50k and a Chroma server (from_url)

Writes bench-results/memory_bench.json. Variants are measured side by side in one run on one
store: queries go in blocks of 10, each block through every variant in rotated order, so the
noise of a shared machine falls on all of them alike. Each variant reports:

- cold: query texts never seen before (what every first question pays, cache or not);
- cached: the same texts asked again (only variants with an LRU of query embeddings);
- embed: the embedding part of each cold search, chroma: the rest (Chroma query + rows);
- recall@k against exact cosine top-k over the tenant's vectors.

Layouts: `one` is the store as it is (one collection, `where={"tenant": t}`); `per-tenant` is a
PROTOTYPE (the store has no such layout yet): one collection per tenant, each wrapped in a
`ChromaDemonstrationStore(client, collection="demonstrations-<tenant>")` and searched with no
where clause. The stores are bulk-loaded with precomputed MiniLM vectors (cached under the temp
dir between runs); every measured search goes through `ChromaDemonstrationStore.search`.
HNSW settings are compared on copies built with them: Chroma 1.5 records a later
`collection.modify(configuration={"hnsw": {"ef_search": ...}})` but an index already loaded in
the process keeps searching with the old value (measured: recall unchanged).

Run time on 2 shared cores: --quick about 50 s with the vector cache warm, 2 min cold; the full
run about 15 min cold (40k more texts to embed, 50k-store builds, the server).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import random
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import OrderedDict
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
    """Records how long the last `embed` call took (ms), so search time splits into parts."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.dimension = inner.dimension
        self.last_ms = 0.0

    def embed(self, texts):
        t0 = time.perf_counter()
        out = self.inner.embed(texts)
        self.last_ms = (time.perf_counter() - t0) * 1000
        return out


class LRUEmbedder:
    """Query-embedding cache keyed by the exact text: agents repeat questions. Misses are
    embedded together in one call; a cold text still pays the full embedding."""

    def __init__(self, inner, maxsize: int = 4096) -> None:
        self.inner = inner
        self.dimension = inner.dimension
        self.maxsize = maxsize
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, texts):
        texts = list(texts)
        with self._lock:
            hits = {t: self._cache[t] for t in texts if t in self._cache}
            for t in hits:
                self._cache.move_to_end(t)
        missing = list(dict.fromkeys(t for t in texts if t not in hits))
        if missing:
            fresh = dict(zip(missing, self.inner.embed(missing), strict=True))
            with self._lock:
                for t, v in fresh.items():
                    self._cache[t] = v
                    self._cache.move_to_end(t)
                while len(self._cache) > self.maxsize:
                    self._cache.popitem(last=False)
            hits.update(fresh)
        return [hits[t] for t in texts]


class PrecomputedEmbedder:
    """Vectors computed beforehand: `search` through it costs only Chroma (diagnostic)."""

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


# --- stores ---------------------------------------------------------------------------------


class PerTenantPrototype:
    """PROTOTYPE layout, not in the store yet: one collection per tenant, each behind its own
    ChromaDemonstrationStore, searched without a where clause (the collection is the filter)."""

    def __init__(self, client, embedder, tenants, prefix: str = "") -> None:
        from agent_cl.memory.chroma import COLLECTION, ChromaDemonstrationStore

        self.embedder = embedder
        self.stores = {
            t: ChromaDemonstrationStore(
                client, embedder=embedder, collection=f"{COLLECTION}{prefix}-{t}"
            )
            for t in tenants
        }

    def search(self, query: str, *, k: int, tenant: str):
        return self.stores[tenant].search(query, k=k)

    def add(self, demos) -> None:
        """One embedding call for the whole batch, then one Chroma add per tenant (what the
        store's `add` would do in this layout)."""
        from agent_cl.memory.base import unique_by_id
        from agent_cl.memory.chroma import _to_metadata

        by_tenant: dict[str, list] = {}
        for d in unique_by_id(demos).values():
            by_tenant.setdefault(d.tenant, []).append(d)
        new = []
        for tenant, group in by_tenant.items():
            col = self.stores[tenant]._collection
            have = set(col.get(ids=[d.id for d in group], include=[])["ids"])
            new += [d for d in group if d.id not in have]
        embedded = self.embedder.embed([d.query for d in new])
        vectors = dict(zip([d.id for d in new], embedded, strict=True))
        for tenant, group in by_tenant.items():
            group = [d for d in group if d.id in vectors]
            if group:
                self.stores[tenant]._collection.add(
                    ids=[d.id for d in group],
                    documents=[d.query for d in group],
                    embeddings=[vectors[d.id] for d in group],
                    metadatas=[_to_metadata(d) for d in group],
                )


class OneCollection:
    def __init__(self, store) -> None:
        self.store = store

    def search(self, query: str, *, k: int, tenant: str):
        return self.store.search(query, k=k, tenant=tenant)

    def add(self, demos) -> None:
        self.store.add(demos)


def make_layout(layout: str, client, embedder, prefix: str = ""):
    from agent_cl.memory.chroma import COLLECTION, ChromaDemonstrationStore

    if layout == "one":
        return OneCollection(
            ChromaDemonstrationStore(client, embedder=embedder, collection=COLLECTION + prefix)
        )
    return PerTenantPrototype(client, embedder, TENANTS, prefix)


def bulk_load(client, layout: str, demos, vectors, prefix: str = "", hnsw=None) -> float:
    """Add precomputed vectors straight to the collection(s) the layout reads; seconds taken.
    `hnsw`: a collection configuration given at creation (Chroma 1.5 ignores a later
    `modify(configuration=...)` on an index already loaded in the process: measured)."""
    from agent_cl.memory.chroma import COLLECTION, _to_metadata

    t0 = time.perf_counter()
    batch = min(5000, client.get_max_batch_size())
    groups = (
        {COLLECTION + prefix: list(range(len(demos)))}
        if layout == "one"
        else {
            f"{COLLECTION}{prefix}-{t}": [i for i, d in enumerate(demos) if d.tenant == t]
            for t in TENANTS
        }
    )
    for name, idx in groups.items():
        col = client.get_or_create_collection(
            name=name,
            embedding_function=None,
            **(
                {"configuration": {"hnsw": {"space": "cosine", **hnsw}}}
                if hnsw
                else {"metadata": {"hnsw:space": "cosine"}}
            ),
        )
        for s in range(0, len(idx), batch):
            part = idx[s : s + batch]
            col.add(
                ids=[demos[i].id for i in part],
                documents=[demos[i].query for i in part],
                embeddings=vectors[part],
                metadatas=[_to_metadata(demos[i]) for i in part],
            )
    return time.perf_counter() - t0


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
    layout: str  # "one" | "per-tenant"
    threads: int
    embedder: Any  # TimedEmbedder
    cached: bool = False
    note: str = ""
    target: Any = None
    cold: list = field(default_factory=list)
    cold_embed: list = field(default_factory=list)
    cached_ms: list = field(default_factory=list)
    hits: list = field(default_factory=list)
    recall: float = 0.0


def run_variants(variants, queries, tenants, exact, warm) -> None:
    """Cold pass over `queries` then, for cached variants, the same texts again; interleaved."""
    import torch

    for v in variants:
        torch.set_num_threads(v.threads)
        for q, t in warm:
            v.target.search(q, k=K, tenant=t)

    def one(v, i, sink, embed_sink=None):
        t0 = time.perf_counter()
        hits = v.target.search(queries[i], k=K, tenant=tenants[i])
        sink.append((time.perf_counter() - t0) * 1000)
        if embed_sink is not None:
            embed_sink.append(v.embedder.last_ms)
            v.hits.append({h.demonstration.id for h in hits})

    for pass_name in ("cold", "cached"):
        active = [v for v in variants if pass_name == "cold" or v.cached]
        for b, start in enumerate(range(0, len(queries), BLOCK)):
            order = active[b % len(active) :] + active[: b % len(active)]
            for v in order:
                torch.set_num_threads(v.threads)
                for i in range(start, min(start + BLOCK, len(queries))):
                    if pass_name == "cold":
                        one(v, i, v.cold, v.cold_embed)
                    else:
                        one(v, i, v.cached_ms)
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


def insert_rate(target, texts, offset: int, threads: int, batch: int = 50) -> dict:
    import torch

    torch.set_num_threads(threads)
    demos = make_demos(texts, offset)
    t0 = time.perf_counter()
    for s in range(0, len(demos), batch):
        target.add(demos[s : s + batch])
    seconds = time.perf_counter() - t0
    return {"n": len(demos), "batch": batch, "seconds": seconds, "per_s": len(demos) / seconds}


def hnsw_sweep(client, demos, vecs, table, queries, tenants, exact, configs, log) -> list[dict]:
    """Chroma-only search (precomputed query vectors) per layout and HNSW configuration, with
    recall; each non-default configuration is a fresh copy of the collections built with it."""
    rows = []
    pre = PrecomputedEmbedder(table)
    for j, cfg in enumerate(configs):
        for layout in ("one", "per-tenant"):
            prefix = f"-sweep{j}" if cfg else ""
            if cfg:
                secs = bulk_load(client, layout, demos, vecs, prefix=prefix, hnsw=cfg)
                log(f"    sweep {layout} {cfg}: built in {secs:.1f} s")
            target = make_layout(layout, client, pre, prefix)
            for q, t in zip(queries[:5], tenants[:5], strict=True):
                target.search(q, k=K, tenant=t)
            ms, hits = [], []
            for q, t in zip(queries, tenants, strict=True):
                t0 = time.perf_counter()
                res = target.search(q, k=K, tenant=t)
                ms.append((time.perf_counter() - t0) * 1000)
                hits.append({h.demonstration.id for h in res})
            recall = statistics.fmean(len(h & e) / len(e) for h, e in zip(hits, exact, strict=True))
            label = ", ".join(f"{k}={v}" for k, v in cfg.items()) or "default (ef_search=100, M=16)"
            rows.append({"layout": layout, "hnsw": label, **summary(ms), "recall": recall})
    # Diagnostic: the one collection without the tenant filter (wrong answers, right cost of
    # the HNSW walk alone) - shows what the where clause costs.
    store = make_layout("one", client, pre).store
    ms = []
    for q in queries:
        t0 = time.perf_counter()
        store.search(q, k=K)
        ms.append((time.perf_counter() - t0) * 1000)
    rows.append({"layout": "one, NO tenant filter (diagnostic)", "hnsw": "default", **summary(ms)})
    return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure_size(
    n,
    corpus,
    vectors,
    queries_all,
    qtable,
    qvecs_all,
    n_queries,
    mode,
    work,
    log,
    default_threads,
    int8,
    sweep=None,
    insert_n=300,
    full=False,
):
    """Build both layouts with n demonstrations (embedded or behind a server), measure."""
    from agent_cl.memory.chroma import ChromaDemonstrationStore
    from agent_cl.memory.embeddings import default_embedder

    t_size = time.perf_counter()
    demos = make_demos(corpus[:n])
    vecs = vectors[:n]
    queries = queries_all[:n_queries]
    tenants = [TENANTS[i % len(TENANTS)] for i in range(n_queries)]
    warm = list(zip(queries_all[-5:], TENANTS[:5], strict=True))
    exact = exact_topk(vecs, demos, qvecs_all[:n_queries], tenants)

    path = work / f"{mode}-{n}"
    server = None
    if mode == "server":
        from agent_cl.memory.chroma_server import ChromaServer

        server = ChromaServer(path, port=free_port(), log_path=work / f"chroma-{n}.log").start()
        primary = ChromaDemonstrationStore.from_url(server.url)
    else:
        primary = ChromaDemonstrationStore.open(path)
    client = primary._client
    try:
        load_s = {lay: bulk_load(client, lay, demos, vecs) for lay in ("one", "per-tenant")}
        log(
            f"  {mode} {n}: bulk load one {load_s['one']:.1f} s, "
            f"per-tenant {load_s['per-tenant']:.1f} s"
        )
        base = default_embedder()

        def V(name, layout, threads, inner=base, cached=False, note=""):
            emb = TimedEmbedder(LRUEmbedder(inner) if cached else inner)
            v = Variant(name, layout, threads, emb, cached, note)
            v.target = make_layout(layout, client, emb)
            return v

        d = default_threads
        variants = [
            V(f"one+where, threads={d} (CURRENT DEFAULT)", "one", d, note="store as is"),
            V("one+where, threads=1", "one", 1),
            V("one+where, threads=1, LRU", "one", 1, cached=True),
            *([V(f"per-tenant (proto), threads={d}", "per-tenant", d)] if full else []),
            V("per-tenant (proto), threads=1", "per-tenant", 1),
            V("per-tenant (proto), threads=1, LRU", "per-tenant", 1, cached=True),
            V("one+where, Chroma only (precomputed q)", "one", 1, PrecomputedEmbedder(qtable)),
            V(
                "per-tenant, Chroma only (precomputed q)",
                "per-tenant",
                1,
                PrecomputedEmbedder(qtable),
            ),
        ]
        if int8 is not None:
            variants.append(
                V(
                    "per-tenant (proto), int8 query embedder, threads=1",
                    "per-tenant",
                    1,
                    int8,
                    note="deprecated torch.ao API",
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
                    "query_cache": v.cached,
                    "note": v.note,
                    "cold_ms": summary(v.cold),
                    "cached_ms": summary(v.cached_ms) if v.cached else None,
                    "embed_ms": summary(v.cold_embed),
                    "chroma_ms": summary(chroma),
                    "recall_at_k": v.recall,
                }
            )
        if sweep:
            out["hnsw_sweep"] = hnsw_sweep(
                client, demos, vecs, qtable, queries, tenants, exact, sweep, log
            )
        if insert_n:
            extra = queries_all[n_queries : n_queries + 3 * insert_n + 2 * SINGLE]  # unseen
            singles = extra[3 * insert_n :]
            by = {v.name: v for v in variants}
            out["insert"] = {
                variants[0].name: insert_rate(by[variants[0].name].target, extra[:insert_n], n, d),
                "one+where, threads=1": insert_rate(
                    by["one+where, threads=1"].target, extra[insert_n : 2 * insert_n], n, 1
                ),
                "per-tenant (proto), threads=1": insert_rate(
                    by["per-tenant (proto), threads=1"].target,
                    extra[2 * insert_n : 3 * insert_n],
                    n,
                    1,
                ),
                # An agent logs one episode at a time: one add() call per demonstration.
                "one+where, threads=1, one per add()": insert_rate(
                    by["one+where, threads=1"].target, singles[:SINGLE], n, 1, batch=1
                ),
                "per-tenant (proto), threads=1, one per add()": insert_rate(
                    by["per-tenant (proto), threads=1"].target, singles[SINGLE:], n, 1, batch=1
                ),
            }
        out["seconds"] = time.perf_counter() - t_size
        return out
    finally:
        import torch

        torch.set_num_threads(default_threads)
        if server is not None:
            server.stop()
        else:
            primary.close()


def fmt(x, w=6, p=1):
    return f"{x:{w}.{p}f}" if isinstance(x, int | float) else f"{'-':>{w}}"


def print_table(sizes) -> None:
    head = (
        f"{'size':>6} {'mode':8} {'variant':52} {'cold50':>6} {'cold95':>6} {'hit50':>6} "
        f"{'hit95':>6} {'emb50':>6} {'emb95':>6} {'chr50':>6} {'chr95':>6} {'rec@4':>5}"
    )
    print(head)
    print("-" * len(head))
    for s in sizes:
        for v in s["variants"]:
            c, h, e, ch = v["cold_ms"], v["cached_ms"] or {}, v["embed_ms"], v["chroma_ms"]
            print(
                f"{s['n']:>6} {s['mode']:8} {v['name'][:52]:52} {fmt(c['p50'])} "
                f"{fmt(c['p95'])} {fmt(h.get('p50'))} {fmt(h.get('p95'))} {fmt(e['p50'])} "
                f"{fmt(e['p95'])} {fmt(ch['p50'])} {fmt(ch['p95'])} "
                f"{fmt(v['recall_at_k'], 5, 2)}"
            )
        for name, r in (s.get("insert") or {}).items():
            print(
                f"{s['n']:>6} {s['mode']:8} insert/s {name[:48]:48} {r['per_s']:8.0f}  "
                f"(batches of {r['batch']}, embedding included)"
            )
        for r in s.get("hnsw_sweep") or []:
            rec = f"recall {r['recall']:.2f}" if "recall" in r else ""
            print(
                f"{s['n']:>6} {s['mode']:8} chroma-only {r['layout'][:36]:36} "
                f"{r['hnsw'][:40]:40} p50 {fmt(r['p50'], 5, 2)} "
                f"p95 {fmt(r['p95'], 5, 2)} {rec}"
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

    from agent_cl.memory.embeddings import default_embedder

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    default_threads = torch.get_num_threads()  # what the store gets today
    load_start = os.getloadavg()
    sizes = [1000, 10000] if args.quick else [1000, 10000, 50000]
    server_sizes = [] if args.quick else [10000]
    # Few queries in --quick: with torch's default 2 threads on a busy 2-core box a single
    # query embedding can stall ~0.5 s (measured), and the default variant must be measured.
    nq = args.queries or (100 if args.quick else 200)
    per_size_q = {n: min(nq, 40 if args.quick else 100) if n < 10000 else nq for n in sizes}
    fast_cfg = {"ef_search": 10}
    rich_cfg = {"max_neighbors": 32, "ef_construction": 200, "ef_search": 200}
    sweeps = {n: [{}] if n < 10000 else [{}, fast_cfg] for n in sizes}
    if not args.quick:
        sweeps = {n: [{}] if n < 10000 else [{}, fast_cfg, rich_cfg] for n in sizes}
    insert_n = 100 if args.quick else 300

    corpus = question_texts(max(sizes), seed=0)
    stored = set(corpus)
    queries_all = [
        q
        for q in question_texts(max(sizes) + nq + 3 * insert_n + 2 * SINGLE + 2000, seed=1)
        if q not in stored
    ][: nq + 3 * insert_n + 2 * SINGLE + 5]
    log(
        f"corpus {len(corpus)} texts, {len(queries_all)} query/insert texts; "
        f"torch default threads {default_threads}"
    )
    vectors = embed_corpus(corpus, Path(args.cache_dir), log)
    base = default_embedder()
    torch.set_num_threads(1)
    pre_texts = queries_all[:nq] + queries_all[-5:]  # measured queries + warm-up texts
    pre_vecs = np.asarray(base.embed(pre_texts), dtype=np.float32)
    torch.set_num_threads(default_threads)
    qvecs_all = pre_vecs[:nq]
    qtable = {q: v.tolist() for q, v in zip(pre_texts, pre_vecs, strict=True)}
    int8 = None
    if not args.no_int8:
        try:
            int8 = Int8Embedder(base)
        except Exception as exc:
            log(f"int8 embedder unavailable: {exc!r}")

    work = Path(tempfile.mkdtemp(prefix="agent-cl-memory-bench-"))
    results: list[dict] = []
    for n in sizes:
        results.append(
            measure_size(
                n,
                corpus,
                vectors,
                queries_all,
                qtable,
                qvecs_all,
                per_size_q[n],
                "embedded",
                work,
                log,
                default_threads,
                int8,
                sweep=sweeps[n],
                insert_n=insert_n,
                full=not args.quick,
            )
        )
        log(f"embedded {n} done in {results[-1]['seconds']:.0f} s")
    for n in server_sizes:
        results.append(
            measure_size(
                n,
                corpus,
                vectors,
                queries_all,
                qtable,
                qvecs_all,
                nq,
                "server",
                work,
                log,
                default_threads,
                int8,
                sweep=None,
                insert_n=0,
                full=True,
            )
        )
        log(f"server {n} done in {results[-1]['seconds']:.0f} s")

    def cold95(n, mode="embedded", idx=0):
        for s in results:
            if s["n"] == n and s["mode"] == mode:
                return s["variants"][idx]["cold_ms"]["p95"]
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
        "retrieval_p95_ms_10k": cold95(10000),
        "elapsed_s": time.perf_counter() - started,
    }
    result["machine"]["loadavg_end"] = os.getloadavg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print_table(results)
    shutil.rmtree(work, ignore_errors=True)  # the stores (about 1.3 GB after a full run)
    print(f"wrote {out} in {result['elapsed_s']:.0f} s")
    print(f"retrieval_p95_ms_10k={result['retrieval_p95_ms_10k']:.1f}")


if __name__ == "__main__":
    main()
