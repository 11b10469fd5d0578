"""Merge frontier JSON files into one table (markdown) and one plot.

    python benchmarks/frontier_report.py bench-results/frontier-*.json \
        --md docs/results/frontier_table.md --png docs/results/frontier.png \
        --json docs/results/frontier.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from consolidation_frontier import plot

KEYS = ("new_skill_acc", "retention", "kl_from_base", "leaks", "seconds_per_step", "peak_rss_mb")


def merge(paths: list[Path]) -> dict:
    runs, baseline, meta = [], None, {}
    for path in paths:
        data = json.loads(path.read_text())
        baseline = baseline or data["baseline"]
        meta = {k: data[k] for k in ("skill", "facts", "steps", "batch_size", "lr")}
        for run in data["runs"]:
            run.setdefault("label", run["method"])
            run["source"] = path.name
            runs.append(run)
    means = {}
    for label in dict.fromkeys(r["label"] for r in runs):
        group = [r for r in runs if r["label"] == label]
        means[label] = {k: statistics.mean(r[k] for r in group) for k in KEYS}
        means[label]["seeds"] = len(group)
        if len(group) > 1:
            means[label]["new_skill_acc_sd"] = statistics.stdev(r["new_skill_acc"] for r in group)
            means[label]["retention_sd"] = statistics.stdev(r["retention"] for r in group)
    return {**meta, "baseline": baseline, "runs": runs, "means": means}


def table(summary: dict) -> str:
    base = summary["baseline"]
    lines = [
        f"Baseline: before {base['before_acc']:.3f}, in-context teacher {base['teacher_acc']:.3f}, "
        f"retention {base['retention']:.3f} ({base['n_retention']} items), "
        f"{base['n_held_out']} held-out questions.",
        "",
        "| method | steps x batch | seeds | new skill (no context) | retention | KL from base "
        "| leaks | s/step | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, m in summary["means"].items():
        new = f"{m['new_skill_acc']:.3f}"
        ret = f"{m['retention']:.3f}"
        if m["seeds"] > 1:
            new += f" ± {m['new_skill_acc_sd']:.3f}"
            ret += f" ± {m['retention_sd']:.3f}"
        cfg = next(r["config"] for r in summary["runs"] if r["label"] == label)
        lines.append(
            f"| {label} | {cfg['steps']} x {cfg['batch_size']} | {m['seeds']} | {new} | {ret} | "
            f"{m['kl_from_base']:.3f} | "
            f"{m['leaks']:.0f} | {m['seconds_per_step']:.2f} | {m['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("inputs", nargs="+", type=Path)
    parser.add_argument("--md", type=Path)
    parser.add_argument("--png", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    summary = merge(args.inputs)
    text = table(summary)
    print(text)
    if args.md:
        args.md.write_text(text)
    if args.png:
        plot(summary, args.png)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
