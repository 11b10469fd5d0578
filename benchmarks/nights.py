"""Several nights in a row on the embedded model: each day brings new facts, each night the sleep
job (gate on) trains adapter N+1 from adapter N with replay, and the served model is swapped.

After every night we ask the served model, with nothing in context, the held-out paraphrases of
every fact seen so far (old nights' skills must stay) and the retention items.

    python benchmarks/nights.py --nights 3 --facts-per-night 8          # about 10 min on CPU
    python benchmarks/nights.py --no-gate --out bench-results/nights-nogate.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nights", type=int, default=3)
    parser.add_argument("--facts-per-night", type=int, default=8)
    parser.add_argument("--method", default=None, help="default: the trainer's default recipe")
    parser.add_argument("--steps", type=int, default=None, help="default: 2 per fact, batch 4")
    parser.add_argument("--replay", type=int, default=4)
    parser.add_argument("--retention-items", type=int, default=60)
    parser.add_argument("--max-retention-drop", type=float, default=0.01)
    parser.add_argument("--no-gate", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "nights.json"))
    args = parser.parse_args()

    from agent_cl.config import Settings
    from agent_cl.consolidation.config import DEFAULT_METHOD, ConsolidationConfig
    from agent_cl.consolidation.gate import GateConfig, GateItem
    from agent_cl.consolidation.sleep import SleepJob
    from agent_cl.evals.facts import build_facts
    from agent_cl.memory.chroma import ChromaDemonstrationStore
    from agent_cl.models.chat import task_message
    from agent_cl.models.provision import provision_embedded_model
    from agent_cl.scoring.retention import load_retention_set
    from agent_cl.serving.local_backend import LocalBackend
    from agent_cl.serving.registry import AdapterRegistry

    settings = Settings.load()
    model_dir = provision_embedded_model(settings.models_dir).path
    home = Path(tempfile.mkdtemp(prefix="agent-cl-nights-"))
    store = ChromaDemonstrationStore.open(home / "store")
    registry = AdapterRegistry(home / "adapters" / "nights")
    backend = LocalBackend(model_dir, torch_threads=settings.torch_threads)
    facts = build_facts(args.nights * args.facts_per_night, seed=0)
    retention = load_retention_set(limit=args.retention_items)
    config = ConsolidationConfig(
        method=args.method or DEFAULT_METHOD,
        steps=args.steps or 2 * args.facts_per_night,
        batch_size=4,
    )
    gate = None if args.no_gate else GateConfig(max_retention_drop=args.max_retention_drop)

    def item(question, check) -> GateItem:
        return GateItem([{"role": "user", "content": task_message(question)}], check)

    def served_accuracy(items: list[GateItem]) -> float:
        answers = backend.generate([i.conversation for i in items], max_new_tokens=40).texts
        return sum(i.is_correct(a) for i, a in zip(items, answers, strict=True)) / len(items)

    retention_items = [item(r.prompt, r.is_correct) for r in retention]
    nights = []
    for night in range(1, args.nights + 1):
        todays = facts[(night - 1) * args.facts_per_night : night * args.facts_per_night]
        store.add([f.demonstration() for f in todays])
        held_out = [item(q, f.is_correct) for f in todays for q in f.paraphrases]
        job = SleepJob(
            store=store,
            registry=registry,
            model_dir=model_dir,
            config=config,
            tenant="default",
            gate=gate,
            held_out=held_out,
            retention=retention_items,
            on_publish=lambda v: backend.swap(v.version, v.path),
            torch_threads=settings.torch_threads,
            replay=args.replay,
            reports_dir=home / "reports",
        )
        t0 = time.perf_counter()
        report = job.run()
        seconds = time.perf_counter() - t0
        seen = facts[: night * args.facts_per_night]
        all_held_out = [item(q, f.is_correct) for f in seen for q in f.paraphrases]
        row = {
            "night": night,
            "status": report.status,
            "gate_reason": report.gate.get("reason"),
            "candidate": report.gate.get("after"),
            "init_version": report.init_version,
            "served_version": backend.adapter_version,
            "demonstrations": report.demonstrations,
            "replayed": report.replayed,
            "sleep_seconds": seconds,
            "train_seconds_per_step": report.train.get("seconds_per_step"),
            "peak_rss_mb": report.train.get("peak_rss_mb"),
            "tonight_acc": served_accuracy(held_out),
            "all_nights_acc": served_accuracy(all_held_out),
            "retention": served_accuracy(retention_items),
        }
        nights.append(row)
        print(json.dumps(row), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"config": config.to_dict(), "gate": gate.__dict__ if gate else None, **vars(args)}
    out.write_text(json.dumps({"settings": summary, "nights": nights}, indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
