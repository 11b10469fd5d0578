"""Seconds per training step of the default recipe on the embedded model, measured for the
agent_cl found first on sys.path: run it from two checkouts in turn to compare a refactor with
the commit before it (same data, same steps, same threads).

  PYTHONPATH=/path/to/checkout python benchmarks/step_time_ab.py --steps 16 --out result.json
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--facts", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("bench-results/step_time_ab.json"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import tempfile

    import agent_cl
    from agent_cl.config import Settings
    from agent_cl.consolidation import ConsolidationConfig
    from agent_cl.consolidation.trainer import ConsolidationTrainer
    from agent_cl.evals.facts import build_facts
    from agent_cl.models.provision import resolve_model_dir

    settings = Settings.load()
    model_dir = resolve_model_dir(settings.model_dir, settings.models_dir)
    demos = [f.demonstration() for f in build_facts(args.facts, seed=0)]
    config = ConsolidationConfig(steps=args.steps, seed=0, device="cpu")
    trainer = ConsolidationTrainer(model_dir, config, torch_threads=2)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        result = trainer.train(demos, Path(out) / "adapter")
    record = {
        "agent_cl": str(Path(agent_cl.__file__).parent),
        "steps": result.steps,
        "seconds_per_step": result.seconds_per_step,
        "wall_seconds": time.perf_counter() - started,
        "final_loss": result.final_loss,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2))
    print(json.dumps(record))


if __name__ == "__main__":
    main()
