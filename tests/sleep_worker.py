"""One sleep job in its own process, for the crash-safety tests.

    python -m tests.sleep_worker HOME MODEL_DIR
Seeds the tenant's demonstrations once (content-addressed, so reruns add nothing), prints the
state it finds as one JSON line ("before"), runs the job (AGENT_CL_FAULT may SIGKILL it) and
prints the report and the state after it. The "served model" is a real LocalBackend that loads
the registry's current version at start, as a restarted server would.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from agent_cl.adapters.registry import AdapterRegistry
from agent_cl.adapters.validation import validate_adapter_dir
from agent_cl.config import Settings
from agent_cl.consolidation.training_config import ConsolidationConfig
from agent_cl.memory.chroma import ChromaDemonstrationStore
from agent_cl.memory.schema import Demonstration
from agent_cl.night.gate import GateConfig
from agent_cl.night.night import Night
from agent_cl.serving.local_backend import LocalBackend
from tests.conftest import HashEmbedder

TENANT = "t"
STEPS, CHECKPOINT_EVERY = 4, 2


def seed_demonstrations() -> list[Demonstration]:
    return [
        Demonstration(
            query=f"Who leads lab {i}?",
            answer=f"Ana Vel{i} leads it.",
            tenant=TENANT,
            metadata={"expected": f"Ana Vel{i}"},
        )
        for i in range(3)
    ]


def state(store, registry: AdapterRegistry, backend: LocalBackend) -> dict:
    versions = registry.versions()
    for v in versions:
        validate_adapter_dir(v.path)  # every visible version is complete
    current = registry.current()
    return {
        "statuses": {d.id: str(d.status) for d in store.list(tenant=TENANT)},
        "versions": {str(v.version): v.manifest.get("demonstration_ids", []) for v in versions},
        "current": current.version if current else None,
        "served": backend.adapter_version,
        "hidden": sorted(p.name for p in registry.root.glob(".publish-*")),
    }


def main() -> None:
    home, model_dir = Path(sys.argv[1]), Path(sys.argv[2])
    settings = Settings(
        home=home,
        model_dir=model_dir,
        torch_threads=1,
        sleep_method="sft",
        sleep_steps=STEPS,
        sleep_checkpoint_every=CHECKPOINT_EVERY,
    )
    store = ChromaDemonstrationStore.open(settings.store_dir, embedder=HashEmbedder())
    store.add(seed_demonstrations())
    night = Night(settings, store)
    registry = night.registry(TENANT)
    backend = LocalBackend(model_dir, torch_threads=1)
    current = registry.current()
    if current is not None:
        backend.swap(current.version, current.path)
    print(json.dumps({"before": state(store, registry, backend)}), flush=True)
    job = night.job(
        TENANT,
        config=ConsolidationConfig(method="sft", steps=STEPS, batch_size=2),
        gate=GateConfig(
            min_new_skill_gain=-1.0,
            max_retention_drop=1.0,
            max_drop_from_base=None,
            retention_items=4,
            max_kl_from_base=None,
        ),
        on_publish=lambda v: backend.swap(v.version, v.path),
    )
    report = job.run()
    print(json.dumps({"report": report.to_dict()}, default=str), flush=True)
    print(json.dumps({"after": state(store, registry, backend)}), flush=True)


if __name__ == "__main__":
    main()
