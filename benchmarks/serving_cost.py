"""What an adapter costs a user at serving time, at equal output lengths, on the served path.

    python benchmarks/serving_cost.py --quick               # both phases
    python benchmarks/serving_cost.py --quick --only-fixes  # the second phase only
    # last line: adapter_throughput_ratio=R swap_failed_requests=F mixed_answers=M
    #            lora_throughput_ratio=L

Every request asks for the same number of output tokens (`ignore_eos` with a fixed
`max_tokens` on vLLM, `min_new_tokens` in process), so a LoRA that changes what the model says
cannot change how much it says: the earlier serving_bench compared a 32-token base answer with
a 3-token marker answer and reported a tokens/s ratio of 0.1-0.3 that was mostly request
overhead. Measured per request: time to first token (TTFT) and time per output token (TPOT);
per condition: output tokens per second over all clients. Conditions alternate (base, adapter,
base, adapter, ...) so a slow minute on a noisy machine hits both sides.

Phase 1, the LoRA server `agent-cl serve` starts (`--max-lora-rank` = adapter_max_rank): the
base model; an adapter of the default recipe's shape (rank 8, MLP only); one at the served max
rank; two tenants' rank-8 adapters at once. Phase 2, the fixes side by side: a LoRA server
with `--max-lora-rank 8` (the real rank), and `agent-cl serve --merged` serving the same rank-8
version merged into the weights; then the merged server is swapped between two marker versions
under 8 streaming clients (failed requests, answers that mix versions or disagree with the
version they name). R is the merged path's output tokens/s over the base's at 8 clients, L the
LoRA's at its real rank. The in-process backend (transformers + peft) is timed too.
Results: bench-results/serving_cost.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
TOPICS = ["rivers", "bridges", "owls", "copper", "tea", "glaciers", "violins", "maps"]
PROMPTS = [
    [{"role": "user", "content": f"Write a short paragraph about {topic}."}] for topic in TOPICS
]


def _one_request(client: httpx.Client, model: str, prompt: list, max_tokens: int) -> dict:
    """One streamed request: TTFT, TPOT and the server's completion-token count."""
    body = {
        "model": model,
        "messages": prompt,
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.perf_counter()
    first = None
    tokens = None
    answered_by = None
    text = []
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[len("data: ") :])
            answered_by = chunk.get("model", answered_by)
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            for choice in chunk.get("choices", []):
                piece = choice.get("delta", {}).get("content") or ""
                if piece and first is None:
                    first = time.perf_counter()
                text.append(piece)
    end = time.perf_counter()
    first = first or end
    return {
        "ttft": first - t0,
        "tpot": (end - first) / max(1, (tokens or 1) - 1),
        "tokens": tokens or 0,
        "seconds": end - t0,
        "model": answered_by,
        "text": "".join(text),
    }


def served_load(
    targets: list[tuple[str, str]], requests: int, clients: int, max_tokens: int
) -> dict:
    """`requests` streamed requests from `clients` threads; request i goes to target
    i % len(targets), a (server url, model name) pair."""
    failed: list[str] = []
    http = {url: httpx.Client(base_url=url, timeout=600) for url, _ in targets}

    def one(i: int) -> dict | None:
        url, model = targets[i % len(targets)]
        try:
            return _one_request(http[url], model, PROMPTS[i % 8], max_tokens)
        except Exception as exc:  # counted: a failed request is a result here
            failed.append(repr(exc))
            return None

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        done = [r for r in pool.map(one, range(requests)) if r is not None]
    seconds = time.perf_counter() - t0
    for client in http.values():
        client.close()
    return _summary(done, seconds, failed, max_tokens)


def _summary(done: list[dict], seconds: float, failed: list, max_tokens: int) -> dict:
    tokens = sum(r["tokens"] for r in done)
    return {
        "requests": len(done) + len(failed),
        "failed": len(failed),
        "unequal_lengths": sum(r["tokens"] != max_tokens for r in done),
        "seconds": seconds,
        "output_tokens": tokens,
        "output_tokens_per_s": tokens / seconds if seconds else 0.0,
        "ttft_p50_s": statistics.median(r["ttft"] for r in done) if done else None,
        "tpot_p50_s": statistics.median(r["tpot"] for r in done) if done else None,
    }


