"""Every durable file survives a bad byte: a damaged CURRENT, manifest, journal or checkpoint
gives an error naming the file and the fix (or, for a checkpoint, a fresh start), never a
traceback and never a second publish of the same batch."""

from __future__ import annotations

import dataclasses

import pytest
from typer.testing import CliRunner

from agent_cl.adapters.registry import AdapterRegistry
from agent_cl.cli import app
from agent_cl.consolidation.trainer import ConsolidationTrainer
from agent_cl.consolidation.training_config import ConsolidationConfig
from agent_cl.durable import CorruptFileError, atomic_directory, read_json
from agent_cl.memory.chroma import ChromaDemonstrationStore
from agent_cl.memory.schema import Demonstration, DemoStatus
from tests.adapters import fake_adapter


def registry_with(tmp_path, n: int) -> AdapterRegistry:
    registry = AdapterRegistry(tmp_path / "home" / "adapters" / "default")
    for i in range(n):
        registry.publish(fake_adapter(tmp_path / f"a{i}", str(i)), {"run_id": f"r{i}"})
    return registry


def cli(*args: str, home) -> object:
    return CliRunner().invoke(app, [*args, "--home", str(home)])


def test_atomic_directory_leaves_nothing_on_error(tmp_path):
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "out") as tmp:
        (tmp / "half").write_text("x")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    with atomic_directory(tmp_path / "out") as tmp:
        (tmp / "whole").write_text("x")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["whole"]


def test_corrupt_json_is_never_read_as_empty(tmp_path):
    (tmp_path / "f.json").write_bytes(b"{\x00 half")
    with pytest.raises(CorruptFileError, match=r"f\.json.*do this"):
        read_json(tmp_path / "f.json", fix="do this")


@pytest.mark.parametrize("content", ["banana", "7", "\udcff"])
def test_corrupt_current_names_the_file_and_repair_fixes_it(tmp_path, content):
    registry = registry_with(tmp_path, 2)
    (registry.root / "CURRENT").write_bytes(content.encode("utf-8", "surrogateescape"))
    with pytest.raises(CorruptFileError, match=r"CURRENT.*adapters repair"):
        registry.current()
    shown = cli("adapters", "current", home=tmp_path / "home")
    assert shown.exit_code == 2 and "adapters repair" in shown.output
    assert "Traceback" not in shown.output
    repaired = cli("adapters", "repair", home=tmp_path / "home")
    assert repaired.exit_code == 0, repaired.output
    assert "now serves v2" in repaired.output
    assert registry.current().version == 2


def test_corrupt_manifest_blocks_a_second_publish_until_repaired(tmp_path):
    registry = registry_with(tmp_path, 2)
    (registry.root / "v0002" / "manifest.json").write_text('{"run_id": "r1", tru')
    # a resumed run asks whether its run already published: never "no" by accident
    with pytest.raises(CorruptFileError, match=r"manifest\.json"):
        registry.find_run("r1")
    with pytest.raises(CorruptFileError):
        registry.publish(fake_adapter(tmp_path / "again", "again"))
    assert [p.name for p in registry.root.glob("v*")] == ["v0001", "v0002"]
    listed = cli("adapters", "list", home=tmp_path / "home")
    assert listed.exit_code == 2 and "adapters repair" in listed.output
    repaired = cli("adapters", "repair", home=tmp_path / "home")
    assert "v0002" in repaired.output and ".corrupt" in repaired.output
    assert [v.version for v in registry.versions()] == [1]
    assert registry.current().version == 1  # CURRENT named the damaged version


def test_corrupt_journal_fails_clearly_and_repair_hands_claims_back(
    tmp_path, tiny_model_dir, monkeypatch
):
    from agent_cl.config import Settings
    from agent_cl.night.night import Night

    home = tmp_path / "home"
    monkeypatch.setenv("AGENT_CL_HOME", str(home))
    settings = Settings.load(model_dir=tiny_model_dir, torch_threads=1)
    with ChromaDemonstrationStore.open(settings.store_dir) as store:
        [claimed] = store.add([Demonstration(query="q?", answer="a.")])
        store.set_status([claimed], DemoStatus.CLAIMED)
        journal = settings.paths().sleep_state / "journal.json"
        journal.parent.mkdir(parents=True)
        journal.write_text('{"run_id": "x", "stage"')
        night_settings = dataclasses.replace(
            settings, sleep_method="sft", sleep_steps=1, gate_enabled=False
        )
        night = Night(night_settings, store)
        [report] = night.run()
        assert report.status == "failed" and "journal.json" in report.error
        assert "adapters repair" in report.error
    repaired = cli("adapters", "repair", home=home)
    assert repaired.exit_code == 0, repaired.output
    assert "1 claimed demonstrations pending" in repaired.output
    assert not journal.exists()
    with ChromaDemonstrationStore.open(settings.store_dir) as store:
        assert store.get([claimed])[0].status == DemoStatus.PENDING


def test_corrupt_checkpoint_is_set_aside_and_training_starts_over(tiny_model_dir, tmp_path):
    checkpoints = tmp_path / "ckpt"
    checkpoints.mkdir()
    (checkpoints / "checkpoint.pt").write_bytes(b"PK\x03\x04 truncated by a crash")
    trainer = ConsolidationTrainer(
        tiny_model_dir, ConsolidationConfig(method="sft", steps=2, batch_size=1), torch_threads=1
    )
    result = trainer.train(
        [Demonstration(query="q?", answer="a.")],
        tmp_path / "out",
        checkpoint_dir=checkpoints,
        checkpoint_every=1,
    )
    assert result.resumed_from_step == 0 and result.steps == 2
    assert list(checkpoints.glob("checkpoint.pt.corrupt-*"))  # kept for a post-mortem
