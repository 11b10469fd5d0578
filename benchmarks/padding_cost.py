"""Does padding slow a night's training step? A long run's nights step at 7-9 s on 2 cores
against 4-6 s on nights of facts alone, and a batch mixes short facts with tool trajectories
that carry the tools prompt, every row padded to the longest. This measures the SFT term's
forward and backward on the same random batches of 4 real demonstrations: padded (the
trainer's layout before 2026-11-30), packed end to end in one row (its layout since), and one
row at a time (gradients accumulated); the same loss each way, side by side on the embedded
model with the product's LoRA (r 8 on the MLP).

    python benchmarks/padding_cost.py --store DIR/home/store --tenant long-run \\
        --out docs/results/padding_cost.json

DIR is a finished `agent-cl eval --experiment long-run` folder (its home holds the store).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, required=True, help="a Chroma store directory")
    parser.add_argument("--tenant", default="long-run")
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if not (args.store / "chroma.sqlite3").is_file():
        parser.error(f"{args.store} is not a Chroma store (no chroma.sqlite3)")

    import chromadb
    import torch
    from peft import LoraConfig, get_peft_model

    from agent_cl.config import Settings
    from agent_cl.consolidation.losses import token_cross_entropy
    from agent_cl.consolidation.prompts import student_messages
    from agent_cl.consolidation.sequences import completion_logits, prompt_ids
    from agent_cl.memory.chroma import ChromaDemonstrationStore
    from agent_cl.models.chat import load_causal_lm, load_tokenizer, set_torch_threads
    from agent_cl.models.provision import resolve_model_dir

    settings = Settings.load()
    set_torch_threads(settings.torch_threads)
    model_dir = resolve_model_dir(settings.model_dir, settings.models_dir)
    tokenizer = load_tokenizer(model_dir)
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["gate_proj", "up_proj", "down_proj"])
    model = get_peft_model(load_causal_lm(model_dir), lora)
    model.train()
    store = ChromaDemonstrationStore(chromadb.PersistentClient(path=str(args.store)))
    demos = store.list(tenant=args.tenant)
    if len(demos) < 4:
        parser.error(f"{args.store} holds {len(demos)} demonstrations of {args.tenant!r}; need 4")
    prompts = prompt_ids(tokenizer, [student_messages(d) for d in demos])
    eos = tokenizer.eos_token_id
    answers = [[*tokenizer(d.answer, add_special_tokens=False).input_ids, eos] for d in demos]
    device = torch.device("cpu")

    def summed_loss(rows: list[int], total: int, packed: bool) -> torch.Tensor:
        logits, mask = completion_logits(
            model,
            tokenizer,
            [prompts[i] for i in rows],
            [answers[i] for i in rows],
            device,
            packed=packed,
        )
        targets = torch.full(mask.shape, -100, dtype=torch.long)
        for j, i in enumerate(rows):
            targets[j, : len(answers[i])] = torch.tensor(answers[i])
        return (token_cross_entropy(logits, targets) * mask).sum() / total

    def step(rows: list[int], layout: str) -> tuple[float, list[torch.Tensor]]:
        total = sum(len(answers[i]) for i in rows)
        start = time.perf_counter()
        for part in [[i] for i in rows] if layout == "one row at a time" else [rows]:
            summed_loss(part, total, packed=layout == "packed").backward()
        seconds = time.perf_counter() - start
        grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
        model.zero_grad()
        return seconds, grads

    lengths = [len(p) + len(a) for p, a in zip(prompts, answers, strict=True)]
    rng = random.Random(0)
    batches = [rng.sample(range(len(demos)), 4) for _ in range(args.batches)]
    layouts = ("padded", "packed", "one row at a time")
    step(batches[0], "padded")  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in layouts}
    worst = dict.fromkeys(layouts[1:], 0.0)  # against the padded layout's gradients
    for rows in batches:
        reference = None
        for name in layouts:
            took, grads = step(rows, name)
            seconds[name].append(took)
            if reference is None:
                reference = grads
                continue
            for x, y in zip(reference, grads, strict=True):
                gap = float((x - y).abs().max() / (x.abs().max() + 1e-12))
                worst[name] = max(worst[name], gap)
    real = sum(sum(lengths[i] for i in rows) for rows in batches)
    filled = sum(4 * max(lengths[i] for i in rows) for rows in batches)
    result = {
        "demonstrations": len(demos),
        "tokens_per_row": {
            "min": min(lengths),
            "mean": statistics.mean(lengths),
            "max": max(lengths),
        },
        "padding_efficiency": real / filled,
        "seconds": {name: statistics.median(v) for name, v in seconds.items()},
        "ratio_over_padded": {
            name: statistics.median(seconds[name]) / statistics.median(seconds["padded"])
            for name in layouts[1:]
        },
        "max_relative_gradient_difference": worst,
        "torch_threads": torch.get_num_threads(),
        "batches": args.batches,
    }
    print(json.dumps(result, indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
