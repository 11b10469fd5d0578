"""Does filling generation batches shortest prompt first save a morning's time?

A morning (and a gate) asks questions of mixed length: facts of about 33 tokens beside tool
questions of about 135, under the tools prompt. Every batch is padded to its longest prompt.
This answers the same questions of a quick long run's first four nights twice on the embedded
model, greedy, in the order given and shortest first, side by side, and counts the answers
that agree.

    python benchmarks/generation_order.py --out docs/results/generation_order.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--questions", type=int, default=32)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.questions < 2:
        parser.error("--questions must be >= 2")

    import torch

    from agent_cl.config import Settings
    from agent_cl.evals.long_run_plan import Curriculum, LongRunPlan
    from agent_cl.models.chat import generate_ids, load_causal_lm, load_tokenizer, render_prompt
    from agent_cl.models.provision import resolve_model_dir

    settings = Settings.load()
    torch.set_num_threads(settings.torch_threads)
    model_dir = resolve_model_dir(settings.model_dir, settings.models_dir)
    tokenizer, model = load_tokenizer(model_dir), load_causal_lm(model_dir).eval()
    curriculum = Curriculum.build(LongRunPlan.quick(nights=4))
    convs = [q.conversation for n in range(1, 5) for q in curriculum.questions(n)]
    texts = [render_prompt(tokenizer, c) for c in convs[: args.questions]]

    def answer(order: list[int]) -> tuple[float, dict[int, str]]:
        """Batches of 16 in `order` (generate_ids, no reordering of its own)."""
        start, out = time.perf_counter(), {}
        for first in range(0, len(order), 16):
            chunk = order[first : first + 16]
            ids = generate_ids(model, tokenizer, [texts[i] for i in chunk], max_new_tokens=40)
            answers = tokenizer.batch_decode(ids, skip_special_tokens=True)
            out.update(zip(chunk, answers, strict=True))
        return time.perf_counter() - start, out

    given = list(range(len(texts)))
    shortest_first = sorted(given, key=lambda i: len(texts[i]))
    given_s, given_answers = answer(given)
    sorted_s, sorted_answers = answer(shortest_first)
    lengths = [len(tokenizer(t, add_special_tokens=False).input_ids) for t in texts]
    result = {
        "questions": len(texts),
        "prompt_tokens": {"min": min(lengths), "max": max(lengths)},
        "given_order_s": given_s,
        "shortest_first_s": sorted_s,
        "ratio_shortest_first_over_given": sorted_s / given_s,
        "same_answers": sum(given_answers[i] == sorted_answers[i] for i in given),
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
