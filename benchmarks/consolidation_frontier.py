"""The learn/retain frontier: every consolidation recipe on the same data, model and budget.

For each method (and seed) a fresh process trains a LoRA adapter on the facts suite's
demonstrations, then scores the candidate without any context: new-skill accuracy on held-out
paraphrases, retention on the frozen 152-item set, mean per-token KL from the base on 50 general
prompts, leaks (invented answers showing up in general answers), wall time and peak RSS.
One process per run keeps peak RSS honest and runs from interfering.

    python benchmarks/consolidation_frontier.py --quick              # 16 facts, 32 steps
    python benchmarks/consolidation_frontier.py --methods sft,sft_kl --seeds 0,1
Writes JSON (one object: baseline + runs + per-method means) and a PNG scatter plot.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_METHODS = "sft_name,sft,sft_replay,sft_kl,sdft,sdft_sft,sdft_sft_kl,gkd,sdft_warm"


def skill_suite(skill: str, n: int, seed: int):
    """Demonstrations; held-out (question, teacher conversation, is_correct); strings that must
    not leak into general answers."""
    from agent_cl.models.chat import task_message

    if skill == "facts":
        from agent_cl.evals.facts import build_facts

        facts = build_facts(n, seed=seed)
        demos = [f.demonstration() for f in facts]
        held_out = [
            (q, [{"role": "user", "content": task_message(q, f.note)}], f.is_correct)
            for f in facts
            for q in f.paraphrases
        ]
        return demos, held_out, [f.answer for f in facts]
    if skill == "json":
        from agent_cl.evals.json_skill import EXAMPLE, build_json_tasks

        tasks = build_json_tasks(2 * n, seed=seed)
        demos = [t.demonstration() for t in tasks[:n]]
        example_turns = [
            {"role": "user", "content": EXAMPLE.question},
            {"role": "assistant", "content": EXAMPLE.answer},
        ]
        held_out = [
            (t.question, [*example_turns, {"role": "user", "content": t.question}], t.is_correct)
            for t in tasks[n:]
        ]
        return demos, held_out, []
    raise SystemExit(f"unknown skill {skill!r}")


def run_one(args) -> dict:
    import torch

    from agent_cl.config import Settings
    from agent_cl.consolidation.config import ConsolidationConfig
    from agent_cl.consolidation.trainer import ConsolidationTrainer, peak_rss_mb
    from agent_cl.evals.retention import KL_PROMPTS, load_retention_set, score
    from agent_cl.models.chat import task_message
    from agent_cl.models.provision import provision_embedded_model

    settings = Settings.load()
    model_dir = provision_embedded_model(settings.models_dir).path
    torch.manual_seed(args.seed)
    demos, held_out, invented = skill_suite(args.skill, args.facts, args.data_seed)
    config = ConsolidationConfig(
        method=args.method,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        learning_rate=args.lr,
        **_overrides(args.set),
    )
    trainer = ConsolidationTrainer(model_dir, config, torch_threads=settings.torch_threads)
    t0 = time.perf_counter()
    result = trainer.train(demos, Path(args.work) / f"{args.method}-{args.seed}")
    train_seconds = time.perf_counter() - t0
    answers = trainer.generate([[{"role": "user", "content": q}] for q, _, _ in held_out])
    new_skill = sum(ok(a) for (_, _, ok), a in zip(held_out, answers, strict=True)) / len(held_out)
    retention_items = load_retention_set()
    retention_answers = trainer.generate(
        [[{"role": "user", "content": task_message(i.prompt)}] for i in retention_items]
    )
    kl_answers = trainer.generate([[{"role": "user", "content": p}] for p in KL_PROMPTS])
    leaks = sum(
        any(name.lower() in a.lower() for name in invented) for a in retention_answers + kl_answers
    )
    history = result.history
    return {
        "method": args.method,
        "seed": args.seed,
        "skill": args.skill,
        "new_skill_acc": new_skill,
        "retention": score(retention_items, retention_answers),
        "kl_from_base": trainer.kl_from_base(list(KL_PROMPTS)),
        "leaks": leaks,
        "train_seconds": train_seconds,
        "seconds_per_step": result.seconds_per_step,
        "sample_seconds_per_step": statistics.mean(h.sample_seconds for h in history),
        "peak_rss_mb": peak_rss_mb(),
        "final_terms": history[-1].terms if history else {},
        "samples_with_answer_last": history[-1].samples_with_answer if history else None,
        "config": config.to_dict(),
        "example_answers": answers[:3],
        "retention_failures": {
            item.item_id: answer
            for item, answer in zip(retention_items, retention_answers, strict=True)
            if not item.is_correct(answer)
        },
    }


def _overrides(pairs: list[str]) -> dict:
    """`--set anchor_batch_size=16 --set anchor_samples=base` -> config keyword arguments."""
    out = {}
    for pair in pairs:
        key, _, raw = pair.partition("=")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def baseline(args) -> dict:
    from agent_cl.config import Settings
    from agent_cl.evals.retention import load_retention_set, score
    from agent_cl.models.chat import (
        generate_batch,
        load_causal_lm,
        load_tokenizer,
        set_torch_threads,
    )
    from agent_cl.models.provision import provision_embedded_model

    settings = Settings.load()
    set_torch_threads(settings.torch_threads)
    model_dir = provision_embedded_model(settings.models_dir).path
    tok, lm = load_tokenizer(model_dir), load_causal_lm(model_dir)
    _, held_out, _ = skill_suite(args.skill, args.facts, args.data_seed)

    def acc(with_context: bool) -> float:
        convs = [c if with_context else [{"role": "user", "content": q}] for q, c, _ in held_out]
        outs = generate_batch(lm, tok, convs)
        return sum(ok(o) for (_, _, ok), o in zip(held_out, outs, strict=True)) / len(held_out)

    items = load_retention_set()
    outs = generate_batch(lm, tok, [[{"role": "user", "content": i.prompt}] for i in items])
    return {
        "before_acc": acc(False),
        "teacher_acc": acc(True),
        "retention": score(items, outs),
        "kl_from_base": 0.0,
        "n_held_out": len(held_out),
        "n_retention": len(items),
    }


def child(args, *extra: str) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--skill",
        args.skill,
        "--facts",
        str(args.facts),
        "--steps",
        str(args.steps),
        "--batch-size",
        str(args.batch_size),
        "--lr",
        str(args.lr),
        "--data-seed",
        str(args.data_seed),
        "--work",
        args.work,
        *(f"--set={pair}" for pair in args.set),
        *extra,
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ.copy())
    return json.loads(out.stdout.strip().splitlines()[-1])


def plot(summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 5))
    base = summary["baseline"]
    ax.axhline(base["teacher_acc"], color="grey", ls="--", lw=1, label="in-context teacher")
    ax.axhline(0.9 * base["teacher_acc"], color="grey", ls=":", lw=1, label="90% of teacher")
    ax.axvline(base["retention"] - 0.01, color="tab:red", ls=":", lw=1, label="retention -1 pt")
    for method, m in summary["means"].items():
        ax.scatter(m["retention"], m["new_skill_acc"], s=40)
        ax.annotate(
            method,
            (m["retention"], m["new_skill_acc"]),
            fontsize=8,
            xytext=(4, 3),
            textcoords="offset points",
        )
    ax.set_xlabel("retention (152 items the base answers correctly)")
    ax.set_ylabel("new-skill accuracy, no context (held-out paraphrases)")
    ax.set_title(f"{summary['skill']}: {summary['facts']} items, {summary['steps']} steps")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="16 facts, 32 steps")
    parser.add_argument("--skill", default="facts", choices=["facts", "json"])
    parser.add_argument("--methods", default=DEFAULT_METHODS)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--facts", type=int, default=32)
    parser.add_argument("--steps", type=int, default=None, help="default 64 (--quick: 32)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "frontier.json"))
    parser.add_argument("--plot", default=None, help="PNG path (default: beside --out)")
    parser.add_argument("--work", default="/tmp/agent-cl-frontier")
    parser.add_argument("--set", action="append", default=[], help="config override key=value")
    parser.add_argument("--label", default=None, help="name the runs (default: the method)")
    parser.add_argument("--baseline-json", default=None, help="reuse a baseline from this JSON")
    parser.add_argument("--method", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--baseline-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.facts = 16
    args.steps = args.steps or (32 if args.quick else 64)
    if args.baseline_only:
        print(json.dumps(baseline(args)))
        return
    if args.method:
        print(json.dumps(run_one(args)))
        return

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "skill": args.skill,
        "facts": args.facts,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "runs": [],
    }
    if args.baseline_json:
        summary["baseline"] = json.loads(Path(args.baseline_json).read_text())["baseline"]
    else:
        summary["baseline"] = child(args, "--baseline-only")
    print(f"baseline: {summary['baseline']}", flush=True)
    for method in args.methods.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            run = child(args, "--method", method, "--seed", str(seed))
            run["label"] = args.label or method
            summary["runs"].append(run)
            print(
                f"{method:12s} seed {seed}: new {run['new_skill_acc']:.3f} "
                f"retention {run['retention']:.3f} kl {run['kl_from_base']:.3f} "
                f"leaks {run['leaks']} {run['seconds_per_step']:.2f} s/step "
                f"rss {run['peak_rss_mb']:.0f} MB",
                flush=True,
            )
            out.write_text(json.dumps(_with_means(summary), indent=2))
    summary = _with_means(summary)
    out.write_text(json.dumps(summary, indent=2))
    plot(summary, Path(args.plot) if args.plot else out.with_suffix(".png"))
    print(f"wrote {out}")


def _with_means(summary: dict) -> dict:
    means: dict[str, dict] = {}
    for method in dict.fromkeys(r.get("label", r["method"]) for r in summary["runs"]):
        runs = [r for r in summary["runs"] if r.get("label", r["method"]) == method]
        means[method] = {
            key: statistics.mean(r[key] for r in runs)
            for key in (
                "new_skill_acc",
                "retention",
                "kl_from_base",
                "leaks",
                "seconds_per_step",
                "peak_rss_mb",
            )
        }
        means[method]["seeds"] = len(runs)
    return {**summary, "means": means}


if __name__ == "__main__":
    main()
