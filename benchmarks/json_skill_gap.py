"""Measure the JSON skill's context gap on the base model: zero-shot vs one worked example.

python benchmarks/json_skill_gap.py    # writes bench-results/json_gap.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agent_cl.config import Settings
from agent_cl.evals.json_skill import EXAMPLE, build_json_tasks
from agent_cl.models.chat import generate_batch, load_causal_lm, load_tokenizer, set_torch_threads
from agent_cl.models.provision import provision_embedded_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.parse_args()
    settings = Settings.load()
    set_torch_threads(settings.torch_threads)
    model_dir = provision_embedded_model(settings.models_dir).path
    tok, lm = load_tokenizer(model_dir), load_causal_lm(model_dir)
    tasks = build_json_tasks(60)[30:]
    example = [
        {"role": "user", "content": EXAMPLE.question},
        {"role": "assistant", "content": EXAMPLE.answer},
    ]
    zero = generate_batch(lm, tok, [[{"role": "user", "content": t.question}] for t in tasks])
    one = generate_batch(
        lm, tok, [[*example, {"role": "user", "content": t.question}] for t in tasks]
    )
    result = {
        "tasks": len(tasks),
        "zero_shot_correct": sum(t.is_correct(o) for t, o in zip(tasks, zero, strict=True)),
        "one_example_turn_correct": sum(t.is_correct(o) for t, o in zip(tasks, one, strict=True)),
    }
    out = Path("bench-results/json_gap.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(result)


if __name__ == "__main__":
    main()