def alternate(conditions: dict, rounds: int, measure) -> dict:
    """Each condition measured `rounds` times, interleaved; per condition the summed tokens over
    summed seconds and the medians of the per-round TTFT/TPOT medians."""
    runs: dict[str, list[dict]] = {name: [] for name in conditions}
    for _ in range(rounds):
        for name, target in conditions.items():
            runs[name].append(measure(target))
    merged = {}
    for name, parts in runs.items():
        seconds = sum(p["seconds"] for p in parts)
        merged[name] = {
            "rounds": parts,
            "failed": sum(p["failed"] for p in parts),
            "unequal_lengths": sum(p["unequal_lengths"] for p in parts),
            "output_tokens_per_s": sum(p["output_tokens"] for p in parts) / seconds,
            "ttft_p50_s": statistics.median(p["ttft_p50_s"] for p in parts),
            "tpot_p50_s": statistics.median(p["tpot_p50_s"] for p in parts),
        }
    return merged


def ratios(table: dict, base: str = "base") -> dict:
    return {
        name: row["output_tokens_per_s"] / table[base]["output_tokens_per_s"]
        for name, row in table.items()
        if name != base
    }


# -- adapters -------------------------------------------------------------------------------
def train_shaped_adapter(model_dir: Path, out: Path, rank: int, seed: int) -> Path:
    """An adapter of the default recipe's shape (MLP-only LoRA of `rank`), trained a few SFT
    steps on invented facts: serving cost depends on the shape, not on what was learnt."""
    from agent_cl.consolidation.trainer import ConsolidationTrainer
    from agent_cl.consolidation.training_config import ConsolidationConfig
    from agent_cl.evals.facts import build_facts

    demos = [f.demonstration() for f in build_facts(8, seed=seed)]
    config = ConsolidationConfig(
        method="sft", steps=4, batch_size=4, lora_r=rank, lora_alpha=2 * rank,
        learning_rate=1e-3, device="cpu", target_modules="mlp",
    )  # fmt: skip
    ConsolidationTrainer(model_dir, config, torch_threads=2).train(demos, out)
    return out


def publish(registry_root: Path, tenant: str, adapter: Path, max_rank: int, model_dir: Path):
    from agent_cl.adapters.registry import AdapterRegistry
    from agent_cl.adapters.rules import AdapterRules

    rules = AdapterRules(max_rank=max_rank, base_model_dir=model_dir)
    registry = AdapterRegistry(registry_root / tenant, rules)
    return registry, registry.publish(adapter)


# -- served phases --------------------------------------------------------------------------
def served_phase(configs: dict, tenants: dict, args, *, conditions: dict, check=None) -> dict:
    """Start the servers `configs` (name -> VLLMServerConfig) together; point each tenant at
    its adapter on its server (tenant -> (server name, registry, version)); time `conditions`
    (name -> [(server name, model)]) at 1 and 8 clients, interleaved; `check(servers)` last."""
    from agent_cl.serving.vllm_backend import VLLMBackend
    from agent_cl.serving.vllm_server import VLLMServer

    with contextlib.ExitStack() as stack:
        servers = {name: stack.enter_context(VLLMServer(c)) for name, c in configs.items()}
        for tenant, (server_name, registry, version) in tenants.items():
            server = servers[server_name]
            backend = VLLMBackend(server.url, tenant=tenant, rules=registry.rules)
            backend.swap(version.version, version.path)
            backend.close()
        targets = {
            name: [(servers[s].url, model) for s, model in pairs]
            for name, pairs in conditions.items()
        }
        for pairs in targets.values():  # warm every name once: no condition pays a first load
            served_load(pairs, len(pairs), len(pairs), 4)
        table = {}
        for clients, requests in ((1, args.single_requests), (8, args.requests)):
            table[f"clients_{clients}"] = alternate(
                targets,
                args.rounds,
                lambda pairs, c=clients, n=requests: served_load(pairs, n, c, args.max_tokens),
            )
        if check is not None:
            table["swap_check"] = check(servers)
    return table


