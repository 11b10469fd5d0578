"""Rebuild the frozen retention fixture: run the base model on the candidate pool, keep what it
answers correctly, tag it with the model's checksum.

    python benchmarks/build_retention_fixture.py   # about 2 minutes on 2 CPU cores
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from agent_cl.config import Settings
from agent_cl.evals.retention import FIXTURE_NAME, build_fixture
from agent_cl.models.chat import generate_batch, load_causal_lm, load_tokenizer, set_torch_threads
from agent_cl.models.provision import provision_embedded_model

OUT = Path(__file__).resolve().parents[1] / "agent_cl" / "evals" / "data" / FIXTURE_NAME


def main() -> None:
    settings = Settings.load()
    set_torch_threads(settings.torch_threads)
    model = provision_embedded_model(settings.models_dir)
    tokenizer, lm = load_tokenizer(model.path), load_causal_lm(model.path)
    payload = build_fixture(
        lambda convs: generate_batch(lm, tokenizer, convs, max_new_tokens=32),
        model.weights_sha256,
        OUT,
    )
    kinds = Counter(item["kind"] for item in payload["items"])
    print(f"kept {len(payload['items'])} of {payload['pool_size']}: {dict(kinds)} -> {OUT}")


if __name__ == "__main__":
    main()
