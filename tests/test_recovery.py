"""Recovery loses nothing: each case counts the tenant's demonstrations by status before and
after (nothing lost, nothing claimed twice) and checks the journal and the registry agree."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent_cl.adapters.registry import AdapterRegistry
from agent_cl.cli import app
from agent_cl.config import Settings
from agent_cl.memory.chroma import ChromaDemonstrationStore
from agent_cl.memory.schema import Demonstration, DemoStatus
from agent_cl.night.journal import Journal, JournalEntry, Stage
from tests.adapters import fake_adapter

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENT_CL_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


def counts(home: Path, embedder) -> Counter:
    with ChromaDemonstrationStore.open(home / "store", embedder=embedder) as store:
        return Counter(d.status.value for d in store.list(tenant="default"))


def seed(home: Path, embedder, n: int, status: DemoStatus, **fields) -> list[str]:
    tag = status.value  # distinct texts per call: the store merges identical demonstrations
    with ChromaDemonstrationStore.open(home / "store", embedder=embedder) as store:
        demos = [Demonstration(query=f"{tag} q{i}?", answer=f"a{i}.") for i in range(n)]
        ids = store.add(demos)
        if status is not DemoStatus.PENDING:
            store.set_status(ids, status, **fields)
    return ids


HOLDER = """
import sys, time
from agent_cl.memory.chroma import ChromaDemonstrationStore
from tests.conftest import HashEmbedder
store = ChromaDemonstrationStore.open(sys.argv[1], embedder=HashEmbedder())
print("holding", flush=True)
time.sleep(120)
"""


def test_repair_with_the_store_locked_keeps_the_journal_and_the_next_repair_releases(
    home, hash_embedder
):
    seed(home, hash_embedder, 3, DemoStatus.CLAIMED)
    journal = Settings.load().paths().sleep_state / "journal.json"
    journal.parent.mkdir(parents=True)
    journal.write_text('{"run_id": "x", "stage"')
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(home / "store")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        locked = runner.invoke(app, ["adapters", "repair"])
        assert locked.exit_code == 2 and "is open in process" in locked.output
        assert journal.exists()  # kept: the claims it stands for were not released
    finally:
        holder.kill()
        holder.wait()
    assert counts(home, hash_embedder) == Counter(claimed=3)
    repaired = runner.invoke(app, ["adapters", "repair"])
    assert repaired.exit_code == 0 and "3 claimed demonstrations pending" in repaired.output
    assert not journal.exists()
    assert counts(home, hash_embedder) == Counter(pending=3)
    again = runner.invoke(app, ["adapters", "repair"])
    assert "nothing to repair" in again.output


def journal_at_published(home: Path, ids: list[str], version: int) -> Journal:
    journal = Journal(Settings.load().paths().sleep_state)
    entry = JournalEntry("run1", "default", Stage.CLAIMED, ids, published_version=version)
    journal.write(entry, Stage.PUBLISHED)
    return journal


def test_a_night_resumed_after_its_version_was_set_aside_hands_its_claims_back(
    home, hash_embedder, tiny_model_dir
):
    from agent_cl.night.night import Night

    registry = AdapterRegistry(home / "adapters" / "default")
    registry.publish(fake_adapter(home / "src1", "one"))
    ids = seed(home, hash_embedder, 2, DemoStatus.CLAIMED)
    journal = journal_at_published(home, ids, version=2)  # v2 was quarantined by repair
    settings = Settings.load(model_dir=tiny_model_dir)
    with ChromaDemonstrationStore.open(home / "store", embedder=hash_embedder) as store:
        [report] = Night(settings, store).run()
    assert report.status == "failed" and "no longer in the registry" in report.error
    assert report.adapter_version is None and registry.current().version == 1
    assert journal.load() is None  # the journal agrees with the registry again
    assert counts(home, hash_embedder) == Counter(pending=2)


def test_repair_hands_back_the_demonstrations_of_a_lost_publish_and_of_set_aside_versions(
    home, hash_embedder
):
    registry = AdapterRegistry(home / "adapters" / "default")
    registry.publish(fake_adapter(home / "src1", "one"))
    v2 = registry.publish(fake_adapter(home / "src2", "two"))
    consolidated = seed(home, hash_embedder, 2, DemoStatus.CONSOLIDATED, adapter_version=2)
    claimed = seed(home, hash_embedder, 1, DemoStatus.CLAIMED)
    journal_at_published(home, claimed, version=3)  # its publish never happened
    (v2.path / "adapter_model.safetensors").write_bytes(b"damaged")
    before = counts(home, hash_embedder)
    assert before == Counter(consolidated=2, claimed=1)
    result = runner.invoke(app, ["adapters", "repair"])
    assert result.exit_code == 0, result.output
    assert "v0002" in result.output and "2 demonstrations of set-aside versions" in result.output
    assert "its v3 is gone" in result.output
    assert counts(home, hash_embedder) == Counter(pending=3)
    assert registry.current().version == 1
    assert {d for d in consolidated} | {d for d in claimed}  # every id still there
    with ChromaDemonstrationStore.open(home / "store", embedder=hash_embedder) as store:
        assert len(store.get([*consolidated, *claimed], tenant="default")) == 3


def test_repair_of_a_damaged_current_keeps_the_operators_rollback(home):
    registry = AdapterRegistry(home / "adapters" / "default")
    for i in range(3):
        registry.publish(fake_adapter(home / f"src{i}", str(i)))
    assert runner.invoke(app, ["adapters", "rollback", "1"]).exit_code == 0
    (registry.root / "CURRENT").write_text("banana")
    result = runner.invoke(app, ["adapters", "repair"])
    assert result.exit_code == 0 and "now serves v1" in result.output
    assert registry.current().version == 1  # not v3, the newest intact one


def test_rollback_to_an_unreachable_server_changes_nothing(home):
    registry = AdapterRegistry(home / "adapters" / "default")
    for i in range(2):
        registry.publish(fake_adapter(home / f"src{i}", str(i)))
    result = runner.invoke(app, ["adapters", "rollback", "--server", "http://127.0.0.1:9"])
    assert result.exit_code == 2 and "Connection refused" in result.output, result.output
    assert "Traceback" not in result.output
    assert registry.current().version == 2


def test_sleep_with_an_unreachable_server_fails_before_training(
    home, hash_embedder, tiny_model_dir
):
    seed(home, hash_embedder, 2, DemoStatus.PENDING)
    started = time.perf_counter()
    result = runner.invoke(
        app,
        ["sleep", "--server", "http://127.0.0.1:9"],
        env={"AGENT_CL_MODEL_DIR": str(tiny_model_dir)},
    )
    assert result.exit_code == 2 and "cannot be used" in result.output, result.output
    assert time.perf_counter() - started < 60  # no night was trained first
    assert counts(home, hash_embedder) == Counter(pending=2)
    assert not (home / "adapters" / "default" / ".sleep" / "journal.json").exists()
