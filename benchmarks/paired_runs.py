"""Two recipes on the same (seed, data seed) pairs of a frontier file, compared in pairs.

Each frontier run keeps which robust retention items it failed, so two labels run on the same
pairs give per-item hits for the same items: the paired bootstrap of `agent_cl.evals.intervals`
(over seeds, then items) gives the retention difference with a 95% interval, beside the
per-pair drops and held-out accuracy. Writes JSON.

    python benchmarks/paired_runs.py docs/results/frontier_varied.json \\
        --a "sft_kl_near + exchange anchor" --b "sft_kl_near (default)" \\
        --out docs/results/anchor_exchange.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def robust_hits(run: dict, items: list[str]) -> list[bool]:
    """The run's hits on the robust items, in `items` order (failures are recorded by id)."""
    failed = set(run["retention_failures"])
    return [item not in failed for item in items]


def compare(frontier: dict, a: str, b: str) -> dict:
    from agent_cl.evals.intervals import paired

    runs = {(r["label"], r["seed"], r.get("data_seed", 0)): r for r in frontier["runs"]}
    pairs = sorted({(s, d) for (label, s, d) in runs if label == a})
    pairs = [p for p in pairs if (b, *p) in runs]
    if len(pairs) < 2:
        raise SystemExit(f"{a!r} and {b!r} share {len(pairs)} (seed, data seed) pairs; need 2")
    n_items = frontier["baseline"]["n_retention"]
    failed_anywhere = sorted({i for r in runs.values() for i in r["retention_failures"]})
    items = failed_anywhere + [f"_held_{k}" for k in range(n_items - len(failed_anywhere))]
    base = frontier["baseline"]["retention"]
    per_pair = []
    for seed, data_seed in pairs:
        ra, rb = runs[(a, seed, data_seed)], runs[(b, seed, data_seed)]
        per_pair.append(
            {
                "seed": seed,
                "data_seed": data_seed,
                "drop_points": [round((base - r["retention"]) * 100, 2) for r in (ra, rb)],
                "learned": [r["new_skill_acc"] for r in (ra, rb)],
                "arithmetic": [r["retention_kinds"].get("arithmetic") for r in (ra, rb)],
            }
        )
    retention = paired(
        [robust_hits(runs[(a, *p)], items) for p in pairs],
        [robust_hits(runs[(b, *p)], items) for p in pairs],
    )
    return {
        "a": a,
        "b": b,
        "pairs": len(pairs),
        "robust_items": n_items,
        "retention_a_minus_b_points": [
            round(100 * v, 2) for v in (retention.mean, retention.low, retention.high)
        ],
        "learned_a_minus_b": round(
            statistics.mean(p["learned"][0] - p["learned"][1] for p in per_pair), 4
        ),
        "learned_lower_in": sum(p["learned"][0] < p["learned"][1] for p in per_pair),
        "per_pair": per_pair,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("frontier")
    parser.add_argument("--a", required=True, help="the label compared")
    parser.add_argument("--b", required=True, help="the label it is compared with")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    result = compare(json.loads(Path(args.frontier).read_text()), args.a, args.b)
    for p in result["per_pair"]:
        print(
            f"seed {p['seed']} data {p['data_seed']}: drop {p['drop_points'][0]:.2f} vs "
            f"{p['drop_points'][1]:.2f} pts, learned {p['learned'][0]:.3f} vs {p['learned'][1]:.3f}"
        )
    mean, low, high = result["retention_a_minus_b_points"]
    print(
        f"paired_runs pairs={result['pairs']} retention_diff={mean:+.2f} [{low:+.2f}, {high:+.2f}]"
        f" pts learned_diff={result['learned_a_minus_b']:+.3f}"
    )
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
