"""Long runs side by side: which lever keeps what earlier nights learned.

Each long run (`agent-cl eval --experiment long-run`) is one setting of the levers (recipe,
replay, anchor); on the same plan and seed, its nights train the same first demonstrations,
so the runs differ only by the lever. This prints, per run: nights published, the robust
drop against the base after each night, the first night's skills on every later morning, the
minimum any night's skills keep after the last night, facts after the last night, and night
time; and writes them as JSON (the long-run README's frontier table quotes it).

    python benchmarks/long_run_levers.py near=docs/results/long_run/quick_near/results.json \\
        near+replay4=docs/results/long_run/quick_replay4/results.json \\
        --out docs/results/long_run/levers.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agent_cl.evals.long_run import summarise


def lever_row(results: dict) -> dict:
    """What one long run shows about keeping skills, from its results.json."""
    if not {"nights", "mornings"} <= results.keys() or not results["mornings"]:
        raise SystemExit("not a long-run results.json with a morning (no nights, mornings)")
    # a run still going (or stopped between nights) has no summary yet: read it the same way
    summary = results.get("summary") or summarise(results)
    nights = results["nights"]
    mornings = results["mornings"]
    order = sorted(mornings, key=int)
    last = mornings[order[-1]]
    first_night = [
        round(mornings[m]["skills"]["by_night"].get("1", {}).get("acc", float("nan")), 3)
        for m in order
    ]
    drops = [
        round((mornings[m]["base"]["robust"] - mornings[m]["retention"]["robust"]) * 100, 1)
        for m in order
    ]
    return {
        "plan": results["plan"],
        "statuses": [nights[n]["status"] for n in sorted(nights, key=int)],
        "published": sum(nights[n]["status"] == "published" for n in nights),
        "replayed": [nights[n].get("replayed", 0) for n in sorted(nights, key=int)],
        "robust_drop_vs_base_pts": drops,
        "night1_skills_by_morning": first_night,
        "finished": "summary" in results,
        "skills_kept_min": summary["skills_kept_min"],
        "skills_kept_mean": summary["skills_kept_mean"],
        "facts_after_last": round(last["skills"]["by_kind"].get("facts", {}).get("acc", 0.0), 3),
        "night_seconds": [round(nights[n]["seconds"]) for n in sorted(nights, key=int)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="label=path/to/results.json")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    table = {}
    for spec in args.runs:
        label, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"expected label=path, got {spec!r}")
        table[label] = lever_row(json.loads(Path(path).read_text()))
    print(
        "| run | published | drop vs base (pts) | night 1 skills by morning "
        "| kept min | facts after last | night s |"
    )
    print("|---|---|---|---|---|---|---|")
    for label, row in table.items():
        print(
            f"| {label} | {row['published']}/{len(row['statuses'])} "
            f"| {' / '.join(f'{d:.1f}' for d in row['robust_drop_vs_base_pts'])} "
            f"| {' → '.join(f'{a:.2f}' for a in row['night1_skills_by_morning'])} "
            f"| {row['skills_kept_min']:.2f} | {row['facts_after_last']:.2f} "
            f"| {min(row['night_seconds'])}-{max(row['night_seconds'])} |"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(table, indent=1) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
