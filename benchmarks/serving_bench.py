"""Serving numbers on a real vLLM server: swap latency, requests failed during swaps, throughput
with and without an adapter, and throughput while a sleep job trains beside the server.

    python benchmarks/serving_bench.py --quick      # last line: failed_requests_during_swaps=<n>
Writes bench-results/serving_bench.json. All ratios come from one run on one machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPTS = [
    [{"role": "user", "content": f"Give me one fact about the number {i}."}] for i in range(64)
]


def throughput(backend, n: int, clients: int, max_tokens: int) -> dict:
    """Completion tokens (server-counted) per second over n streamed requests."""
    failed = 0

    def one(i):
        nonlocal failed
        try:
            r = backend.stream(PROMPTS[i % len(PROMPTS)], max_new_tokens=max_tokens)
            return r["tokens"] or 0
        except Exception:
            failed += 1
            return 0

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        tokens = sum(pool.map(one, range(n)))
    seconds = time.perf_counter() - t0
    return {
        "requests": n,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "requests_per_s": n / seconds,
        "failed": failed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests and swaps")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "serving_bench.json"))
    args = parser.parse_args()
    n, swaps = (32, 6) if args.quick else (128, 20)

    from agent_cl.adapters.registry import AdapterRegistry
    from agent_cl.config import Settings
    from agent_cl.evals.marker_adapter import MARKER_QUESTION as QUESTION
    from agent_cl.evals.marker_adapter import train_marker_adapter
    from agent_cl.models.provision import provision_embedded_model
    from agent_cl.serving.vllm_backend import VLLMBackend
    from agent_cl.serving.vllm_server import VLLMServer, VLLMServerConfig

    model_dir = provision_embedded_model(Settings.load().models_dir).path
    work = Path(tempfile.mkdtemp(prefix="agent-cl-serving-"))
    registry = AdapterRegistry(work / "adapters")
    for version, marker in ((1, "Quenvel Ostrami"), (2, "Brilda Taskon")):
        registry.publish(train_marker_adapter(model_dir, work / f"a{version}", marker))

    config = VLLMServerConfig(model_dir, max_lora_rank=16, log_path=work / "server.log")
    result: dict = {"quick": args.quick}
    with VLLMServer(config) as server:
        backend = VLLMBackend(server.url, drain_seconds=1.0)
        backend.swap(None)
        result["throughput_base"] = throughput(backend, n, 8, 32)
        backend.swap(1, registry.get(1).path)
        result["throughput_adapter"] = throughput(backend, n, 8, 32)

        # Swap latency: publish -> first response answered by the new version, under load.
        stop = threading.Event()
        failures: list[str] = []

        def load():
            while not stop.is_set():
                try:
                    backend.stream(QUESTION, max_new_tokens=12)
                except Exception as exc:  # counted, not raised: this is what we measure
                    failures.append(repr(exc))

        workers = [threading.Thread(target=load) for _ in range(4)]
        for w in workers:
            w.start()
        latencies, swap_calls = [], []
        for k in range(swaps):
            version = 2 if k % 2 == 0 else 1
            t0 = time.perf_counter()
            backend.swap(version, registry.get(version).path)
            swap_calls.append(time.perf_counter() - t0)
            while backend.stream(QUESTION, max_new_tokens=1)["version"] != version:
                pass
            latencies.append(time.perf_counter() - t0)
            time.sleep(0.5)
        stop.set()
        for w in workers:
            w.join()
        latencies.sort()
        result["swap_latency_s"] = {
            "p50": statistics.median(latencies),
            "p95": latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))],
            "n": len(latencies),
            "swap_call_p50": statistics.median(swap_calls),
        }
        result["failed_requests_during_swaps"] = len(failures)

        # Serving while a sleep job trains in another process (the ART-style design blocks).
        trainer = subprocess.Popen(
            [sys.executable, "-c", _TRAIN_SNIPPET, str(model_dir), str(work / "night")],
            cwd=ROOT,
        )
        time.sleep(15)  # let it load and start training
        result["throughput_during_training"] = throughput(backend, n, 8, 32)
        training_was_running = trainer.poll() is None
        trainer.kill()
        trainer.wait()
        result["training_overlapped"] = training_was_running
        idle = result["throughput_adapter"]["tokens_per_s"]
        result["throughput_ratio_training_vs_idle"] = (
            result["throughput_during_training"]["tokens_per_s"] / idle
        )
        result["throughput_ratio_adapter_vs_base"] = (
            idle / result["throughput_base"]["tokens_per_s"]
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    print(f"failed_requests_during_swaps={result['failed_requests_during_swaps']}")


_TRAIN_SNIPPET = """
import sys
from pathlib import Path
from agent_cl.consolidation.training_config import ConsolidationConfig
from agent_cl.consolidation.trainer import ConsolidationTrainer
from agent_cl.evals.facts import build_facts
demos = [f.demonstration() for f in build_facts(16, seed=0)]
config = ConsolidationConfig(method="sft", steps=1000, batch_size=4, device="cpu")
ConsolidationTrainer(Path(sys.argv[1]), config, torch_threads=1).train(demos, Path(sys.argv[2]))
"""


if __name__ == "__main__":
    main()
