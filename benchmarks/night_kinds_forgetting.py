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

`--variants` compares recipe levers on the same nights, items and base answers, side by side:
`--kinds facts --variants "default;kl20:anchor_kl_weight=20"` runs a facts night per variant,
each a `ConsolidationConfig` changed by `key=value` pairs, and also scores what the night
learned (the suite's held-out phrasings of the trained items), so a lever that stops the
forgetting by stopping the learning shows as such. Last line per variant:
`night_kinds[NAME] drop_facts=X learned_facts=Y`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def parse_variants(text: str) -> dict[str, dict[str, object]]:
    """`"default;kl20:anchor_kl_weight=20,anchor_batch_size=8"` -> {name: config overrides}."""
    variants: dict[str, dict[str, object]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, pairs = part.partition(":")
        overrides: dict[str, object] = {}
        for pair in filter(None, pairs.split(",")):
            key, sep, value = pair.partition("=")
            if not sep:
                raise SystemExit(f"--variants: {pair!r} is not key=value")
            try:  # numbers, true/false, lists; anything else is a string (a pool's name)
                overrides[key.strip()] = json.loads(value)
            except json.JSONDecodeError:
                overrides[key.strip()] = value
        variants[name.strip()] = overrides
    return variants or {"default": {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demos", type=int, default=4)
    parser.add_argument("--retention", type=int, default=128)
    parser.add_argument("--kinds", default="facts,json,tools")
    parser.add_argument("--variants", default="default", help="NAME:key=value,...;NAME2:...")
    parser.add_argument("--seed", type=int, default=1, help="the suite's seed")
    parser.add_argument(
        "--out", default=str(ROOT / "bench-results" / "night_kinds_forgetting.json")
    )
    args = parser.parse_args()
    variants = parse_variants(args.variants)

    from agent_cl.config import Settings
    from agent_cl.consolidation.training_config import ConsolidationConfig
    from agent_cl.models.provision import provisioned_model_dir
    from agent_cl.night.gate import retention_items
    from agent_cl.night.plan import NightPlan

    for overrides in variants.values():  # a typo fails before any night trains
        dataclasses.replace(ConsolidationConfig(), **overrides)
    plain_consolidation = NightPlan.consolidation
    base_settings = Settings.load()
    model_dir = provisioned_model_dir(base_settings.model_dir, base_settings.models_dir)
    items = retention_items(args.retention)
    base_answers: list[str] = []
    results: dict[str, dict] = {}
    for variant, overrides in variants.items():
        NightPlan.consolidation = lambda plan, o=overrides: dataclasses.replace(
            plain_consolidation(plan), **o
        )
        for kind in args.kinds.split(","):
            key = kind if variant == "default" and len(variants) == 1 else f"{variant}/{kind}"
            results[key] = one_night(kind, args, base_settings, model_dir, items, base_answers)
            results[key]["overrides"] = overrides
    NightPlan.consolidation = plain_consolidation
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "results": results}, indent=2))
    for variant in variants:
        line = " ".join(
            f"drop_{k.split('/')[-1]}={v['drop_points']:.1f} "
            f"learned_{k.split('/')[-1]}={v['learned']:.3f}"
            for k, v in results.items()
            if len(variants) == 1 or k.startswith(f"{variant}/")
        )
        print(f"night_kinds[{variant}] {line}" if len(variants) > 1 else f"night_kinds {line}")


def one_night(kind, args, base_settings, model_dir, items, base_answers) -> dict:
    """One default night of `kind` in a fresh home; what it kept and what it learned."""
    from agent_cl.evals.suites import build_suite
    from agent_cl.memory.chroma import ChromaDemonstrationStore
    from agent_cl.night.night import Night

    convs = [item.conversation for item in items]
    home = Path(tempfile.mkdtemp(prefix=f"agent-cl-kind-{kind}-"))
    settings = dataclasses.replace(
        base_settings, home=home, model_dir=model_dir, tenant="kinds", gate_enabled=False
    )
    suite = build_suite(kind, args.demos, seed=args.seed)
    demos = [d.model_copy(update={"tenant": "kinds"}) for d in suite.demonstrations]
    held_out = suite.split("in")
    store = ChromaDemonstrationStore.open(settings.store_dir)
    store.add(demos)
    seen: dict[str, list[str]] = {}

    def check(candidate) -> dict:
        if not base_answers:
            base_answers.extend(candidate.generate(convs, max_new_tokens=40, adapter=False))
        seen["after"] = candidate.generate(convs, max_new_tokens=40)
        seen["learned"] = candidate.generate([i.conversation for i in held_out], max_new_tokens=40)
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
    learned = [i.is_correct(a) for i, a in zip(held_out, seen["learned"], strict=True)]
    result = {
        "demonstrations": len(demos),
        "steps": report.train.get("steps"),
        "train_seconds": report.train.get("seconds"),
        "night_seconds": seconds,
        "robust_base": sum(base_right) / len(items),
        "robust_after": sum(kept) / len(items),
        "drop_points": 100 * (sum(base_right) - sum(kept)) / len(items),
        "learned": sum(learned) / max(1, len(held_out)),
        "held_out": len(held_out),
        "flips": flips,
    }
    print(json.dumps({kind: {k: v for k, v in result.items() if k != "flips"}}), flush=True)
    for flip in flips[:6]:
        print("   ", json.dumps(flip), flush=True)
    return result


if __name__ == "__main__":
    main()
