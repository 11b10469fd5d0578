"""Train a small SFT adapter; run alone or under `accelerate launch --num_processes 2`.

python -m tests.ddp_worker MODEL_DIR OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

from agent_cl.consolidation.trainer import ConsolidationTrainer
from agent_cl.consolidation.training_config import ConsolidationConfig
from agent_cl.memory.schema import Demonstration

DEMOS = [
    Demonstration(query=f"Who leads lab {i}?", answer=f"Ana Vel{i} leads lab {i}.")
    for i in range(6)
]
# batch 5 over 2 processes: uneven slices (3 + 2) exercise the loss scaling
CONFIG = ConsolidationConfig(
    method="sft_replay", steps=3, batch_size=5, anchor_batch_size=3, learning_rate=1e-2
)


def main() -> None:
    model_dir, out = Path(sys.argv[1]), Path(sys.argv[2])
    trainer = ConsolidationTrainer(model_dir, CONFIG, torch_threads=1)
    trainer.train(DEMOS, out)


if __name__ == "__main__":
    main()
