"""Merge frontier JSON files into one table (markdown), one plot and one JSON.

Runs made with `--pool` (GPU sweeps) carry per-item results on the whole retention candidate
pool and are rescored against the current fixture, so runs made before the fixture was frozen
count on the same robust/full sets as the others. Runs are grouped by label and device.

    python benchmarks/frontier_report.py bench-results/gpu/stage1*.json bench-results/cpu-*.json \\
        --md docs/results/frontier_table.md --png docs/results/frontier.png \\
        --json docs/results/frontier.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

KEYS = (
    "new_skill_acc",
    "retention",
    "retention_full",
    "kl_from_base",
    "leaks",
    "seconds_per_step",
    "peak_rss_mb",
)
BAR_NEW, BAR_DROP = 0.75, 0.03


def rescore(run: dict, full) -> dict:
    """Robust/full/per-kind retention from the run's per-item pool results."""
    from agent_cl.scoring.retention import retention_breakdown

    hits = [run["pool_correct"][item.item_id] for item in full]
    out = {k: v for k, v in run.items() if k != "pool_correct"}
    return {**out, **retention_breakdown(full, hits)}


def merge(paths: list[Path]) -> dict:
    from agent_cl.scoring.retention import load_retention_set

    full = load_retention_set(subset="full")
    runs, baseline = [], None
    for path in paths:
        data = json.loads(path.read_text())
        base = data.get("baseline", {})
        if "pool_correct" in base:
            base = rescore(base, full)
        if baseline is None and "teacher_acc" in base and "retention_full" in base:
            baseline = base
        for run in data["runs"]:
            run = rescore(run, full) if "pool_correct" in run else dict(run)
            run["device"] = run["config"].get("device", "cpu").replace("auto", "cpu")
            run["source"] = path.name
            runs.append(run)
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for run in runs:
        groups[(run["label"], run["device"])].append(run)
    means = {}
    for (label, device), group in groups.items():
        row = {k: statistics.mean(r[k] for r in group) for k in KEYS}
        row.update(label=label, device=device, seeds=len(group))
        row["new_min"] = min(r["new_skill_acc"] for r in group)
        row["retention_min"] = min(r["retention"] for r in group)
        for key in ("new_skill_acc", "retention"):
            row[f"{key}_sd"] = statistics.stdev(r[key] for r in group) if len(group) > 1 else 0.0
        means[f"{label} [{device}]"] = row
    return {"baseline": baseline, "runs": runs, "means": means}


def margin(row: dict, base_retention: float) -> float:
    """Worst seed's distance inside the bar, in bar units (> 0: every seed meets it)."""
    return min(
        (row["new_min"] - BAR_NEW) / 0.1,
        (row["retention_min"] - base_retention + BAR_DROP) / 0.02,
    )


def table(summary: dict) -> str:
    base = summary["baseline"]
    lines = [
        f"Baseline: before {base['before_acc']:.3f}, in-context teacher {base['teacher_acc']:.3f}, "
        f"robust retention {base['retention']:.3f} ({base['n_retention']} items), full "
        f"{base['retention_full']:.3f} ({base['n_retention_full']} items), "
        f"{base['n_held_out']} held-out questions.",
        "",
        "| recipe | device | steps x batch | seeds | new skill | robust retention | full "
        "| KL from base | leaks | s/step |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = sorted(summary["means"].values(), key=lambda r: -margin(r, base["retention"]))
    for m in rows:
        new, ret = f"{m['new_skill_acc']:.3f}", f"{m['retention']:.3f}"
        if m["seeds"] > 1:
            new += f" ± {m['new_skill_acc_sd']:.3f}"
            ret += f" ± {m['retention_sd']:.3f}"
        cfg = next(
            r["config"]
            for r in summary["runs"]
            if (r["label"], r["device"]) == (m["label"], m["device"])
        )
        lines.append(
            f"| {m['label']} | {m['device']} | {cfg['steps']} x {cfg['batch_size']} | {m['seeds']} "
            f"| {new} | {ret} | {m['retention_full']:.3f} | {m['kl_from_base']:.3f} "
            f"| {m['leaks']:.0f} | {m['seconds_per_step']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def plot(summary: dict, path: Path, labelled: int = 8) -> None:
    """Left: every recipe; right: the corner where the bar is, the best `labelled` named."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = summary["baseline"]
    rows = sorted(summary["means"].items(), key=lambda kv: -margin(kv[1], base["retention"]))
    named = {name for name, _ in rows[:labelled]} | {
        name for name, m in rows if m["label"] in ("sft", "sdft") or "old default" in m["label"]
    }
    fig, axes = plt.subplots(1, 2, figsize=(14, 6.5))
    for ax, zoom in zip(axes, (False, True), strict=True):
        ax.axhline(base["teacher_acc"], color="grey", ls="--", lw=1, label="in-context teacher")
        ax.axhline(BAR_NEW, color="grey", ls=":", lw=1, label=f"bar: new skill >= {BAR_NEW}")
        ax.axvline(base["retention"] - BAR_DROP, color="tab:red", ls=":", lw=1, label="bar: -3 pts")
        for name, m in rows:
            color = "tab:blue" if m["device"] == "cuda" else "tab:orange"
            ax.errorbar(
                m["retention"],
                m["new_skill_acc"],
                xerr=m["retention_sd"],
                yerr=m["new_skill_acc_sd"],
                fmt="o",
                ms=4,
                color=color,
                alpha=0.8,
            )
            inside = m["retention"] >= 0.93 and m["new_skill_acc"] >= 0.7
            if name in named and (inside or not zoom):
                ax.annotate(
                    name,
                    (m["retention"], m["new_skill_acc"]),
                    fontsize=7,
                    xytext=(4, 3),
                    textcoords="offset points",
                )
        if zoom:
            ax.set_xlim(0.93, 1.0)
            ax.set_ylim(0.7, 1.0)
            ax.set_title("zoom on the bar (named: the 8 with the most margin)")
        else:
            ax.set_title("all recipes (blue: H200 fp32, orange: 2 CPU cores)")
            ax.legend(loc="lower left", fontsize=8)
        ax.set_xlabel(f"robust retention ({base['n_retention']} items)")
        ax.set_ylabel("new skill: held-out paraphrases, no context")
        ax.grid(alpha=0.3)
    fig.suptitle("SmolLM2-135M-Instruct, 16 invented facts, LoRA consolidation recipes")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="+", type=Path)
    parser.add_argument("--md", type=Path)
    parser.add_argument("--png", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    summary = merge(args.inputs)
    if summary["baseline"] is None:
        raise SystemExit("no input carries a baseline with teacher_acc and full retention")
    text = table(summary)
    print(text)
    if args.md:
        args.md.write_text(text)
    if args.png:
        plot(summary, args.png)
    if args.json:
        slim = {
            **summary,
            "runs": [
                {k: v for k, v in r.items() if k != "retention_failures"} for r in summary["runs"]
            ],
        }
        args.json.write_text(json.dumps(slim, indent=1))


if __name__ == "__main__":
    main()
