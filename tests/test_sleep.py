from __future__ import annotations

import json

import pytest

from agent_cl.consolidation.config import ConsolidationConfig
from agent_cl.consolidation.sleep import run_sleep
from agent_cl.memory.inmemory import InMemoryDemonstrationStore
from agent_cl.memory.schema import Demonstration, DemoStatus
from agent_cl.serving.local_backend import LocalBackend
from agent_cl.serving.registry import AdapterRegistry

CONFIG = ConsolidationConfig(method="sft", steps=2, batch_size=2)


def demos(n: int, tenant: str = "t") -> list[Demonstration]:
    return [
        Demonstration(query=f"Who leads lab {i}?", answer=f"Ana {i} leads it.", tenant=tenant)
        for i in range(n)
    ]


def test_sleep_publishes_swaps_and_marks(tiny_model_dir, tmp_path, hash_embedder):
    store = InMemoryDemonstrationStore(hash_embedder)
    store.add(demos(3) + demos(2, tenant="other"))
    registry = AdapterRegistry(tmp_path / "adapters")
    backend = LocalBackend(tiny_model_dir, torch_threads=1)
    checked = {}

    def check(candidate):
        checked["answers"] = candidate.generate([[{"role": "user", "content": "Who leads lab 1?"}]])
        return {"probe": len(checked["answers"]), "kl": candidate.kl_from_base(["Say hi."])}

    report = run_sleep(
        store=store,
        registry=registry,
        model_dir=tiny_model_dir,
        config=CONFIG,
        tenant="t",
        check=check,
        on_publish=lambda v: backend.swap(v.version, v.path),
        reports_dir=tmp_path / "reports",
        torch_threads=1,
    )
    assert report.status == "published" and report.adapter_version == 1 and report.swapped
    assert report.checks["probe"] == 1 and report.checks["kl"] > 0
    assert backend.adapter_version == 1
    assert registry.current().version == 1
    manifest = registry.current().manifest
    assert manifest["method"] == "sft" and len(manifest["demonstration_ids"]) == 3
    assert store.pending("t") == []
    assert {d.adapter_version for d in store.list(tenant="t")} == {1}
    assert len(store.pending("other")) == 2  # other tenants untouched
    [saved] = (tmp_path / "reports").iterdir()
    assert json.loads(saved.read_text())["adapter_version"] == 1


def test_nothing_pending_is_not_an_error(tiny_model_dir, tmp_path, hash_embedder):
    report = run_sleep(
        store=InMemoryDemonstrationStore(hash_embedder),
        registry=AdapterRegistry(tmp_path / "a"),
        model_dir=tiny_model_dir,
        config=CONFIG,
    )
    assert report.status == "nothing_to_do" and report.adapter_version is None


def test_failure_before_publish_hands_the_claim_back(tiny_model_dir, tmp_path, hash_embedder):
    store = InMemoryDemonstrationStore(hash_embedder)
    store.add(demos(2))
    registry = AdapterRegistry(tmp_path / "a")

    def failing_check(candidate):
        raise RuntimeError("evaluation crashed")

    with pytest.raises(RuntimeError, match="evaluation crashed"):
        run_sleep(
            store=store,
            registry=registry,
            model_dir=tiny_model_dir,
            config=CONFIG,
            tenant="t",
            check=failing_check,
            reports_dir=tmp_path / "r",
            torch_threads=1,
        )
    assert len(store.pending("t")) == 2
    assert store.count(status=DemoStatus.CLAIMED) == 0
    assert registry.versions() == [] and registry.current() is None
    [saved] = (tmp_path / "r").iterdir()
    assert json.loads(saved.read_text())["status"] == "failed"


def test_failed_swap_keeps_registry_truth(tiny_model_dir, tmp_path, hash_embedder):
    store = InMemoryDemonstrationStore(hash_embedder)
    store.add(demos(2))
    registry = AdapterRegistry(tmp_path / "a")

    def broken_swap(version):
        raise ConnectionError("server gone")

    report = run_sleep(
        store=store,
        registry=registry,
        model_dir=tiny_model_dir,
        config=CONFIG,
        tenant="t",
        on_publish=broken_swap,
        torch_threads=1,
    )
    assert report.status == "published" and not report.swapped
    assert "server gone" in report.error
    assert registry.current().version == 1  # a restarted backend serves CURRENT
    assert store.count(status=DemoStatus.CONSOLIDATED) == 2