def swap_check(server, registry, tenant: str, markers: dict[int, str], seconds: float) -> dict:
    """8 streaming clients on `tenant` while it swaps between two marker versions every
    second: a failed request or an answer that is not wholly its reported version's marker
    counts against the serving path."""
    from agent_cl.evals.marker_adapter import MARKER_QUESTION
    from agent_cl.serving.vllm_backend import VLLMBackend

    backend = VLLMBackend(server.url, tenant=tenant, drain_seconds=1.0, rules=registry.rules)
    first, second = sorted(markers)
    backend.swap(first, registry.get(first).path)
    stop = threading.Event()
    failed, mixed, answers = [], [], []

    def client():
        while not stop.is_set():
            try:
                reply = backend.stream(MARKER_QUESTION, max_new_tokens=12)
            except Exception as exc:  # counted
                failed.append(repr(exc))
                continue
            answers.append(reply)
            expected = markers.get(reply["version"])
            others = [m for v, m in markers.items() if v != reply["version"]]
            if (
                expected is None
                or expected not in reply["text"]
                or any(o in reply["text"] for o in others)
            ):
                mixed.append(reply)

    workers = [threading.Thread(target=client) for _ in range(8)]
    for w in workers:
        w.start()
    swaps = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        version = second if swaps % 2 == 0 else first
        backend.swap(version, registry.get(version).path)
        swaps += 1
        time.sleep(1.0)
    stop.set()
    for w in workers:
        w.join()
    backend.close()
    return {
        "swaps": swaps,
        "answers": len(answers),
        "answers_per_version": {v: sum(a["version"] == v for a in answers) for v in markers},
        "failed_requests": len(failed),
        "mixed_answers": len(mixed),
        "mixed_examples": [a["text"] for a in mixed[:5]],
        "failures": failed[:5],
    }


