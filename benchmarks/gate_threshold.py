"""The gate's retention threshold, derived from runs of the default recipe.

The gate refuses a night whose robust retention falls more than `max_retention_drop` below
the served model's. That bar is only fair if the default recipe's own run-to-run spread fits
under it: a night of the default recipe that drops within mean + 2 sd of its runs should
pass. This script reads frontier results (benchmarks/consolidation_frontier.py), takes the
runs of one label, and prints each run's drop from the baseline and mean, sample sd,
mean + 2 sd and the worst run, in points; it writes them as JSON beside the docs that quote
them (tests/test_results_docs.py recomputes the quotes from that JSON).

    python benchmarks/gate_threshold.py docs/results/threshold/frontier_varied.json \\
        --label "sft_kl_near (default)" --out docs/results/threshold/gate_threshold.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def drops(frontier: dict, label: str) -> list[dict]:
    """Each run of `label`: its seeds and its robust-retention drop from the baseline, in
    points."""
    base = frontier["baseline"]["retention"]
    runs = [r for r in frontier["runs"] if r["label"] == label]
    if not runs:
        labels = sorted({r["label"] for r in frontier["runs"]})
        raise SystemExit(f"no runs labelled {label!r}; the file has {labels}")
    return [
        {
            "seed": r["seed"],
            "data_seed": r.get("data_seed", 0),
            "retention": r["retention"],
            "drop_points": round((base - r["retention"]) * 100, 4),
            "new_skill_acc": r["new_skill_acc"],
            "kl_from_base": r["kl_from_base"],
        }
        for r in runs
    ]


def summary(runs: list[dict]) -> dict:
    values = [r["drop_points"] for r in runs]
    if len(values) < 2:
        raise SystemExit("a spread needs at least 2 runs")
    mean, sd = statistics.mean(values), statistics.stdev(values)
    learned = [r["new_skill_acc"] for r in runs]
    return {
        "runs": len(values),
        "mean_drop": round(mean, 3),
        "sd_drop": round(sd, 3),
        "mean_plus_2sd": round(mean + 2 * sd, 3),
        "worst_drop": round(max(values), 3),
        "learned_min": min(learned),
        "learned_mean": round(statistics.mean(learned), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("frontier", nargs="+", help="frontier JSON files")
    parser.add_argument("--label", required=True)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    runs = []
    for path in args.frontier:
        runs += drops(json.loads(Path(path).read_text()), args.label)
    result = {"label": args.label, "sources": args.frontier, "per_run": runs, **summary(runs)}
    for r in runs:
        print(
            f"seed {r['seed']} data {r['data_seed']}: drop {r['drop_points']:.2f} pts, "
            f"learned {r['new_skill_acc']:.3f}"
        )
    print(
        f"gate_threshold runs={result['runs']} mean={result['mean_drop']:.2f} "
        f"sd={result['sd_drop']:.2f} mean+2sd={result['mean_plus_2sd']:.2f} "
        f"worst={result['worst_drop']:.2f}"
    )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
