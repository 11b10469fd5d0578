from __future__ import annotations

import hashlib
import json
import random

import pytest
import torch

from agent_cl.adapters.registry import AdapterRegistry
from agent_cl.adapters.rules import AdapterRules
from agent_cl.config import ConfigError, Settings
from agent_cl.consolidation.training_config import ConsolidationConfig
from agent_cl.memory.inmemory import InMemoryDemonstrationStore
from agent_cl.memory.schema import Demonstration, DemoStatus
from agent_cl.night.gate import Gate, GateConfig, GateItem, GateScores
from agent_cl.night.sleep import SleepAlreadyRunningError, SleepJob, run_sleep
from agent_cl.serving.local_backend import LocalBackend
from tests.sleep_worker import seed_demonstrations

CONFIG = ConsolidationConfig(method="sft", steps=2, batch_size=2)


def night(store, registry, model_dir, **overrides):
    """One sleep of tenant "t" on the tiny model; the gate is off unless a test turns it on."""
    kwargs = {"config": CONFIG, "tenant": "t", "torch_threads": 1, "gate": None}
    return run_sleep(store=store, registry=registry, model_dir=model_dir, **{**kwargs, **overrides})


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

    report = night(
        store,
        registry,
        tiny_model_dir,
        check=check,
        on_publish=lambda v: backend.swap(v.version, v.path),
        reports_dir=tmp_path / "reports",
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
    # where the night trained is in its report: machines differ in what a night forgets
    expected = ("cuda" if torch.cuda.is_available() else "cpu", "float32")
    assert (report.train["device"], report.train["dtype"]) == expected


def test_nothing_pending_is_not_an_error(tiny_model_dir, tmp_path, hash_embedder):
    report = night(
        InMemoryDemonstrationStore(hash_embedder),
        AdapterRegistry(tmp_path / "a"),
        tiny_model_dir,
    )
    assert report.status == "nothing_to_do" and report.adapter_version is None


def test_failure_before_publish_hands_the_claim_back(tiny_model_dir, tmp_path, hash_embedder):
    store = InMemoryDemonstrationStore(hash_embedder)
    store.add(demos(2))
    registry = AdapterRegistry(tmp_path / "a")

    def failing_check(candidate):
        raise RuntimeError("evaluation crashed")

    with pytest.raises(RuntimeError, match="evaluation crashed"):
        night(
            store,
            registry,
            tiny_model_dir,
            check=failing_check,
            reports_dir=tmp_path / "r",
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

    report = night(
        store,
        registry,
        tiny_model_dir,
        on_publish=broken_swap,
    )
    assert report.status == "published" and not report.swapped
    assert "server gone" in report.error
    assert registry.current().version == 1  # a restarted backend serves CURRENT
    assert store.count(status=DemoStatus.CONSOLIDATED) == 2


def test_gate_rejects_a_candidate_that_learned_nothing(tiny_model_dir, tmp_path, hash_embedder):
    store = InMemoryDemonstrationStore(hash_embedder)
    store.add(seed_demonstrations())  # three, each with its expected answer
    registry = AdapterRegistry(tmp_path / "a")
    swaps = []
    report = night(
        store,
        registry,
        tiny_model_dir,
        gate=GateConfig(retention_items=4),
        on_publish=swaps.append,
        reports_dir=tmp_path / "r",
    )
    # Two steps on a random tiny model teach nothing: 0.0 -> 0.0 is not an improvement.
    assert report.status == "rejected" and report.adapter_version is None
    assert "new-skill accuracy 0.000 -> 0.000" in report.error
    assert report.gate["passed"] is False and report.gate["before"]["n_new_skill"] == 3
    assert registry.versions() == [] and swaps == []
    rejected = store.list(tenant="t", status=DemoStatus.REJECTED)
    assert len(rejected) == 3 and all("new-skill" in d.status_reason for d in rejected)
    [saved] = (tmp_path / "r").iterdir()
    assert json.loads(saved.read_text())["status"] == "rejected"


def test_a_rejected_night_retries_its_demonstrations_until_the_attempt_limit(
    tiny_model_dir, tmp_path, hash_embedder
):
    """A rejection sends the night's demonstrations back to pending, counted, so the next night
    takes them first (oldest first); at the limit the rejection is final. Chroma keeps the
    count across processes (the store every deployment uses)."""
    from agent_cl.memory.chroma import ChromaDemonstrationStore

    store = ChromaDemonstrationStore.open(tmp_path / "store", embedder=hash_embedder)
    store.add(
        [d.model_copy(update={"created_at": 1.0 + i}) for i, d in enumerate(seed_demonstrations())]
    )
    registry = AdapterRegistry(tmp_path / "a")
    gate = GateConfig(retention_items=4)
    first = night(store, registry, tiny_model_dir, gate=gate, max_attempts=2)
    assert first.status == "rejected" and first.retried == 3  # the tiny model learns nothing
    again = store.list(tenant="t", status=DemoStatus.PENDING)
    assert len(again) == 3 and {d.attempts for d in again} == {1}
    assert all(d.status_reason.startswith("retried: new-skill") for d in again)
    newer = Demonstration(query="Who leads lab 9?", answer="Ana 9 leads it.", tenant="t")
    store.add([newer])
    second = night(store, registry, tiny_model_dir, gate=gate, max_attempts=2, max_demonstrations=3)
    assert second.status == "rejected" and second.retried == 0 and second.demonstrations == 3
    rejected = store.list(tenant="t", status=DemoStatus.REJECTED)
    assert {d.id for d in rejected} == {d.id for d in again}  # the retried ones went first
    assert {d.attempts for d in rejected} == {2}
    [waiting] = store.list(tenant="t", status=DemoStatus.PENDING)
    assert waiting.id == newer.id and waiting.attempts == 0  # over the budget, still pending
    store.close()
    with pytest.raises(ValueError, match="max_attempts"):
        night(store, registry, tiny_model_dir, max_attempts=0)


def test_gate_decision_rules():
    gate = Gate(GateConfig(max_retention_drop=0.01), [], retention=[_always(True)])
    ok = gate.decide(GateScores(0.1, 0.90, 2, 100), GateScores(0.8, 0.89, 2, 100))
    assert ok.passed, ok.reason
    forgot = gate.decide(GateScores(0.1, 0.90, 2, 100), GateScores(0.8, 0.85, 2, 100))
    assert not forgot.passed and "drop 0.050 > 0.010" in forgot.reason
    unverifiable = gate.decide(GateScores(None, 0.9, 0, 100), GateScores(None, 0.9, 0, 100))
    assert not unverifiable.passed and "expected" in unverifiable.reason
    with pytest.raises(ValueError, match="max_retention_drop"):
        GateConfig(max_retention_drop=2.0)


def _always(value: bool, **fields) -> GateItem:
    return GateItem([{"role": "user", "content": "hi"}], lambda answer: value, **fields)


def test_gate_decides_on_robust_items_and_caps_kl_from_base():
    retention = [
        _always(True, kind="sums"),
        _always(False, kind="sums"),
        _always(True, kind="words"),
        _always(False, kind="words", robust=False),  # reported, never decisive
    ]
    gate = Gate(GateConfig(max_kl_from_base=0.05), [_always(True)], retention=retention)
    scores = gate.score(lambda convs: ["x"] * len(convs), lambda: 0.01)
    assert scores.retention == pytest.approx(2 / 3) and scores.n_retention == 3
    assert scores.retention_full == pytest.approx(0.5) and scores.n_retention_full == 4
    assert scores.retention_kinds == {"sums": 0.5, "words": 1.0}
    assert scores.new_skill == 1.0 and scores.kl_from_base == 0.01
    before = GateScores(0.0, 2 / 3, 1, 3)
    assert gate.decide(before, scores).passed
    drifted = GateScores(1.0, 2 / 3, 1, 3, kl_from_base=0.2)
    decision = gate.decide(before, drifted)
    assert not decision.passed and "KL from base 0.2000 > 0.0500" in decision.reason
    unmeasured = Gate(GateConfig(max_kl_from_base=None), [], retention=retention)
    assert unmeasured.score(lambda c: ["x"] * len(c), lambda: 9.0).kl_from_base is None
    with pytest.raises(ValueError, match="robust"):
        Gate(GateConfig(), [], retention=[_always(True, robust=False)])
    with pytest.raises(ValueError, match="max_kl_from_base"):
        GateConfig(max_kl_from_base=0)


def test_default_gate_uses_the_whole_frozen_set():
    from agent_cl.night.gate import retention_items
    from agent_cl.scoring.retention import load_retention_set

    items = retention_items()
    assert len(items) == len(load_retention_set(subset="full"))
    assert sum(i.robust for i in items) == len(load_retention_set())
    sample = retention_items(limit=10)
    assert len(sample) == 10 and all(i.robust for i in sample)
    assert {i.kind for i in items} >= {"arithmetic", "capitals", "facts", "words"}


def test_second_night_starts_from_the_first_adapter_and_replays(
    tiny_model_dir, tmp_path, hash_embedder
):
    store = InMemoryDemonstrationStore(hash_embedder)
    registry = AdapterRegistry(tmp_path / "a", AdapterRules(keep=1))
    store.add(demos(2))
    first = night(store, registry, tiny_model_dir, replay=1)
    assert first.status == "published" and first.init_version is None and first.replayed == 0
    store.add([Demonstration(query="Who leads lab 9?", answer="Bo leads it.", tenant="t")])
    second = night(store, registry, tiny_model_dir, replay=1)
    assert second.status == "published" and second.init_version == 1 and second.replayed == 1
    assert second.demonstrations == 1
    manifest = registry.current().manifest
    assert manifest["init_version"] == 1 and len(manifest["replay_ids"]) == 1
    assert [v.version for v in registry.versions()] == [2]  # keep=1 pruned v1


def test_replay_can_favour_the_newest_night_and_is_uniform_by_default(tmp_path, hash_embedder):
    store = InMemoryDemonstrationStore(hash_embedder)
    nights = {
        version: [
            Demonstration(query=f"Who leads lab {version}.{i}?", answer=f"Ana {i}.", tenant="t")
            for i in range(6)
        ]
        for version in (1, 2, 3)
    }
    for version, night_demos in nights.items():
        store.add(night_demos)
        store.set_status(
            [d.id for d in night_demos], DemoStatus.CONSOLIDATED, tenant="t",
            adapter_version=version,
        )  # fmt: skip
    newest = {d.id for d in nights[3]}

    def draw(recent: float, run_id: str) -> list[str]:
        job = SleepJob(
            store=store, registry=AdapterRegistry(tmp_path / "a"), model_dir=tmp_path,
            tenant="t", replay=4, replay_recent=recent,
        )  # fmt: skip
        return job._replay_sample(run_id)

    runs = [f"run-{i}" for i in range(40)]
    uniform = [draw(0.0, r) for r in runs]
    favoured = [draw(0.5, r) for r in runs]
    assert all(len(ids) == len(set(ids)) == 4 for ids in uniform + favoured)
    # half the budget comes from the newest night, the rest from all of them
    assert all(len(newest & set(ids)) >= 2 for ids in favoured)
    assert sum(len(newest & set(ids)) for ids in uniform) < sum(
        len(newest & set(ids)) for ids in favoured
    )
    # replay_recent 0 draws exactly what nights drew before the option existed
    done = store.list(tenant="t", status=DemoStatus.CONSOLIDATED)
    seed = int(hashlib.sha256(b"run-3").hexdigest()[:8], 16)
    assert uniform[3] == [d.id for d in random.Random(seed).sample(done, 4)]
    # the same run draws the same replay (a resumed night trains on what it claimed)
    assert draw(0.5, "run-0") == favoured[0] and draw(0.0, "run-0") == uniform[0]
    assert set(draw(1.0, "run-1")) == set(draw(1.0, "run-1")) <= newest
    with pytest.raises(ValueError, match="replay_recent"):
        draw(1.5, "run-0")
    with pytest.raises(ConfigError, match="sleep_replay_recent"):
        Settings(sleep_replay_recent=-0.1)


def test_fresh_lora_nights_stack_up_to_the_served_rank_and_the_check_sees_the_folded_adapter(
    tiny_model_dir, tmp_path, hash_embedder
):
    import dataclasses

    from agent_cl.consolidation.candidate import CandidateModel

    store = InMemoryDemonstrationStore(hash_embedder)
    registry = AdapterRegistry(tmp_path / "a", AdapterRules(max_rank=16))
    fresh = dataclasses.replace(CONFIG, lora_per_night="fresh")
    prompts = ["Name a colour.", "What is 2 + 2?"]
    folds, seen = [], []
    for i in range(3):
        store.add([Demonstration(query=f"Who leads lab {i}?", answer=f"Ana {i}.", tenant="t")])
        report = night(
            store,
            registry,
            tiny_model_dir,
            config=fresh,
            check=lambda c: seen.append(c.kl_from_base(prompts)) or {},
        )
        assert report.status == "published"
        folds.append(report.train["fold"])
        rank = json.loads((registry.current().path / "adapter_config.json").read_text())["r"]
        assert rank == [8, 16, 16][i]
    assert folds[0] is None  # the first night has nothing to stack on
    assert [f["fold"] for f in folds[1:]] == ["concatenated", "svd"]
    served = CandidateModel.load(tiny_model_dir, registry.current().path, torch_threads=1)
    assert served.kl_from_base(prompts) == pytest.approx(seen[-1], rel=1e-4, abs=1e-7)


def test_one_sleep_or_rollback_per_tenant_at_a_time(tiny_model_dir, tmp_path, hash_embedder):
    from agent_cl.durable import LockedError

    registry = AdapterRegistry(tmp_path / "a")
    job = SleepJob(
        store=InMemoryDemonstrationStore(hash_embedder),
        registry=registry,
        model_dir=tiny_model_dir,
        config=CONFIG,
    )
    with registry.lock():  # what a rollback in another process holds
        with pytest.raises(SleepAlreadyRunningError, match="is running"):
            job.run()
        with pytest.raises(LockedError, match="busy"):
            registry.rollback()  # and a rollback waits for the night the same way
    assert job.run().status == "nothing_to_do"


def test_steps_per_demo_sizes_the_night_from_its_claim(tiny_model_dir, tmp_path, hash_embedder):
    store = InMemoryDemonstrationStore(hash_embedder)
    store.add(demos(3))
    registry = AdapterRegistry(tmp_path / "a")
    report = night(store, registry, tiny_model_dir, steps_per_demo=2)
    assert report.status == "published"
    assert report.train["steps"] == 6 and len(report.train["history"]) == 6
    assert registry.current().manifest["config"]["steps"] == 6
    with pytest.raises(ConfigError, match="sleep_steps_per_demo"):  # Settings owns the rule
        Settings(sleep_steps_per_demo=0)


def test_a_light_replay_adds_its_own_steps_and_is_drawn_that_much_less(
    tiny_model_dir, tmp_path, hash_embedder, monkeypatch
):
    from agent_cl.consolidation import trainer as trainer_module
    from agent_cl.consolidation.run_state import TrainingRun

    drawn: list[str] = []

    class CountingRun(TrainingRun):
        def next_batch(self):
            batch = super().next_batch()
            drawn.extend(d.query for d in batch)
            return batch

    monkeypatch.setattr(trainer_module, "TrainingRun", CountingRun)
    store = InMemoryDemonstrationStore(hash_embedder)
    registry = AdapterRegistry(tmp_path / "a")
    store.add(demos(4))
    light = {"steps_per_demo": 4, "replay_steps_per_demo": 1}
    assert night(store, registry, tiny_model_dir, **light).status == "published"
    # with nothing to replay the night draws as a plain one does
    plain = AdapterRegistry(tmp_path / "plain")
    first = drawn[:]
    drawn.clear()
    again = InMemoryDemonstrationStore(hash_embedder)
    again.add(demos(4))
    assert night(again, plain, tiny_model_dir, steps_per_demo=4).status == "published"
    assert drawn == first
    drawn.clear()
    store.add([Demonstration(query="Who leads lab 9?", answer="Bo leads it.", tenant="t")])
    config = ConsolidationConfig(method="sft", steps=2, batch_size=1)
    report = night(store, registry, tiny_model_dir, replay=4, config=config, **light)
    assert report.status == "published" and report.replayed == 4
    # 4 steps for the new demonstration, 1 for each replayed one
    assert report.train["steps"] == 4 + 4 and len(drawn) == 8
    # one pass holds the new example 4 times and each replayed one once, in one order
    assert drawn.count("Who leads lab 9?") == 4
    assert sorted(q for q in drawn if q != "Who leads lab 9?") == sorted(d.query for d in demos(4))
    assert registry.current().manifest["config"]["steps"] == 8


def test_a_light_replay_is_refused_where_it_means_nothing(tmp_path, hash_embedder):
    from agent_cl.consolidation.run_state import TrainingRun

    with pytest.raises(ConfigError, match="sleep_replay_steps_per_demo"):
        Settings(sleep_replay_steps_per_demo=0)
    with pytest.raises(ConfigError, match="fixed sleep_steps"):
        Settings(sleep_replay_steps_per_demo=2, sleep_steps=100)
    with pytest.raises(ValueError, match="needs steps_per_demo"):
        SleepJob(
            store=InMemoryDemonstrationStore(hash_embedder), registry=AdapterRegistry(tmp_path),
            model_dir=tmp_path, replay_steps_per_demo=2,
        )  # fmt: skip
    with pytest.raises(ValueError, match="one count >= 1 per example"):
        TrainingRun(demos(2), random.Random(0), None, 1, draws=[1, 0])
    # without draws, a pass is the data once each, in the order nights drew before the option
    data = demos(3)
    plain = list(data)
    random.Random(5).shuffle(plain)
    assert TrainingRun(data, random.Random(5), None, 3, draws=[1, 1, 1]).next_batch() == plain[::-1]


def test_a_night_takes_its_budget_oldest_first_and_the_next_night_the_rest(
    tiny_model_dir, tmp_path, hash_embedder
):
    store = InMemoryDemonstrationStore(hash_embedder)
    logged = demos(5)
    for age, demo in enumerate(logged):
        demo.created_at = 1000.0 + age  # logged in this order
    store.add(list(reversed(logged)))  # stored in another: the claim must sort
    registry = AdapterRegistry(tmp_path / "a")
    first = night(store, registry, tiny_model_dir, max_demonstrations=2)
    assert first.status == "published" and first.demonstrations == 2
    claimed = registry.current().manifest["demonstration_ids"]
    assert claimed == [logged[0].id, logged[1].id]
    assert {d.id for d in store.pending("t")} == {d.id for d in logged[2:]}
    second = night(store, registry, tiny_model_dir, max_demonstrations=2)
    third = night(store, registry, tiny_model_dir, max_demonstrations=2)
    assert (second.demonstrations, third.demonstrations) == (2, 1)
    consolidated = store.list(tenant="t", status=DemoStatus.CONSOLIDATED)
    assert sorted(d.id for d in consolidated) == sorted(d.id for d in logged)  # none twice
    assert {d.adapter_version for d in consolidated} == {1, 2, 3}
    with pytest.raises(ValueError, match="max_demonstrations must be >= 1"):
        SleepJob(store=store, registry=registry, model_dir=tiny_model_dir, max_demonstrations=0)
    with pytest.raises(ConfigError, match="sleep_max_demos must be >= 1"):
        Settings(sleep_max_demos=0)
    assert Settings().sleep_max_demos == 64


def test_gate_holds_a_ceiling_against_the_base_over_all_nights():
    gate = Gate(GateConfig(max_retention_drop=0.03, max_drop_from_base=0.03), [],
                retention=[_always(True)])  # fmt: skip
    base, before = GateScores(0.0, 0.95, 2, 100), GateScores(0.0, 0.93, 2, 100)
    # 2 points under the version it replaces: fine alone, 4 points under the base: refused
    drifted = gate.decide(before, GateScores(1.0, 0.91, 2, 100), base)
    assert not drifted.passed
    assert "0.040 under the base model's 0.950" in drifted.reason
    kept = gate.decide(before, GateScores(1.0, 0.93, 2, 100), base)
    assert kept.passed and "(base 0.950)" in kept.reason
    # a night that starts from the base compares with `before`, which is the base
    assert gate.decide(base, GateScores(1.0, 0.93, 2, 100)).passed
    off = Gate(GateConfig(max_drop_from_base=None), [], retention=[_always(True)])
    assert off.decide(before, GateScores(1.0, 0.91, 2, 100), base).passed
    with pytest.raises(ValueError, match="max_drop_from_base"):
        GateConfig(max_drop_from_base=1.5)
    with pytest.raises(ConfigError, match="gate_max_drop_from_base"):
        Settings(gate_max_drop_from_base=-0.1)


def test_each_night_carries_the_base_scores_forward(tiny_model_dir, tmp_path, hash_embedder):
    """The first gated night records the base model's scores; the next reads them from the
    served version's manifest, and a version without them gets them measured, adapter off."""
    store = InMemoryDemonstrationStore(hash_embedder)
    calls: list[str] = []
    gated = {
        "gate": GateConfig(min_new_skill_gain=-1, max_kl_from_base=None),
        "held_out": [_always(True)],
        "retention": [
            GateItem([{"role": "user", "content": "Say yes."}], lambda a: not calls.append(a))
        ],
    }
    registry = AdapterRegistry(tmp_path / "a")
    store.add(demos(2))
    first = night(store, registry, tiny_model_dir, **gated)
    assert first.status == "published", first.error
    assert first.gate["base"] == first.gate["before"] and len(calls) == 2
    assert registry.current().manifest["gate"]["base"] == first.gate["before"]
    store.add([Demonstration(query="Who leads lab 9?", answer="Bo leads it.", tenant="t")])
    calls.clear()
    second = night(store, registry, tiny_model_dir, **gated)
    assert second.status == "published" and second.init_version == 1
    assert second.gate["base"] == first.gate["base"]
    # after only: neither the base nor the served version's retention is measured again
    assert len(calls) == 1
    before, served = second.gate["before"], first.gate["after"]
    assert {k: v for k, v in before.items() if "new_skill" not in k} == {
        k: v for k, v in served.items() if "new_skill" not in k
    }
    assert before["n_new_skill"] == 1  # this night's held-out item, measured on v1

    ungated = AdapterRegistry(tmp_path / "b")  # a first night from before the ceiling
    store.add(demos(2, tenant="u"))
    night(store, ungated, tiny_model_dir, tenant="u")
    assert "base" not in ungated.current().manifest["gate"]
    store.add([Demonstration(query="Who leads lab 7?", answer="Cy leads it.", tenant="u")])
    calls.clear()
    third = night(store, ungated, tiny_model_dir, tenant="u", **gated)
    assert third.status == "published" and third.init_version == 1
    assert len(calls) == 3  # before, the base (adapter off), after
    assert third.gate["base"]["n_retention"] == 1


def _scripted(outcomes: list[bool], **fields) -> GateItem:
    """An item judged by a script: the n-th time the gate asks it, outcome n (the gate asks
    each item once per model it scores: before, the whole candidate, then each share)."""
    asked = iter(outcomes)
    return GateItem([{"role": "user", "content": "hi"}], lambda answer: next(asked), **fields)


def _shrinking_night(store, registry, model_dir, new: list[bool], kept: list[bool], **extra):
    store.add(demos(2))
    gate = GateConfig(max_kl_from_base=None, shrink=(0.75, 0.5))
    return night(
        store,
        registry,
        model_dir,
        gate=gate,
        held_out=[_scripted(new)],
        retention=[_scripted(kept)],
        **extra,
    )


def test_a_night_that_learned_but_forgot_publishes_the_first_share_that_passes(
    tiny_model_dir, tmp_path, hash_embedder
):
    """Scored before, whole, at 0.75 and at 0.5 of its update: only 0.5 keeps the retention item,
    so 0.5 of the update is published (a first night: its LoRA's B scaled by 0.5)."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file

    store, registry, trained = (
        InMemoryDemonstrationStore(hash_embedder),
        AdapterRegistry(tmp_path / "a"),
        {},
    )

    def keep_weights(candidate):
        trained.update(
            {k: v.clone() for k, v in get_peft_model_state_dict(candidate.model).items()}
        )
        return {}

    report = _shrinking_night(
        store,
        registry,
        tiny_model_dir,
        new=[False, True, True, True],
        kept=[True, False, False, True],
        check=keep_weights,
    )
    assert report.status == "published", report.error
    assert [(t["share"], t["passed"]) for t in report.gate["shrink"]] == [
        (0.75, False),
        (0.5, True),
    ]
    assert report.gate["reason"].startswith(
        "at 0.5 of the night's update: new skill 0.000 -> 1.000"
    )
    assert report.gate["after"]["retention"] == 1.0
    published = load_file(str(registry.current().path / "adapter_model.safetensors"))
    lora_b = [k for k in published if "lora_B" in k]
    assert lora_b and set(published) == set(trained)
    for name in published:
        expected = trained[name] * 0.5 if "lora_B" in name else trained[name]
        assert torch.allclose(published[name], expected, atol=1e-6), name
    assert any(trained[k].abs().sum() > 0 for k in lora_b)  # a real update was halved
    assert registry.current().manifest["gate"]["adapter"] == "shrunk"
    assert store.count(status=DemoStatus.CONSOLIDATED) == 2


def test_a_night_no_share_of_which_passes_is_rejected_with_every_try(
    tiny_model_dir, tmp_path, hash_embedder
):
    store, registry = InMemoryDemonstrationStore(hash_embedder), AdapterRegistry(tmp_path / "a")
    report = _shrinking_night(
        store,
        registry,
        tiny_model_dir,
        new=[False, True, True, False],
        kept=[True, False, False, True],
    )
    assert report.status == "rejected" and registry.versions() == []
    assert [t["passed"] for t in report.gate["shrink"]] == [False, False]
    assert "shrunk, at 0.75: " in report.error and "at 0.5: new-skill accuracy" in report.error
    assert report.gate["after"]["retention"] == 0.0  # the decision is the whole candidate's
    assert store.count(status=DemoStatus.REJECTED) == 2


def test_a_night_that_learned_nothing_is_not_shrunk(tiny_model_dir, tmp_path, hash_embedder):
    store, registry = InMemoryDemonstrationStore(hash_embedder), AdapterRegistry(tmp_path / "a")
    report = _shrinking_night(  # a third score would exhaust the scripts and raise
        store, registry, tiny_model_dir, new=[False, False], kept=[True, False]
    )
    assert report.status == "rejected" and "shrink" not in report.gate


def test_a_night_killed_while_shrinking_gates_its_candidate_again(
    tiny_model_dir, tmp_path, hash_embedder, monkeypatch
):
    """A kill after a share was written and scored leaves the journal at `trained`: the rerun
    scores the whole candidate again (not the share left in the run's folder), then the shares."""
    import agent_cl.night.sleep as sleep_module

    def die(point: str) -> None:
        if point == "after_shrink":
            raise KeyboardInterrupt  # keeps the journal, as a kill would

    store, registry = InMemoryDemonstrationStore(hash_embedder), AdapterRegistry(tmp_path / "a")
    new, kept = [False, True, True, True, True, True], [True, False, False, False, False, True]
    monkeypatch.setattr(sleep_module, "fault_point", die)
    with pytest.raises(KeyboardInterrupt):
        _shrinking_night(store, registry, tiny_model_dir, new=new, kept=kept)
    assert registry.versions() == [] and store.count(status=DemoStatus.CLAIMED) == 2
    monkeypatch.setattr(sleep_module, "fault_point", lambda point: None)
    gate = GateConfig(max_kl_from_base=None, shrink=(0.75, 0.5))
    held_out, retention = [_scripted(new[3:])], [_scripted(kept[3:])]
    report = night(
        store, registry, tiny_model_dir, gate=gate, held_out=held_out, retention=retention
    )
    assert report.status == "published" and report.resumed_from == "trained"
    assert [t["share"] for t in report.gate["shrink"]] == [0.75, 0.5]
    assert store.count(status=DemoStatus.CONSOLIDATED) == 2


def test_shrunk_weights_take_a_share_of_the_update():
    from agent_cl.adapters.shrink import ShrinkUnavailableError, shrunk_weights

    served = {"x.lora_A.weight": torch.ones(2, 4), "x.lora_B.weight": torch.zeros(4, 2)}
    candidate = {"x.lora_A.weight": torch.full((2, 4), 3.0), "x.lora_B.weight": torch.ones(4, 2)}
    mixed = shrunk_weights(candidate, served, 0.25)
    assert torch.allclose(mixed["x.lora_A.weight"], torch.full((2, 4), 1.5))
    assert torch.allclose(mixed["x.lora_B.weight"], torch.full((4, 2), 0.25))
    first = shrunk_weights(candidate, None, 0.5)  # from the base: B A scales exactly
    assert torch.allclose(
        first["x.lora_B.weight"] @ first["x.lora_A.weight"],
        0.5 * candidate["x.lora_B.weight"] @ candidate["x.lora_A.weight"],
    )
    stacked = {"x.lora_A.weight": torch.ones(4, 4), "x.lora_B.weight": torch.ones(4, 4)}
    with pytest.raises(ShrinkUnavailableError, match="not trained from it"):
        shrunk_weights(stacked, served, 0.5)
    with pytest.raises(ShrinkUnavailableError, match="other modules"):
        shrunk_weights({"y.lora_A.weight": torch.ones(2, 4)}, served, 0.5)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        shrunk_weights(candidate, served, 1.0)


def test_gate_shrink_settings_are_checked(monkeypatch, tmp_path):
    assert Settings().gate_shrink == (0.75, 0.5)
    toml = tmp_path / "agent-cl.toml"
    toml.write_text("[agent-cl.gate]\nshrink = [0.8]\n")
    assert Settings.load(toml).gate_shrink == (0.8,)
    toml.write_text('[agent-cl.gate]\nshrink = "0.8"\n')
    with pytest.raises(ConfigError, match="gate_shrink"):
        Settings.load(toml)
    monkeypatch.setenv("AGENT_CL_GATE_SHRINK", "0.9, 0.6")
    assert Settings.load().gate_shrink == (0.9, 0.6)
    monkeypatch.setenv("AGENT_CL_GATE_SHRINK", "")
    assert Settings.load().gate_shrink == ()
    for bad in ((1.0,), (0.5, "x"), (True,)):
        with pytest.raises(ConfigError, match="gate_shrink must be numbers in"):
            Settings(gate_shrink=bad)
    with pytest.raises(ValueError, match="shrink shares"):
        GateConfig(shrink=(0.0,))
