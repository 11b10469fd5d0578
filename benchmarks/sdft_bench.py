"""Our SDFT trainer vs TRL's experimental SDFTTrainer, side by side on the same data and model.

Both run the paper's objective as configured identically: on-policy samples from the student
(temperature 1, 32 new tokens), a frozen-base teacher with the demonstration in its prompt,
full-vocabulary reverse KL (TRL: distillation_mode="full_logits", distillation_alpha=1.0),
LoRA r=8 on all linear layers, lr 2e-3, batch 4, same number of steps, same torch threads.
Reported: seconds per example (wall time of training / examples seen) and held-out accuracy
without context after training.

    python benchmarks/sdft_bench.py --quick     # last line: sdft_time_ratio_vs_trl=<ours/TRL>
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _data(n: int):
    from agent_cl.evals.facts import build_facts

    facts = build_facts(n)
    demos = [f.demonstration() for f in facts]
    held_out = [(q, f) for f in facts for q in f.paraphrases]
    return demos, held_out


def _accuracy(model, tokenizer, held_out) -> float:
    from agent_cl.models.chat import generate_batch

    model.eval()
    outs = generate_batch(model, tokenizer, [[{"role": "user", "content": q}] for q, _ in held_out])
    return sum(f.is_correct(o) for (_, f), o in zip(held_out, outs, strict=True)) / len(held_out)


def run_ours(args, model_dir: Path) -> dict:
    from agent_cl.consolidation.trainer import ConsolidationTrainer, peak_rss_mb
    from agent_cl.consolidation.training_config import ConsolidationConfig

    demos, held_out = _data(args.facts)
    config = ConsolidationConfig(
        method="sdft",
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=2e-3,
        max_new_tokens=32,
        temperature=1.0,
        kl_reduction="mean",
        target_modules="all-linear",  # the LoRA TRL's side gets below
    )
    trainer = ConsolidationTrainer(model_dir, config, torch_threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        trainer.train(demos, Path(tmp) / "adapter")
        seconds = time.perf_counter() - t0
    return {
        "trainer": "agent-cl",
        "seconds": seconds,
        "seconds_per_example": seconds / (args.steps * args.batch_size),
        "held_out_acc": _accuracy(trainer.model, trainer.tokenizer, held_out),
        "peak_rss_mb": peak_rss_mb(),
    }


def run_trl(args, model_dir: Path) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl.experimental.sdft import SDFTConfig, SDFTTrainer

    from agent_cl.consolidation.trainer import peak_rss_mb
    from agent_cl.models.chat import DEFAULT_SYSTEM, load_causal_lm, load_tokenizer

    torch.set_num_threads(args.threads)
    demos, held_out = _data(args.facts)
    tokenizer = load_tokenizer(model_dir)
    tokenizer.padding_side = "left"
    model = load_causal_lm(model_dir)
    dataset = Dataset.from_list(
        [
            {
                "prompt": [
                    {"role": "system", "content": DEFAULT_SYSTEM},
                    {"role": "user", "content": d.query},
                ],
                "privileged_context": f"Context: {d.context}",
            }
            for d in demos
        ]
    )
    with tempfile.TemporaryDirectory() as tmp:
        config = SDFTConfig(
            output_dir=tmp,
            max_steps=args.steps,
            per_device_train_batch_size=args.batch_size,
            num_generations=1,
            learning_rate=2e-3,
            max_completion_length=32,
            temperature=1.0,
            top_k=0,
            distillation_mode="full_logits",
            distillation_alpha=1.0,
            teacher_model_kind="base",
            teacher_prompt_template="{privileged_context}\n\nQuestion: {prompt}",
            generation_kwargs={"use_cache": True},
            report_to=[],
            logging_steps=1,
            save_strategy="no",
            use_cpu=True,
            bf16=False,
            seed=0,
            dataloader_num_workers=0,
        )
        lora = LoraConfig(
            r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"
        )
        trainer = SDFTTrainer(
            model=model,
            args=config,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=lora,
        )
        t0 = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - t0
    return {
        "trainer": "trl.experimental.sdft.SDFTTrainer",
        "seconds": seconds,
        "seconds_per_example": seconds / (args.steps * args.batch_size),
        "held_out_acc": _accuracy(trainer.model, tokenizer, held_out),
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 facts, 6 steps")
    parser.add_argument("--facts", type=int, default=16)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "sdft_bench.json"))
    parser.add_argument("--which", choices=["ours", "trl"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.facts, args.steps = 8, 6

    from agent_cl.config import Settings
    from agent_cl.models.provision import provision_embedded_model

    model_dir = provision_embedded_model(Settings.load().models_dir).path
    if args.which:
        run = run_ours if args.which == "ours" else run_trl
        print(json.dumps(run(args, model_dir)))
        return

    results = {}
    for which in ("ours", "trl"):  # one process each: clean peak RSS, no shared threads
        cmd = [
            sys.executable,
            __file__,
            "--which",
            which,
            "--facts",
            str(args.facts),
            "--steps",
            str(args.steps),
            "--batch-size",
            str(args.batch_size),
            "--threads",
            str(args.threads),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        if proc.returncode != 0:
            raise SystemExit(f"{which} failed:\n{proc.stderr[-3000:]}")
        results[which] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(json.dumps(results[which]), flush=True)
    ratio = results["ours"]["seconds_per_example"] / results["trl"]["seconds_per_example"]
    summary = {
        "facts": args.facts,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "threads": args.threads,
        **results,
        "sdft_time_ratio_vs_trl": ratio,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    print(f"sdft_time_ratio_vs_trl={ratio:.3f}")


if __name__ == "__main__":
    main()
