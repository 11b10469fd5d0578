"""Which kind of demonstration makes a default night forget? One night per kind, same recipe.

The quick long run (docs/results/long_run/quick) saw mixed nights (facts, JSON, tools) learn
their trained questions (0.0 -> 0.8) yet drop robust retention 5.5 and 10.9 points against the
base, with KL from base only 0.005, where facts-only nights of the demo drop about 2. Here each
kind gets its own night of N demonstrations (the form the day path logs them in: a fact with
its note, a JSON answer, a tool trajectory under the tools prompt) with the Settings defaults,
and the candidate answers a seeded sample of the robust retention set beside the base: which
items flip, per kind of retention item, and what the candidate said instead.

    python benchmarks/night_kinds_forgetting.py --demos 4 --retention 128   # ~25 min, 2 cores

Writes bench-results/night_kinds_forgetting.json; last line
`night_kinds drop_facts=X drop_json=Y drop_tools=Z` (robust retention points under the base).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demos", type=int, default=4)
    parser.add_argument("--retention", type=int, default=128)
    parser.add_argument("--kinds", default="facts,json,tools")
    parser.add_argument(
        "--out", default=str(ROOT / "bench-results" / "night_kinds_forgetting.json")
    )
    args = parser.parse_args()

    from agent_cl.config import Settings
    from agent_cl.evals.suites import build_suite
    from agent_cl.memory.chroma import ChromaDemonstrationStore
    from agent_cl.models.provision import provisioned_model_dir
    from agent_cl.night.gate import retention_items
    from agent_cl.night.night import Night

    base_settings = Settings.load()
    model_dir = provisioned_model_dir(base_settings.model_dir, base_settings.models_dir)
    items = retention_items(args.retention)
    convs = [item.conversation for item in items]
    base_answers: list[str] = []
    results: dict[str, dict] = {}
    for kind in args.kinds.split(","):
        home = Path(tempfile.mkdtemp(prefix=f"agent-cl-kind-{kind}-"))
        settings = dataclasses.replace(
            base_settings, home=home, model_dir=model_dir, tenant="kinds", gate_enabled=False
        )
        demos = [
            d.model_copy(update={"tenant": "kinds"})
            for d in build_suite(kind, args.demos, seed=1).demonstrations
        ]
        store = ChromaDemonstrationStore.open(settings.store_dir)
        store.add(demos)
        seen: dict[str, list[str]] = {}

        def check(candidate, seen=seen) -> dict:
            if not base_answers:
                base_answers.extend(candidate.generate(convs, max_new_tokens=40, adapter=False))
            seen["after"] = candidate.generate(convs, max_new_tokens=40)
            return {}

        started = time.perf_counter()
        report = Night(settings, store).job("kinds", check=check).run()
        store.close()
        seconds = time.perf_counter() - started
        flips = []
        for item, before, after in zip(items, base_answers, seen["after"], strict=True):
            if item.is_correct(before) and not item.is_correct(after):
                flips.append({"kind": item.kind, "prompt": item.conversation[-1]["content"][:120],
                              "base": before[:80], "after": after[:80]})  # fmt: skip
        kept = [i.is_correct(a) for i, a in zip(items, seen["after"], strict=True)]
        base_right = [i.is_correct(a) for i, a in zip(items, base_answers, strict=True)]
        results[kind] = {
            "demonstrations": len(demos),
            "steps": report.train.get("steps"),
            "train_seconds": report.train.get("seconds"),
            "night_seconds": seconds,
            "robust_base": sum(base_right) / len(items),
            "robust_after": sum(kept) / len(items),
            "drop_points": 100 * (sum(base_right) - sum(kept)) / len(items),
            "flips": flips,
        }
        print(json.dumps({kind: {k: v for k, v in results[kind].items() if k != "flips"}}),
              flush=True)  # fmt: skip
        for flip in flips[:6]:
            print("   ", json.dumps(flip), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    line = " ".join(f"drop_{k}={v['drop_points']:.1f}" for k, v in results.items())
    print(f"night_kinds {line}")


if __name__ == "__main__":
    main()
