"""What the near anchor holds in place: the near set of a night, by question and by exchange.

`sft_kl_near` draws half of each anchor batch from the prompts "most like the night". This
prints, for nights of the varied facts (several data seeds), what those prompts are by kind,
side by side for `anchor_near_by="question"` (the night's questions, best likeness to any) and
`"exchange"` (question and answer, numbers alike, each demonstration in turn), using the
trainer's own code on the real embedded model (the base's answers decide which prompts are
answered with a number). Writes JSON.

    python benchmarks/anchor_near_sets.py --seeds 0,1,2,3,4,5 \\
        --out docs/results/anchor_near_sets.json
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from consolidation_frontier import model_dir, skill_suite  # noqa: E402

MODES = ("question", "exchange")


def kind_of(prompt: str, answer: str) -> str:
    """A coarse label for an anchor prompt, enough to see what a near set covers."""
    if re.search(r"\d", prompt):
        return "sums and numbers"
    if re.search(r"\d", answer):
        return "other, answered with a number"
    if prompt.startswith("What is the capital of"):
        return "capitals"
    if prompt.startswith(("What is the opposite of", "What is the plural", "What is the past")):
        return "word forms"
    if prompt.startswith(("Who ", "Where ", "When ", "Which ", "How many ", "What is the name")):
        return "real facts (who/where/when/which)"
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skill", default="facts-varied")
    parser.add_argument("--facts", type=int, default=16)
    parser.add_argument("--seeds", default="0,1,2,3,4,5")
    parser.add_argument("--out", default="docs/results/anchor_near_sets.json")
    args = parser.parse_args()

    from agent_cl.consolidation.trainer import ConsolidationTrainer
    from agent_cl.consolidation.training_config import ConsolidationConfig

    settings, path = model_dir()
    config = ConsolidationConfig(method="sft_kl_near")
    trainer = ConsolidationTrainer(path, config, torch_threads=settings.torch_threads)
    base_answers = trainer.tokenizer.batch_decode(
        trainer._base_answer_ids(), skip_special_tokens=True
    )
    kinds = [kind_of(p, a) for p, a in zip(trainer.anchor_prompts, base_answers, strict=True)]
    nights = []
    for seed in (int(s) for s in args.seeds.split(",")):
        demos, _, _ = skill_suite(args.skill, args.facts, seed)
        numeric = sum(bool(re.search(r"\d", d.answer)) for d in demos) / len(demos)
        night = {"data_seed": seed, "numeric_answer_share": numeric}
        for mode in MODES:
            trainer.config.anchor_near_by = mode
            near = trainer._nearest_anchors(list(demos))
            night[mode] = {
                "kinds": dict(Counter(kinds[i] for i in near).most_common()),
                "prompts": [trainer.anchor_prompts[i] for i in near],
            }
        nights.append(night)
        print(f"data seed {seed}: {numeric:.2f} of answers hold a number")
        for mode in MODES:
            print(f"  {mode:9s} {night[mode]['kinds']}")
    pool = dict(Counter(kinds).most_common())
    print(f"pool ({len(kinds)} prompts): {pool}")
    summary = {
        "skill": args.skill,
        "facts": args.facts,
        "pool": pool,
        "nights": nights,
        "sums_in_near_set": {
            mode: [n[mode]["kinds"].get("sums and numbers", 0) for n in nights] for mode in MODES
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=1))
    print(f"sums and numbers in the near set: {summary['sums_in_near_set']} -> {args.out}")


if __name__ == "__main__":
    main()
