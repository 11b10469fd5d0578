from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from agent_cl.config import ConfigError, Settings
from agent_cl.memory.inmemory import InMemoryDemonstrationStore
from agent_cl.memory.schema import Demonstration, DemoStatus
from agent_cl.night.night import Night
from agent_cl.night.plan import NightPlan
from agent_cl.night.scheduler import SleepDaemon, Triggers, due, tenants_to_consolidate

ROOT = Path(__file__).resolve().parents[1]


def demo(i: int, tenant: str = "a", age_minutes: float = 0.0) -> Demonstration:
    return Demonstration(
        query=f"q{i}", answer=f"a{i}", tenant=tenant, created_at=time.time() - 60 * age_minutes
    )


def test_triggers_validate():
    with pytest.raises(ValueError, match="at least one trigger"):
        Triggers()
    with pytest.raises(ValueError, match="invalid cron"):
        Triggers(cron="every night")
    with pytest.raises(ValueError, match="min_pending"):
        Triggers(min_pending=0)
    assert Triggers(cron="0 2 * * *").cron == "0 2 * * *"


def test_pending_and_idle_triggers(hash_embedder):
    store = InMemoryDemonstrationStore(hash_embedder)
    assert due(store, Triggers(min_pending=1)) is None  # nothing pending, never due
    store.add([demo(0, age_minutes=30), demo(1, age_minutes=5)])
    assert due(store, Triggers(min_pending=3)) is None
    assert "2 demonstrations pending" in due(store, Triggers(min_pending=2))
    assert due(store, Triggers(idle_minutes=10)) is None  # the newest is 5 minutes old
    assert "idle for" in due(store, Triggers(idle_minutes=4))
    # a rejected night's demonstrations, pending for their retry, wait for new work
    retried = [d.id for d in store.list()]
    store.set_status(retried, DemoStatus.PENDING, reason="retried: drop", add_attempt=True)
    assert due(store, Triggers(min_pending=1)) is None
    assert due(store, Triggers(idle_minutes=4)) is None
    store.add([demo(2, age_minutes=1)])
    assert "1 demonstrations pending" in due(store, Triggers(min_pending=1))


def test_night_visits_every_tenant_with_work(hash_embedder, tiny_model_dir, tmp_path):
    store = InMemoryDemonstrationStore(hash_embedder)
    store.add([demo(0, "b"), demo(1, "a"), demo(2, "c")])
    store.set_status([demo(2, "c").id], DemoStatus.CONSOLIDATED)
    assert tenants_to_consolidate(store) == ["a", "b"]
    assert tenants_to_consolidate(store, unfinished=("z",)) == ["a", "b", "z"]
    settings = Settings(home=tmp_path, model_dir=tiny_model_dir)
    journal = settings.paths("z").sleep_state / "journal.json"
    journal.parent.mkdir(parents=True)
    journal.write_text("{}")
    assert settings.unfinished_tenants() == ("z",)

    class Job:
        def __init__(self, tenant):
            self.tenant = tenant

        def run(self):
            if self.tenant == "a":
                raise RuntimeError("bad batch")
            return self.tenant

    class FakeJobs(Night):
        def job(self, tenant, **overrides):
            return Job(tenant)

    night = FakeJobs(settings, store)
    assert night.tenants() == ["a", "b", "z"] and night.tenants("c") == ["c"]
    # a failing tenant is logged and reported; the others still get their night
    failed, *others = night.run()
    assert others == ["b", "z"]
    assert failed.tenant == "a" and failed.status == "failed" and "bad batch" in failed.error


