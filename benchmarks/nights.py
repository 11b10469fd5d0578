"""Several nights in a row on the embedded model: each day brings new facts, each night the
sleep job (gate on) trains adapter N+1 from adapter N with replay, and the served model is
swapped when the gate passes.

After every night the served model is asked, with nothing in context, the held-out paraphrases
of every fact seen so far (old nights' skills must stay) and the whole retention set (robust
and full, against the base model's score, so drift that each night's gate allows can add up in
plain sight).

    python benchmarks/nights.py                      # 3 nights x 8 facts, about 30 min on CPU
    python benchmarks/nights.py --no-gate --out bench-results/nights-nogate.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _progress(record) -> None:
    """A line every 64 steps, so a long night (128 demonstrations: ~1,000 steps) shows where
    it is in its log."""
    if record.step % 64 == 0:
        print(f"step {record.step} loss {record.loss:.3f}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nights", type=int, default=3)
    parser.add_argument("--facts-per-night", type=int, default=8)
    parser.add_argument("--method", default=None, help="default: the trainer's default recipe")
    parser.add_argument(
        "--steps-per-demo",
        type=int,
        default=None,
        help="steps = this x (new + replayed) demos (default: sleep_steps_per_demo, 8)",
    )
    parser.add_argument("--replay", type=int, default=8, help="old demonstrations per night")
    parser.add_argument("--max-retention-drop", type=float, default=None)
    parser.add_argument("--no-gate", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "nights.json"))
    args = parser.parse_args()

    from agent_cl.config import Settings
    from agent_cl.consolidation.training_config import DEFAULT_METHOD
    from agent_cl.evals.facts import build_facts
    from agent_cl.memory.chroma import ChromaDemonstrationStore
    from agent_cl.models.chat import task_message
    from agent_cl.models.provision import provisioned_model_dir
    from agent_cl.night.gate import GateItem, retention_items
    from agent_cl.night.night import Night
    from agent_cl.night.plan import NightPlan
    from agent_cl.scoring.retention import retention_breakdown
    from agent_cl.serving.local_backend import LocalBackend

    base = Settings.load()
    model_dir = provisioned_model_dir(base.model_dir, base.models_dir)
    # every night setting from agent-cl.toml / AGENT_CL_* (a larger night needs the cap raised;
    # a lever is one environment variable), in a home of its own
    settings = dataclasses.replace(
        base, home=Path(tempfile.mkdtemp(prefix="agent-cl-nights-")), model_dir=model_dir
    )
    store = ChromaDemonstrationStore.open(settings.store_dir)
    backend = LocalBackend(model_dir, torch_threads=settings.torch_threads)
    facts = build_facts(args.nights * args.facts_per_night, seed=0)
    retention = retention_items()

    def item(question, check) -> GateItem:
        return GateItem([{"role": "user", "content": task_message(question)}], check)

    def served(items: list[GateItem]) -> list[bool]:
        answers = backend.generate([i.conversation for i in items], max_new_tokens=40).texts
        return [i.is_correct(a) for i, a in zip(items, answers, strict=True)]

    def retention_now() -> dict[str, float]:
        scores = retention_breakdown(retention, served(retention))
        return {"robust": scores["retention"], "full": scores["retention_full"]}

    start_retention = retention_now()
    print(json.dumps({"base_retention": start_retention}), flush=True)
    nights = []
    for night_no in range(1, args.nights + 1):
        todays = facts[(night_no - 1) * args.facts_per_night : night_no * args.facts_per_night]
        store.add([f.demonstration() for f in todays])
        night_settings = dataclasses.replace(
            settings,
            sleep_method=args.method or DEFAULT_METHOD,
            sleep_steps_per_demo=(
                settings.sleep_steps_per_demo
                if args.steps_per_demo is None
                else args.steps_per_demo
            ),
            gate_enabled=not args.no_gate,
            sleep_replay=args.replay,
            **(
                {"gate_max_retention_drop": args.max_retention_drop}
                if args.max_retention_drop is not None
                else {}
            ),
        )
        held_out = [item(q, f.is_correct) for f in todays for q in f.paraphrases]
        plan = NightPlan.from_settings(night_settings)
        job = Night(night_settings, store).job(
            "default",
            held_out=held_out,
            retention=retention,
            on_publish=lambda v: backend.swap(v.version, v.path),
            on_step=_progress,
        )
        t0 = time.perf_counter()
        report = job.run()
        seconds = time.perf_counter() - t0
        per_night = {}
        for earlier in range(1, night_no + 1):
            seen = facts[(earlier - 1) * args.facts_per_night : earlier * args.facts_per_night]
            hits = served([item(q, f.is_correct) for f in seen for q in f.paraphrases])
            per_night[f"night{earlier}_facts_acc"] = sum(hits) / len(hits)
        row = {
            "night": night_no,
            "status": report.status,
            "gate_reason": report.gate.get("reason"),
            "gate_before": report.gate.get("before"),
            "gate_after": report.gate.get("after"),
            "init_version": report.init_version,
            "served_version": backend.adapter_version,
            "demonstrations": report.demonstrations,
            "replayed": report.replayed,
            "steps": report.train.get("steps"),
            "sleep_seconds": seconds,
            "train_seconds": report.train.get("seconds"),
            "train_seconds_per_step": report.train.get("seconds_per_step"),
            "peak_rss_mb": report.train.get("peak_rss_mb"),
            **per_night,
            "retention": retention_now(),
        }
        nights.append(row)
        print(json.dumps({k: v for k, v in row.items() if not k.startswith("gate_")}), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "args": vars(args),
        "config": plan.consolidation().to_dict(),
        "gate": None if args.no_gate else plan.gate_config().__dict__,
        "base_retention": start_retention,
        "all_published": all(n["status"] == "published" for n in nights),
        "night1_facts_after_last": nights[-1].get("night1_facts_acc"),
    }
    out.write_text(json.dumps({"summary": summary, "nights": nights}, indent=2, default=str))
    print(json.dumps(summary, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
