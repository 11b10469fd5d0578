"""Rescore frontier runs against the current retention fixture without rerunning them.

Runs made with `--pool` keep per-item results on the whole candidate pool; this recomputes
robust and full retention (and per kind) from them, e.g. for GPU sweeps made before the fixture
was frozen on CPU. Prints a table sorted by distance to the bar and writes the merged JSON.

    python benchmarks/rescore_frontier.py bench-results/gpu/stage1*.json --out merged.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from agent_cl.scoring.retention import load_retention_set


def rescore(run: dict, full, robust) -> dict:
    pool = run["pool_correct"]
    kinds: dict[str, list[bool]] = defaultdict(list)
    for item in robust:
        kinds[item.kind].append(pool[item.item_id])
    return {
        **{k: v for k, v in run.items() if k != "pool_correct"},
        "retention": sum(pool[i.item_id] for i in robust) / len(robust),
        "retention_full": sum(pool[i.item_id] for i in full) / len(full),
        "retention_kinds": {k: sum(v) / len(v) for k, v in sorted(kinds.items())},
        "n_retention": len(robust),
        "n_retention_full": len(full),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    full, robust = load_retention_set(subset="full"), load_retention_set(subset="robust")
    baseline, runs = None, []
    for path in args.inputs:
        data = json.loads(path.read_text())
        if baseline is None and "pool_correct" in data.get("baseline", {}):
            baseline = {**data["baseline"], **rescore(data["baseline"], full, robust)}
        runs += [rescore(r, full, robust) | {"source": path.name} for r in data["runs"]]
    groups: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        groups[run["label"]].append(run)
    rows = []
    for label, group in groups.items():
        rows.append(
            {
                "label": label,
                "seeds": len(group),
                **{
                    k: statistics.mean(r[k] for r in group)
                    for k in (
                        "new_skill_acc",
                        "retention",
                        "retention_full",
                        "kl_from_base",
                        "leaks",
                        "seconds_per_step",
                    )
                },
                "new_min": min(r["new_skill_acc"] for r in group),
                "retention_min": min(r["retention"] for r in group),
            }
        )
    base = baseline["retention"] if baseline else 1.0
    rows.sort(
        key=lambda r: -min((r["new_min"] - 0.75) / 0.1, (r["retention_min"] - base + 0.03) / 0.02)
    )
    if baseline:
        print(
            f"baseline robust {baseline['retention']:.3f} full {baseline['retention_full']:.3f}"
            f" ({baseline['n_retention']} / {baseline['n_retention_full']} items)"
        )
    print(f"{'label':34s} seeds  new   robust  full   kl     leaks  s/step")
    for r in rows:
        print(
            f"{r['label'][:34]:34s} {r['seeds']:3d}  {r['new_skill_acc']:.3f} {r['retention']:.3f}"
            f"  {r['retention_full']:.3f}  {r['kl_from_base']:.3f}  {r['leaks']:5.1f}  "
            f"{r['seconds_per_step']:.2f}"
        )
    if args.out:
        args.out.write_text(
            json.dumps({"baseline": baseline, "runs": runs, "table": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
