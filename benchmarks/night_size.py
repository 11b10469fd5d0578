"""One night of 16, 32, 64 ... demonstrations: what it costs and what it learns.

Each size is one first night (`benchmarks/nights.py --nights 1`) on the embedded model with
the product's night: the default recipe, 8 steps per demonstration, the gate on the whole
retention set, `sleep_max_demos` as Settings has it (64: a larger day leaves the rest pending,
and the row says how many the night claimed). The sizes run one after another in one
invocation, on the same machine, so their seconds compare side by side; each row gives
seconds per demonstration and that ratio to the smallest size's.

    python benchmarks/night_size.py --sizes 16,32,64 --out docs/results/night_size.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def night_row(size: int, scratch: Path) -> dict:
    """One first night of `size` facts, measured by nights.py in its own process (a fresh
    process per size: no size inherits another's caches)."""
    out = scratch / f"n{size}.json"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "nights.py"), "--nights", "1",
           "--facts-per-night", str(size), "--out", str(out)]  # fmt: skip
    subprocess.run(cmd, check=True)
    data = json.loads(out.read_text())
    night, base = data["nights"][0], data["summary"]["base_retention"]
    claimed = night["demonstrations"]
    return {
        "size": size,
        "claimed": claimed,
        "status": night["status"],
        "gate_reason": night["gate_reason"],
        "steps": night["steps"],
        "night_seconds": night["sleep_seconds"],
        "train_seconds": night["train_seconds"],
        "seconds_per_step": night["train_seconds_per_step"],
        "night_seconds_per_claimed": night["sleep_seconds"] / claimed if claimed else None,
        # held-out paraphrases of all `size` facts, claimed or still pending
        "heldout_acc": night["night1_facts_acc"],
        "robust_drop_points": round(100 * (base["robust"] - night["retention"]["robust"]), 2),
        "full_drop_points": round(100 * (base["full"] - night["retention"]["full"]), 2),
        "peak_rss_mb": night["peak_rss_mb"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="16,32,64", help="comma-separated night sizes")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "night_size.json"))
    args = parser.parse_args()
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",")})
    except ValueError:
        parser.error(f"--sizes takes whole numbers separated by commas, got {args.sizes!r}")
    if not sizes or sizes[0] < 2:
        parser.error("every size must be at least 2 demonstrations")
    rows = []
    with tempfile.TemporaryDirectory(prefix="agent-cl-night-size-") as scratch:
        for size in sizes:
            rows.append(night_row(size, Path(scratch)))
            print(json.dumps(rows[-1]), flush=True)
    smallest = rows[0]["night_seconds_per_claimed"]
    for row in rows:
        per = row["night_seconds_per_claimed"]
        row["per_claimed_vs_smallest"] = round(per / smallest, 3) if per and smallest else None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"sizes": sizes, "rows": rows}, indent=2))
    for row in rows:
        print(
            f"n={row['size']:>4} claimed={row['claimed']:>3} {row['status']:<9} "
            f"{row['night_seconds']:>6.0f} s ({row['per_claimed_vs_smallest']}x per demo) "
            f"held-out {row['heldout_acc']:.3f} robust drop {row['robust_drop_points']} pts"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