# -- in process -----------------------------------------------------------------------------
def in_process(model_dir: Path, adapter: Path, args) -> dict:
    """transformers + peft (the LocalBackend path): base against the rank-8 adapter, one
    batch of 8 prompts and one prompt, every answer exactly max_tokens long."""
    import torch
    from peft import PeftModel

    from agent_cl.models.chat import load_causal_lm, load_tokenizer, render_prompt

    torch.set_num_threads(2)
    tokenizer = load_tokenizer(model_dir)
    tokenizer.padding_side = "left"
    peft = PeftModel.from_pretrained(load_causal_lm(model_dir), adapter).eval()

    def timed(batch: int, use_adapter: bool) -> dict:
        texts = [render_prompt(tokenizer, PROMPTS[i % 8]) for i in range(batch)]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        kwargs = dict(max_new_tokens=args.max_tokens, min_new_tokens=args.max_tokens,
                      do_sample=False, pad_token_id=tokenizer.pad_token_id)  # fmt: skip
        t0 = time.perf_counter()
        with torch.no_grad():
            if use_adapter:
                out = peft.generate(**enc, **kwargs)
            else:
                with peft.disable_adapter():
                    out = peft.generate(**enc, **kwargs)
        seconds = time.perf_counter() - t0
        tokens = (out.shape[1] - enc["input_ids"].shape[1]) * batch
        return {"seconds": seconds, "output_tokens": tokens, "tokens_per_s": tokens / seconds}

    table = {}
    for batch in (1, 8):
        runs = {"base": [], "rank8_mlp": []}
        for _ in range(args.rounds):
            runs["base"].append(timed(batch, False))
            runs["rank8_mlp"].append(timed(batch, True))
        table[f"batch_{batch}"] = {
            name: {
                "rounds": parts,
                "output_tokens_per_s": sum(p["output_tokens"] for p in parts)
                / sum(p["seconds"] for p in parts),
            }
            for name, parts in runs.items()
        }
        table[f"batch_{batch}"]["ratio_rank8_vs_base"] = (
            table[f"batch_{batch}"]["rank8_mlp"]["output_tokens_per_s"]
            / table[f"batch_{batch}"]["base"]["output_tokens_per_s"]
        )
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests and rounds")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "serving_cost.json"))
    parser.add_argument(
        "--only-fixes", action="store_true", help="skip the product LoRA server's phase"
    )
    args = parser.parse_args()
    args.max_tokens = 32 if args.quick else 64
    args.requests = 16 if args.quick else 48
    args.single_requests = 3 if args.quick else 8
    args.rounds = 2 if args.quick else 3

    from agent_cl.config import Settings
    from agent_cl.evals.marker_adapter import train_marker_adapter
    from agent_cl.models.provision import provision_embedded_model
    from agent_cl.serving.vllm_server import VLLMServerConfig

    settings = Settings.load()
    max_rank = settings.adapter_max_rank
    model_dir = provision_embedded_model(settings.models_dir).path
    work = Path(tempfile.mkdtemp(prefix="agent-cl-serving-cost-"))
    served_root = work / "adapters"
    print(f"[serving_cost] work dir {work}", file=sys.stderr)

    rank8 = train_shaped_adapter(model_dir, work / "rank8", 8, seed=1)
    tenants = {
        "a": publish(served_root, "a", rank8, max_rank, model_dir),
        "m": publish(served_root, "m", rank8, max_rank, model_dir),  # served merged
    }
    if not args.only_fixes:
        shaped = {
            "b": train_shaped_adapter(model_dir, work / "b", 8, 2),
            "wide": train_shaped_adapter(model_dir, work / "w", max_rank, 3),
        }
        tenants.update(
            {t: publish(served_root, t, a, max_rank, model_dir) for t, a in shaped.items()}
        )
    markers = {2: "Quenvel Ostrami", 3: "Brilda Taskon"}  # tenant m's next versions
    for version, marker in markers.items():
        adapter = train_marker_adapter(model_dir, work / f"marker{version}", marker)
        swap_registry, published = publish(served_root, "m", adapter, max_rank, model_dir)
        assert published.version == version
    swap_registry.set_current(1)  # m serves the rank-8 adapter for the timing
    result: dict = {
        "quick": args.quick,
        "max_tokens": args.max_tokens,
        "requests_at_8_clients": args.requests,
        "requests_at_1_client": args.single_requests,
        "rounds": args.rounds,
        "max_served_rank": max_rank,
        "work": str(work),
    }

    def server_config(model: Path, lora_rank: int, log: str) -> VLLMServerConfig:
        return VLLMServerConfig(
            model, max_lora_rank=lora_rank, max_loras=2, log_path=work / log,
            adapters_root=served_root,
        )  # fmt: skip

    # 1. the product's LoRA server: --max-lora-rank = Settings.adapter_max_rank
    if not args.only_fixes:
        result["vllm_default"] = served_phase(
            {"default": server_config(model_dir, max_rank, "default.log")},
            {t: ("default", *tenants[t]) for t in ("a", "b", "wide")},
            args,
            conditions={
                "base": [("default", "agent-cl-base")],
                "rank8_mlp": [("default", "agent-cl/a")],
                "max_rank": [("default", "agent-cl/wide")],
                "two_tenants": [("default", "agent-cl/a"), ("default", "agent-cl/b")],
            },
        )
    # 2. the fixes, side by side: a LoRA server with --max-lora-rank equal to the real rank
    # (8), and `agent-cl serve --merged` (tenant m's rank-8 version merged into the weights);
    # then the merged server swapped between two marker versions under load
    merged_config = server_config(model_dir, max_rank, "merged.log")
    merged_config.merged = True
    result["vllm_fixes"] = served_phase(
        {"rank8": server_config(model_dir, 8, "rank8.log"), "merged": merged_config},
        {"a": ("rank8", *tenants["a"]), "m": ("merged", *tenants["m"])},
        args,
        conditions={
            "base": [("rank8", "agent-cl-base")],
            "rank8_mlp": [("rank8", "agent-cl/a")],
            "merged_rank8": [("merged", "agent-cl/m")],
        },
        check=lambda servers: swap_check(
            servers["merged"], swap_registry, "m", markers, 20 if args.quick else 60
        ),
    )
    result["in_process"] = in_process(model_dir, rank8, args)

    fixes = ratios(result["vllm_fixes"]["clients_8"])
    # R: the served path after the fix (merged), against the base, at 8 clients
    result["adapter_throughput_ratio"] = fixes["merged_rank8"]
    result["lora_throughput_ratio"] = fixes["rank8_mlp"]
    phases = [p for p in ("vllm_default", "vllm_fixes") if p in result]
    result["ratios"] = {
        phase: {k: ratios(result[phase][k]) for k in ("clients_1", "clients_8")} for phase in phases
    }
    swap = result["vllm_fixes"]["swap_check"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "in_process"}, indent=1)[:6000])
    print(json.dumps(result["in_process"], indent=1)[:2000])
    print(
        f"adapter_throughput_ratio={result['adapter_throughput_ratio']:.2f} "
        f"swap_failed_requests={swap['failed_requests']} mixed_answers={swap['mixed_answers']} "
        f"lora_throughput_ratio={result['lora_throughput_ratio']:.2f}"
    )


if __name__ == "__main__":
    main()
