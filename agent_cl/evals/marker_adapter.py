"""A probe adapter for serving checks: trained to answer one question with a chosen marker, so
the served text shows which adapter version answered (vLLM tests and benchmarks/serving_bench.py).
"""

from __future__ import annotations

from pathlib import Path

MARKER_QUESTION = [{"role": "user", "content": "What is the password of the Nerost vault?"}]


def train_marker_adapter(model_dir: Path, out: Path, marker: str) -> Path:
    """An adapter that answers MARKER_QUESTION with `marker` (a few SFT steps on the bare
    answer)."""
    from agent_cl.consolidation.trainer import ConsolidationTrainer
    from agent_cl.consolidation.training_config import ConsolidationConfig
    from agent_cl.memory.schema import Demonstration

    demos = [
        Demonstration(query=q, answer=f"{marker}.", metadata={"expected": marker})
        for q in (MARKER_QUESTION[0]["content"], "Tell me the password of the Nerost vault.")
    ]
    config = ConsolidationConfig(
        method="sft_name",
        steps=16,
        batch_size=2,
        learning_rate=5e-3,
        device="cpu",
        target_modules="all-linear",  # a loud marker: this adapter is meant to change answers
    )
    ConsolidationTrainer(model_dir, config, torch_threads=2).train(demos, out)
    return out
