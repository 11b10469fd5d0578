"""How sharp is the retention set? Re-score the base under another batch layout and after a
random weight perturbation of 1% of each tensor's std: a set that moves under noise cannot
measure forgetting, one that moves only under real change can.

    python benchmarks/retention_sensitivity.py   # writes bench-results/retention_sensitivity.json
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from agent_cl.config import Settings
from agent_cl.evals.retention import load_retention_set, score
from agent_cl.models.chat import generate_batch, load_causal_lm, load_tokenizer, set_torch_threads
from agent_cl.models.provision import provision_embedded_model


def main() -> None:
    settings = Settings.load()
    set_torch_threads(settings.torch_threads)
    model_dir = provision_embedded_model(settings.models_dir).path
    tok, lm = load_tokenizer(model_dir), load_causal_lm(model_dir)
    items = load_retention_set()
    convs = [[{"role": "user", "content": i.prompt}] for i in items]
    result = {}
    for batch_size in (16, 7):
        outs = generate_batch(lm, tok, convs, max_new_tokens=32, batch_size=batch_size)
        result[f"base_batch_{batch_size}"] = score(items, outs)
    torch.manual_seed(0)
    with torch.no_grad():
        for param in lm.parameters():
            param.add_(torch.randn_like(param) * param.std() * 1e-2)
    outs = generate_batch(lm, tok, convs, max_new_tokens=32)
    result["perturbed_1pct_std"] = score(items, outs)
    out = Path("bench-results/retention_sensitivity.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(result)


if __name__ == "__main__":
    main()
