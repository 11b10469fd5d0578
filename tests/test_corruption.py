"""A corruption matrix over every file agent-cl writes, driven through the CLI: garbage, an
empty file or a truncated one in any of them never ends in a traceback; each command either
works or says in one line which file is damaged and what to do (exit 2); and after
`agent-cl adapters repair` the registry commands work again."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent_cl.adapters.registry import AdapterRegistry
from agent_cl.cli import app
from agent_cl.config import Settings
from agent_cl.memory.chroma import ChromaDemonstrationStore
from agent_cl.memory.schema import Demonstration, DemoStatus
from agent_cl.night.journal import Journal, JournalEntry, Stage
from agent_cl.night.reports import write_report
from tests.adapters import fake_adapter

runner = CliRunner()
COMMANDS = (["status"], ["adapters", "list"], ["adapters", "current"], ["memory", "list"])
FILES = {  # name -> path inside the home
    "manifest": "adapters/default/v0002/manifest.json",
    "CURRENT": "adapters/default/CURRENT",
    "history": "adapters/default/CURRENT.history.json",
    "adapter_config": "adapters/default/v0002/adapter_config.json",
    "adapter_weights": "adapters/default/v0002/adapter_model.safetensors",
    "journal": "adapters/default/.sleep/journal.json",
    "report": None,  # the night's report: its name carries the time
    "chroma": "store/chroma.sqlite3",
}
DAMAGE = {
    "garbage": lambda data: b"\xff\x00garbage{[" * 3,
    "empty": lambda data: b"",
    "truncated": lambda data: data[: max(len(data) // 2, 1)],
}


@pytest.fixture
def home(tmp_path, monkeypatch, hash_embedder) -> Path:
    """Two published versions, an unfinished night's journal, a report and a store."""
    home = tmp_path / "home"
    monkeypatch.setenv("AGENT_CL_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    registry = AdapterRegistry(home / "adapters" / "default")
    for i in range(2):
        registry.publish(fake_adapter(tmp_path / f"src{i}", str(i)), {"method": "sft"})
    with ChromaDemonstrationStore.open(home / "store", embedder=hash_embedder) as store:
        ids = store.add([Demonstration(query=f"q{i}?", answer=f"a{i}.") for i in range(3)])
        store.set_status(ids[:2], DemoStatus.CLAIMED)
    journal = Journal(Settings.load().paths().sleep_state)
    journal.write(JournalEntry("run1", "default", Stage.CLAIMED, ids[:2]), Stage.CLAIMED)
    write_report(home / "reports", {"run_id": "r0", "tenant": "default", "status": "published"})
    return home


def target(home: Path, name: str) -> Path:
    if FILES[name] is None:
        return next((home / "reports").glob("sleep-*.json"))
    return home / FILES[name]


def no_traceback(result) -> None:
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("name", sorted(FILES))
def test_a_damaged_file_is_named_never_a_traceback_and_repair_recovers(home, name, damage):
    path = target(home, name)
    path.write_bytes(DAMAGE[damage](path.read_bytes()))
    for command in COMMANDS:
        result = runner.invoke(app, command)
        no_traceback(result)
        assert result.exit_code in (0, 2), (command, result.output)
        if result.exit_code == 2:
            [line] = [x for x in result.output.splitlines() if "error" in x]
            assert path.name in line or path.parent.name in line, (command, line)
    repaired = runner.invoke(app, ["adapters", "repair"])
    no_traceback(repaired)
    if name != "chroma":  # a damaged store is restored from a backup, not repaired
        assert repaired.exit_code == 0, repaired.output
        for command in (["adapters", "list"], ["adapters", "current"], ["status"]):
            after = runner.invoke(app, command)
            assert after.exit_code == 0, (command, after.output)
