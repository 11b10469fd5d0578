"""Rebuild the frozen retention fixture and measure its noise floor.

Runs the base model on the candidate pool in fp32 (the full set: what it answers correctly),
in bf16, and under K seeded 1%-of-std weight perturbations; items correct under every check are
the robust set the gate decides on. Then it scores both sets under *other* perturbation seeds
(held out from the selection) and records their spread: the threshold below which a retention
drop cannot be told from noise.

    python benchmarks/build_retention_fixture.py                   # K=5, 5 held-out seeds
    python benchmarks/build_retention_fixture.py --perturbations 3 --holdout 2 --out /tmp/f.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from pathlib import Path

from agent_cl.config import Settings
from agent_cl.models.chat import generate_batch, load_causal_lm, load_tokenizer, set_torch_threads
from agent_cl.models.provision import provision_embedded_model
from agent_cl.scoring.retention import (
    FIXTURE_NAME,
    RetentionItem,
    candidate_pool,
    freeze_fixture,
)
from agent_cl.scoring.robustness import perturbed_weights

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "agent_cl" / "scoring" / "data" / FIXTURE_NAME
MAX_NEW_TOKENS = 40  # the gate's GateConfig.max_new_tokens: items are judged as the gate sees them


def correctness(lm, tok, items: list[RetentionItem], batch_size: int) -> list[bool]:
    convs = [[{"role": "user", "content": i.prompt}] for i in items]
    outs = generate_batch(lm, tok, convs, max_new_tokens=MAX_NEW_TOKENS, batch_size=batch_size)
    return [i.is_correct(o) for i, o in zip(items, outs, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--perturbations", type=int, default=5, help="K seeds used to select")
    parser.add_argument("--holdout", type=int, default=5, help="seeds used to measure noise")
    parser.add_argument("--noise", type=float, default=0.01, help="fraction of each tensor's std")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()

    settings = Settings.load()
    set_torch_threads(settings.torch_threads)
    model = provision_embedded_model(settings.models_dir)
    tok = load_tokenizer(model.path)
    pool = candidate_pool()
    t0 = time.perf_counter()
    lm = load_causal_lm(model.path, dtype="bfloat16")
    checks = {"bf16": correctness(lm, tok, pool, args.batch_size)}
    lm = load_causal_lm(model.path)
    checks["fp32"] = correctness(lm, tok, pool, args.batch_size)
    print(f"fp32 {sum(checks['fp32'])}/{len(pool)} ({time.perf_counter() - t0:.0f} s)", flush=True)
    for seed in range(args.perturbations):
        with perturbed_weights(lm, noise=args.noise, seed=seed):
            checks[f"noise{args.noise}-seed{seed}"] = correctness(lm, tok, pool, args.batch_size)
        print(f"perturbation {seed}: {sum(checks[f'noise{args.noise}-seed{seed}'])}", flush=True)
    payload = freeze_fixture(pool, checks, model_sha256=model.weights_sha256)
    full = [
        RetentionItem(d["item_id"], d["kind"], d["prompt"], tuple(d["answers"]))
        for d in payload["items"]
    ]
    robust_ids = {d["item_id"] for d in payload["items"] if d["robust"]}
    robust = [i for i in full if i.item_id in robust_ids]
    floor: dict[str, list[float]] = {"full": [], "robust": []}
    for seed in range(1000, 1000 + args.holdout):
        with perturbed_weights(lm, noise=args.noise, seed=seed):
            ok = dict(
                zip(
                    (i.item_id for i in full),
                    correctness(lm, tok, full, args.batch_size),
                    strict=True,
                )
            )
        floor["full"].append(sum(ok.values()) / len(full))
        floor["robust"].append(sum(ok[i.item_id] for i in robust) / len(robust))
        print(
            f"held-out seed {seed}: full {floor['full'][-1]:.3f} robust {floor['robust'][-1]:.3f}",
            flush=True,
        )
    payload["notes"] = {
        "noise_std_fraction": args.noise,
        "max_new_tokens": MAX_NEW_TOKENS,
        "selection_seeds": list(range(args.perturbations)),
        "holdout_seeds": list(range(1000, 1000 + args.holdout)),
        "holdout_scores": floor,
        "holdout_mean": {k: statistics.mean(v) for k, v in floor.items() if v},
        "holdout_min": {k: min(v) for k, v in floor.items() if v},
        "per_check_correct": {k: sum(v) for k, v in checks.items()},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1))
    print(f"full {len(full)} {dict(Counter(i.kind for i in full))}")
    print(f"robust {len(robust)} {payload['kinds_robust']} -> {out}")
    print(json.dumps(payload["notes"], indent=1))


if __name__ == "__main__":
    main()
