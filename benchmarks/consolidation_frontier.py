"""The learn/retain frontier: consolidation recipes on the same data, model and budget.

For each run a fresh process trains a LoRA adapter on the facts suite's demonstrations, then
scores the candidate with nothing in context: new-skill accuracy on held-out paraphrases,
retention on the frozen fixture (robust set, full set, per kind), mean per-token KL from the
base on open prompts, leaks (invented answers showing up in general answers), wall time and
peak RSS. One process per run keeps peak RSS honest and runs from interfering.

    python benchmarks/consolidation_frontier.py --quick                  # 16 facts, 32 steps
    python benchmarks/consolidation_frontier.py --methods sft,sft_kl --seeds 0,1
    python benchmarks/consolidation_frontier.py --grid grid.json --parallel 12 \\
        --set device=cuda --set dtype=float32 --pool            # a sweep on one GPU
A grid is a JSON list of runs: {"label", "method", "seed", "data_seed", "steps", "lr",
"batch_size", "set": {config overrides}, "then": {overrides for a second phase from the first's
adapter}}. `data_seed` draws another suite (other facts) for that run; the baseline's new-skill
scores are those of `--data-seed`'s suite, its retention is every run's.
Writes JSON (baseline + runs + per-label means) and a PNG scatter plot.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from frontier_report import KEYS, merge, plot  # noqa: E402  (the one table/plot code)

DEFAULT_METHODS = "sft,sft_kl,sdft"


def skill_suite(skill: str, n: int, seed: int):
    """The product's evaluation suite (agent_cl.evals.suites, shared with `agent-cl eval`):
    demonstrations; held-out items of the in-distribution split; strings that must not leak
    into general answers."""
    from agent_cl.evals.suites import build_suite

    suite = build_suite(skill, n, seed)
    return suite.demonstrations, suite.split("in"), suite.invented


def model_dir():
    from agent_cl.config import Settings
    from agent_cl.models.provision import provisioned_model_dir

    settings = Settings.load()
    return settings, provisioned_model_dir(settings.model_dir, settings.models_dir)


def retention_scores(generate, *, pool: bool) -> dict:
    """Robust and full retention, per kind, and (with `pool`) per-item results on the whole
    candidate pool so a later fixture can rescore the run without rerunning it."""
    from agent_cl.models.chat import task_message
    from agent_cl.scoring.retention import (
        candidate_pool,
        load_retention_set,
        retention_breakdown,
    )

    full = load_retention_set(subset="full")
    robust_ids = {i.item_id for i in load_retention_set(subset="robust")}
    items = list(full)
    if pool:
        known = {i.item_id for i in full}
        items += [i for i in candidate_pool() if i.item_id not in known]
    answers = generate([[{"role": "user", "content": task_message(i.prompt)}] for i in items])
    by_id = dict(zip((i.item_id for i in items), answers, strict=True))
    robust = [i for i in full if i.item_id in robust_ids]
    out = {
        **retention_breakdown(full, [i.is_correct(by_id[i.item_id]) for i in full]),
        "retention_failures": {
            i.item_id: by_id[i.item_id] for i in robust if not i.is_correct(by_id[i.item_id])
        },
        "_answers": answers,
    }
    if pool:
        out["pool_correct"] = {
            i.item_id: i.is_correct(a) for i, a in zip(items, answers, strict=True)
        }
    return out


def run_one(args) -> dict:
    import torch

    from agent_cl.consolidation.trainer import ConsolidationTrainer, peak_rss_mb
    from agent_cl.consolidation.training_config import ConsolidationConfig
    from agent_cl.scoring.retention import load_kl_prompts

    settings, path = model_dir()
    torch.manual_seed(args.seed)
    demos, held_out, invented = skill_suite(args.skill, args.facts, args.data_seed)
    exclude = [item.question for item in held_out]
    overrides = _overrides(args.set)
    config = ConsolidationConfig(
        method=args.method,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        learning_rate=args.lr,
        **overrides,
    )
    work = Path(args.work) / f"{args.label or args.method}-{args.seed}-{os.getpid()}"
    trainer = ConsolidationTrainer(path, config, torch_threads=settings.torch_threads)
    t0 = time.perf_counter()
    result = trainer.train(demos, work / "phase1", exclude_questions=exclude)
    phases = [result]
    if args.then:
        second = {**config.to_dict(), **overrides, **_overrides(args.then)}
        config = ConsolidationConfig(**second)
        trainer = ConsolidationTrainer(
            path, config, torch_threads=settings.torch_threads, init_adapter=work / "phase1"
        )
        phases.append(trainer.train(demos, work / "phase2", exclude_questions=exclude))
    train_seconds = time.perf_counter() - t0
    candidate = trainer.candidate()  # the trained adapter, asked as the gate asks it
    answers = candidate.generate([item.conversation for item in held_out])
    new_skill = sum(i.is_correct(a) for i, a in zip(held_out, answers, strict=True)) / len(held_out)
    kept = retention_scores(candidate.generate, pool=args.pool)
    kl_prompts = list(load_kl_prompts())
    kl_answers = candidate.generate([[{"role": "user", "content": p}] for p in kl_prompts])
    leaks = sum(
        any(name.lower() in a.lower() for name in invented)
        for a in kept.pop("_answers") + kl_answers
    )
    history = [h for phase in phases for h in phase.history]
    steps = sum(p.steps for p in phases)
    return {
        "method": args.method,
        "label": args.label or args.method,
        "seed": args.seed,
        "data_seed": args.data_seed,
        "skill": args.skill,
        "new_skill_acc": new_skill,
        **kept,
        "kl_from_base": candidate.kl_from_base(kl_prompts),
        "leaks": leaks,
        "augmented": sum(p.augmented for p in phases),
        "train_seconds": train_seconds,
        "steps_total": steps,
        "seconds_per_step": sum(p.seconds for p in phases) / max(steps, 1),
        "sample_seconds_per_step": statistics.mean(h.sample_seconds for h in history),
        "peak_rss_mb": peak_rss_mb(),
        "final_terms": history[-1].terms if history else {},
        "samples_with_answer_last": history[-1].samples_with_answer if history else None,
        "config": config.to_dict(),
        "then": _overrides(args.then) if args.then else None,
        "example_answers": answers[:3],
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
    from agent_cl.consolidation.trainer import resolve_device
    from agent_cl.consolidation.training_config import ConsolidationConfig
    from agent_cl.models.chat import (
        generate_batch,
        generation_batch_size,
        load_causal_lm,
        load_tokenizer,
        set_torch_threads,
    )

    settings, path = model_dir()
    set_torch_threads(settings.torch_threads)
    cfg = ConsolidationConfig(
        **{k: v for k, v in _overrides(args.set).items() if k in ("device", "dtype")}
    )
    device, dtype = resolve_device(cfg.device, cfg.dtype)
    tok, lm = load_tokenizer(path), load_causal_lm(path, dtype=dtype).to(device)

    def generate(convs):
        return generate_batch(lm, tok, convs, batch_size=generation_batch_size(device))

    _, held_out, _ = skill_suite(args.skill, args.facts, args.data_seed)

    def acc(with_context: bool) -> float:
        outs = generate([i.teacher if with_context else i.conversation for i in held_out])
        return sum(i.is_correct(o) for i, o in zip(held_out, outs, strict=True)) / len(held_out)

    kept = retention_scores(generate, pool=args.pool)
    kept.pop("_answers")
    return {
        "before_acc": acc(False),
        "teacher_acc": acc(True),
        **kept,
        "kl_from_base": 0.0,
        "n_held_out": len(held_out),
    }


def child(args, entry: dict | None = None, *extra: str) -> dict:
    entry = entry or {}
    sets = [*args.set, *(f"{k}={json.dumps(v)}" for k, v in entry.get("set", {}).items())]
    cmd = [
        sys.executable,
        __file__,
        "--skill",
        args.skill,
        "--facts",
        str(args.facts),
        "--steps",
        str(entry.get("steps", args.steps)),
        "--batch-size",
        str(entry.get("batch_size", args.batch_size)),
        "--lr",
        str(entry.get("lr", args.lr)),
        "--data-seed",
        str(entry.get("data_seed", args.data_seed)),
        "--work",
        args.work,
        *(f"--set={pair}" for pair in sets),
        *(f"--then={k}={json.dumps(v)}" for k, v in (entry.get("then") or {}).items()),
        *(["--pool"] if args.pool else []),
        *extra,
    ]
    if entry:
        cmd += ["--method", entry.get("method", "sft_kl"), "--seed", str(entry.get("seed", 0))]
        cmd += ["--label", entry.get("label") or entry.get("method", "sft_kl")]
    out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    if out.returncode != 0:
        return {"error": out.stderr[-2000:], "entry": entry}
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_grid(args, entries: list[dict], summary: dict, out: Path) -> None:
    """Run grid entries `args.parallel` at a time; start none after `args.deadline` seconds."""
    started = time.monotonic()

    def launch(entry):
        if args.deadline and time.monotonic() - started > args.deadline:
            return {"skipped": "deadline", "entry": entry}
        return child(args, entry)

    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        futures = [pool.submit(launch, e) for e in entries]
        for future in as_completed(futures):
            run = future.result()
            if "error" in run or "skipped" in run:
                summary.setdefault("failed", []).append(run)
                print(f"not run: {json.dumps(run)[:400]}", flush=True)
                continue
            summary["runs"].append(run)
            print(
                f"{run['label']:28s} seed {run['seed']}: new {run['new_skill_acc']:.3f} "
                f"robust {run['retention']:.3f} full {run['retention_full']:.3f} "
                f"kl {run['kl_from_base']:.3f} leaks {run['leaks']} aug {run['augmented']} "
                f"{run['seconds_per_step']:.2f} s/step",
                flush=True,
            )
            out.write_text(json.dumps(with_means(summary), indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="16 facts, 32 steps")
    skills = ["facts", "facts-varied", "json", "tools"]
    parser.add_argument("--skill", default="facts", choices=skills)
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
    parser.add_argument("--then", action="append", default=[], help="second-phase override")
    parser.add_argument("--label", default=None, help="name the runs (default: the method)")
    parser.add_argument("--grid", default=None, help="JSON list of runs (see the docstring)")
    parser.add_argument("--parallel", type=int, default=1, help="runs at once (GPU sweeps)")
    parser.add_argument("--deadline", type=float, default=0, help="start no run after S seconds")
    parser.add_argument("--pool", action="store_true", help="also score the whole pool per item")
    parser.add_argument("--baseline-json", default=None, help="reuse a baseline from this JSON")
    parser.add_argument(
        "--resume", action="store_true", help="keep --out's finished runs and run the rest"
    )
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
    summary = {"skill": args.skill, "facts": args.facts, "argv": sys.argv[1:], "runs": []}
    if args.resume and out.exists():
        # the file is rewritten after every finished run: carry its runs and baseline over
        summary = json.loads(out.read_text())
        if (summary.get("skill"), summary.get("facts")) != (args.skill, args.facts):
            raise SystemExit(f"{out} holds another suite; use another --out")
        summary.setdefault("resumed", []).append(sys.argv[1:])
    elif args.baseline_json:
        summary["baseline"] = json.loads(Path(args.baseline_json).read_text())["baseline"]
    if "baseline" not in summary:
        summary["baseline"] = child(args, None, "--baseline-only")
    print(
        f"baseline: { {k: v for k, v in summary['baseline'].items() if k != 'pool_correct'} }",
        flush=True,
    )
    if args.grid:
        entries = json.loads(Path(args.grid).read_text())
    else:
        entries = [
            {"method": m, "seed": int(s), "label": args.label or m}
            for m in args.methods.split(",")
            for s in args.seeds.split(",")
        ]
    done = {(r["label"], r["seed"], r.get("data_seed", 0)) for r in summary["runs"]}
    entries = [e for e in entries if _identity(e, args) not in done]
    run_grid(args, entries, summary, out)
    summary = with_means(summary)
    out.write_text(json.dumps(summary, indent=1))
    if summary["runs"]:
        try:
            plot(merge([out]), Path(args.plot) if args.plot else out.with_suffix(".png"))
        except ImportError:
            print("no plot: matplotlib is missing (pip install -e '.[bench]')")
    print(f"wrote {out}")


def _identity(entry: dict, args) -> tuple[str, int, int]:
    """What names a finished run in the results: a resumed grid skips it."""
    label = entry.get("label") or entry.get("method", "sft_kl")
    return label, int(entry.get("seed", 0)), int(entry.get("data_seed", args.data_seed))


def with_means(summary: dict) -> dict:
    means: dict[str, dict] = {}
    for label in dict.fromkeys(r["label"] for r in summary["runs"]):
        runs = [r for r in summary["runs"] if r["label"] == label]
        means[label] = {key: statistics.mean(r[key] for r in runs) for key in KEYS}
        means[label]["seeds"] = len(runs)
        if len(runs) > 1:
            for key in ("new_skill_acc", "retention"):
                means[label][f"{key}_sd"] = statistics.stdev(r[key] for r in runs)
    return {**summary, "means": means}


if __name__ == "__main__":
    main()
