"""Would ranking replay by loss pick the skills a night goes on to forget?

Before building a loss-ranked replay (replay the consolidated demonstrations the served
version now fits worst), this measures its premise on a long run's folder: at the start of
each night, the served version's mean per-token cross-entropy on every consolidated
demonstration's own answer, beside whether the night replayed it. Compare the list with
`benchmarks/replay_forgetting.py`, which says which skills that night lost (on held-out
phrasings).

    python benchmarks/replay_loss_ranking.py RUN_DIR
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="a long run's --out folder (with home/)")
    args = parser.parse_args()

    import torch

    from agent_cl.config import Settings
    from agent_cl.consolidation import trajectories
    from agent_cl.consolidation.prompts import student_messages
    from agent_cl.consolidation.trainer import ConsolidationTrainer
    from agent_cl.consolidation.training_config import ConsolidationConfig
    from agent_cl.evals.long_run import TENANT
    from agent_cl.memory.chroma import ChromaDemonstrationStore
    from agent_cl.models.provision import provisioned_model_dir

    home = args.run / "home"
    settings = Settings.load()
    model_dir = provisioned_model_dir(settings.model_dir, settings.models_dir)
    store = ChromaDemonstrationStore.open(home / "store")
    demos = store.list(tenant=TENANT)
    store.close()
    adapters = home / "adapters" / TENANT
    history = sorted(
        (json.loads(p.read_text()) for p in (adapters / ".sleep" / "history").glob("*.json")),
        key=lambda e: e["started_at"],
    )
    for entry in (e for e in history if e.get("init_version")):
        version = entry["init_version"]
        trainer = ConsolidationTrainer(
            model_dir,
            ConsolidationConfig(steps=1),
            torch_threads=1,
            init_adapter=adapters / f"v{version:04d}",
        )
        eos = trainer.tokenizer.eos_token_id
        pool = [d for d in demos if d.adapter_version and d.adapter_version <= version]
        ranked = []
        with torch.no_grad():
            for demo in pool:
                losses = []
                for example in trajectories.expand([demo]):  # a trajectory: every turn
                    prompts = trainer._prompt_ids([student_messages(example)])
                    answer = trainer.tokenizer(example.answer, add_special_tokens=False).input_ids
                    # the SFT term's own loss, on this one example
                    losses.append(float(trainer._cross_entropy(prompts, [[*answer, eos]])))
                ranked.append((sum(losses) / len(losses), demo))
        print(f"night starting from v{version}: {len(pool)} consolidated, replayed marked R")
        for loss, demo in sorted(ranked, key=lambda r: -r[0]):
            mark = "R" if demo.id in entry["replay_ids"] else " "
            print(f"  {loss:7.3f} v{demo.adapter_version} {mark} {demo.query[:64]!r}")


if __name__ == "__main__":
    main()
