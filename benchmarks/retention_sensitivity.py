"""How sharp is the retention set? Score every candidate item on the base model and after
random weight perturbations (noise of a fraction of each tensor's std, several seeds). An item
that flips under pure noise measures luck, not forgetting; one that survives every perturbation
flips only under real change. The per-item survival counts feed `build_retention_fixture.py
--robust`.

    python benchmarks/retention_sensitivity.py --seeds 0,1,2 --noise 0.01
    # writes bench-results/retention_sensitivity.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agent_cl.config import Settings
from agent_cl.models.chat import generate_batch, load_causal_lm, load_tokenizer, set_torch_threads
from agent_cl.models.provision import provision_embedded_model
from agent_cl.scoring.retention import candidate_pool, load_retention_set

ROOT = Path(__file__).resolve().parents[1]


def perturbed_correctness(lm, tok, items, *, noise: float, seeds: list[int]) -> list[list[bool]]:
    """Per noise seed, which items the perturbed base still answers correctly."""
    import torch  # here, not at the top: --help stays cheap

    convs = [[{"role": "user", "content": i.prompt}] for i in items]
    original = {name: p.detach().clone() for name, p in lm.named_parameters()}
    rows = []
    for seed in seeds:
        torch.manual_seed(seed)
        with torch.no_grad():
            for name, param in lm.named_parameters():
                param.copy_(original[name] + torch.randn_like(param) * param.std() * noise)
        outs = generate_batch(lm, tok, convs, max_new_tokens=32)
        rows.append([i.is_correct(o) for i, o in zip(items, outs, strict=True)])
    with torch.no_grad():
        for name, param in lm.named_parameters():
            param.copy_(original[name])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--noise", type=float, default=0.01, help="fraction of each tensor's std")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "retention_sensitivity.json"))
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]

    settings = Settings.load()
    set_torch_threads(settings.torch_threads)
    model_dir = provision_embedded_model(settings.models_dir).path
    tok, lm = load_tokenizer(model_dir), load_causal_lm(model_dir)
    pool = candidate_pool()
    convs = [[{"role": "user", "content": i.prompt}] for i in pool]
    outs = generate_batch(lm, tok, convs, max_new_tokens=32)
    base = [i.is_correct(o) for i, o in zip(pool, outs, strict=True)]
    rows = perturbed_correctness(lm, tok, pool, noise=args.noise, seeds=seeds)
    fixture_ids = {i.item_id for i in load_retention_set()}
    per_item = {
        item.item_id: {"base": ok, "survived": sum(row[k] for row in rows)}
        for k, (item, ok) in enumerate(zip(pool, base, strict=True))
    }
    in_fixture = [v for k, v in per_item.items() if k in fixture_ids]
    result = {
        "noise_std_fraction": args.noise,
        "seeds": seeds,
        "pool_size": len(pool),
        "base_correct": sum(base),
        "fixture_size": len(in_fixture),
        "fixture_score_per_seed": [
            sum(row[k] for k, i in enumerate(pool) if i.item_id in fixture_ids) / len(in_fixture)
            for row in rows
        ],
        "robust_items": sum(v["base"] and v["survived"] == len(seeds) for v in per_item.values()),
        "per_item": per_item,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print({k: v for k, v in result.items() if k != "per_item"})


if __name__ == "__main__":
    main()