def test_night_builds_each_tenants_job_from_settings(hash_embedder, tiny_model_dir, tmp_path):
    settings = Settings(
        home=tmp_path,
        model_dir=tiny_model_dir,
        adapter_max_rank=8,
        sleep_steps=3,
        sleep_replay=2,
    )
    night = Night(settings, InMemoryDemonstrationStore(hash_embedder))
    job = night.job("alpha")
    assert job.registry.root == settings.paths("alpha").adapters
    assert job.journal.root == settings.paths("alpha").sleep_state
    assert job.registry.rules.max_rank == 8 and job.config.steps == 3 and job.replay == 2
    assert job.gate is not None and job.gate.max_retention_drop == 0.03
    with pytest.raises(ValueError, match="tenant"):
        night.job("no spaces please")
    with pytest.raises(TypeError, match="unknown SleepJob fields"):
        night.job("alpha", not_a_field=1)
    with pytest.raises(ConfigError, match="sleep_replay"):
        Settings(sleep_replay=-1)
    assert job.config.lora_per_night == "continue"
    fresh = Night(dataclasses.replace(settings, sleep_lora_per_night="fresh"), night.store)
    assert fresh.job("alpha").config.lora_per_night == "fresh"
    with pytest.raises(ConfigError, match="sleep_lora_per_night"):
        Settings(sleep_lora_per_night="reset")
    # the night's precision reaches the trainer (and the gate's reloaded candidate)
    assert job.config.dtype == "auto"
    fp32 = Night(dataclasses.replace(settings, sleep_dtype="float32"), night.store)
    assert fp32.job("alpha").config.dtype == "float32"
    with pytest.raises(ConfigError, match="sleep_dtype must be one of auto, float32, bfloat16"):
        Settings(sleep_dtype="float16")
    # the night's LoRA rank reaches the trainer, alpha twice it; a rank the server could not
    # take is refused in Settings, before any night
    assert (job.config.lora_r, job.config.lora_alpha) == (8, 16)
    wide_settings = dataclasses.replace(settings, adapter_max_rank=16, sleep_lora_rank=16)
    wide = Night(wide_settings, night.store)
    assert (wide.job("alpha").config.lora_r, wide.job("alpha").config.lora_alpha) == (16, 32)
    with pytest.raises(ConfigError, match=r"sleep_lora_rank \(16\) must be at most adapter_max"):
        Settings(adapter_max_rank=8, sleep_lora_rank=16)
    with pytest.raises(ConfigError, match="sleep_lora_rank"):
        Settings(sleep_lora_rank=0)
    with pytest.raises(ValueError, match="method"):
        NightPlan.from_settings(Settings(sleep_method="nope"))
    # one owner per rule: what Settings accepts, the night accepts (and the reverse)
    with pytest.raises(ConfigError, match="gate_max_kl_from_base"):
        Settings(gate_max_kl_from_base=0)


def test_daemon_runs_one_night_at_a_time(hash_embedder, tmp_path):
    started, release = threading.Event(), threading.Event()

    def night():
        started.set()
        release.wait(5)

    daemon = SleepDaemon(
        night, InMemoryDemonstrationStore(hash_embedder), Triggers(min_pending=1), tmp_path / "l"
    )
    worker = threading.Thread(target=daemon.run_night, args=["first"])
    worker.start()
    assert started.wait(5)
    daemon.run_night("second")  # skipped: the first is still running
    release.set()
    worker.join(5)
    assert daemon.nights_run == 1


@pytest.mark.slow
def test_daemon_command_runs_a_night_and_stops_on_sigterm(tiny_model_dir, tmp_path):
    """The real command: a pending demonstration triggers a night (gate off, tiny model);
    SIGTERM then stops the daemon cleanly."""
    from agent_cl.memory.chroma import ChromaDemonstrationStore
    from tests.conftest import HashEmbedder

    home = tmp_path / "home"
    store = ChromaDemonstrationStore.open(home / "store", embedder=HashEmbedder())
    store.add([demo(0, "default")])
    store.close()  # the daemon process opens it next
    env = {
        **os.environ,
        "AGENT_CL_HOME": str(home),
        "AGENT_CL_MODEL_DIR": str(tiny_model_dir),
        "AGENT_CL_TORCH_THREADS": "1",
    }
    cmd = [sys.executable, "-m", "agent_cl.cli", "daemon", "--min-pending", "1"]
    cmd += ["--poll-seconds", "0.5", "--steps", "2", "--no-gate"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline and not (home / "adapters" / "default" / "CURRENT").exists():
            time.sleep(0.5)
        assert (home / "adapters" / "default" / "CURRENT").read_text() == "1"
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr[-2000:]
    assert "daemon stopped after 1 nights" in stderr
