from __future__ import annotations

import json

from typer.testing import CliRunner

from agent_cl.adapters.registry import AdapterRegistry
from agent_cl.cli import app
from tests.adapters import fake_adapter

runner = CliRunner()


def publish(tmp_path, n):
    registry = AdapterRegistry(tmp_path / "adapters" / "default")
    for i in range(n):
        registry.publish(fake_adapter(tmp_path / f"src{i}", str(i)), {"method": "sft"})
    return registry


def test_adapters_commands(tmp_path):
    home = ["--home", str(tmp_path)]
    assert "base (no adapter)" in runner.invoke(app, ["adapters", "current", *home]).output
    publish(tmp_path, 2)
    listing = runner.invoke(app, ["adapters", "list", *home])
    assert listing.exit_code == 0 and "sft" in listing.output
    assert "v2" in runner.invoke(app, ["adapters", "current", *home]).output
    back = runner.invoke(app, ["adapters", "rollback", *home])
    assert back.exit_code == 0 and "now current: v1" in back.output


def test_unknown_adapter_version_is_a_clear_error(tmp_path):
    publish(tmp_path, 1)
    result = runner.invoke(app, ["adapters", "rollback", "9", "--home", str(tmp_path)])
    assert result.exit_code == 2
    assert "version 9 does not exist" in result.output


def test_bad_options_fail_before_any_work(tmp_path):
    result = runner.invoke(app, ["demo", "--method", "magic", "--home", str(tmp_path)])
    assert result.exit_code == 2 and "sdft, sft" in result.output
    result = runner.invoke(app, ["demo", "--facts", "1", "--home", str(tmp_path)])
    assert result.exit_code == 2 and "at least 2 facts" in result.output
    result = runner.invoke(app, ["demo", "--facts-suite", "poems", "--home", str(tmp_path)])
    assert result.exit_code == 2 and "unknown facts suite 'poems'" in result.output
    result = runner.invoke(app, ["memory", "list", "--status", "lost", "--home", str(tmp_path)])
    assert result.exit_code == 2 and "unknown status" in result.output
    result = runner.invoke(app, ["sleep", "--max-demos", "0", "--home", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output == "error: sleep_max_demos must be >= 1, got 0\n"  # one line
    result = runner.invoke(app, ["sleep", "--dtype", "fp8", "--home", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output == "error: sleep_dtype must be one of auto, float32, bfloat16, got 'fp8'\n"
    result = runner.invoke(app, ["sleep", "--shrink", "0.75,2", "--home", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output == "error: gate_shrink must be numbers in (0, 1), got ['0.75', '2']\n"


def test_sleep_without_model_says_run_init(tmp_path):
    result = runner.invoke(app, ["sleep", "--home", str(tmp_path)])
    assert result.exit_code == 2 and "agent-cl init" in result.output


def test_status_shows_each_tenant_and_the_next_night(tmp_path, monkeypatch, hash_embedder):
    from agent_cl.adapters.registry import AdapterRegistry
    from agent_cl.memory.chroma import ChromaDemonstrationStore
    from agent_cl.memory.schema import Demonstration
    from tests.adapters import fake_adapter

    AdapterRegistry(tmp_path / "adapters" / "alpha").publish(fake_adapter(tmp_path / "x", "x"))
    with ChromaDemonstrationStore.open(tmp_path / "store", embedder=hash_embedder) as store:
        store.add([Demonstration(query=f"q{i}?", answer="a", tenant="beta") for i in range(3)])
    (tmp_path / "reports").mkdir()
    report = {"tenant": "alpha", "status": "rejected", "gate": {"passed": False, "reason": "KL"}}
    (tmp_path / "reports" / "sleep-20261126T020000-r1.json").write_text(json.dumps(report))
    monkeypatch.setenv("AGENT_CL_DAEMON_CRON", "0 2 * * *")
    monkeypatch.setenv("COLUMNS", "200")
    result = runner.invoke(app, ["status", "--home", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "02:00" in result.output and "cron 0 2 * * *" in result.output
    rows = {line.split("│")[1].strip(): line for line in result.output.splitlines() if "│" in line}
    assert "v1" in rows["alpha"] and "rejected: KL" in rows["alpha"]
    assert " 3 " in rows["beta"] and "never" in rows["beta"]


def test_training_progress_prints_plain_lines_when_not_a_terminal():
    """Under nohup or CI rich draws no bar; a long night must still say how far it is."""
    import io
    from types import SimpleNamespace

    from rich.console import Console
    from rich.progress import Progress

    from agent_cl.cli.common import training_steps

    out = io.StringIO()
    with Progress(console=Console(file=out, force_terminal=False, width=200)) as bar:
        on_step = training_steps(bar)
        for step in range(1, 101):
            on_step(SimpleNamespace(step=step, total_steps=100, loss=1.0 / step, seconds=0.0))
        for step in range(5, 9):  # the next night, resumed at step 5: its own count
            on_step(SimpleNamespace(step=step, total_steps=8, loss=0.5, seconds=0.0))
    lines = [line for line in out.getvalue().splitlines() if line.endswith(" s")]
    assert lines[0].startswith("training (1/100, loss 1.000)")
    assert lines[-5].startswith("training (100/100, loss 0.010)")
    assert 10 <= len(lines) - 4 <= 12  # about every tenth, not every step
    assert [line.split(",")[0] for line in lines[-4:]] == [f"training ({s}/8" for s in range(5, 9)]

    tty = io.StringIO()
    with Progress(console=Console(file=tty, force_terminal=True, width=200)) as bar:
        on_step = training_steps(bar)
        for step in range(1, 21):
            on_step(SimpleNamespace(step=step, total_steps=20, loss=0.5, seconds=0.0))
    assert ", 0 s" not in tty.getvalue()  # a terminal gets the bar, not the lines
