"""Every bad input a user can give, through the CLI: one line naming the problem and the fix,
exit code 2, never a traceback; and hypothesis over tenant names, settings and CLI arguments."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from agent_cl.adapters.registry import AdapterRegistry
from agent_cl.cli import app
from agent_cl.config import TENANT_MAX_LENGTH, ConfigError, Settings, Tenant
from tests.adapters import fake_adapter

runner = CliRunner()


def one_line_error(result, *expected: str) -> None:
    """Exit 2, one `error:` line that says each of `expected`, and no traceback."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if "error" in line.lower()]
    assert len(lines) == 1, result.output
    assert all(text in lines[0] for text in expected), result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENT_CL_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AGENT_CL_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no stray ./agent-cl.toml
    return tmp_path / "home"


@pytest.mark.parametrize(
    ("tenant", "why"),
    [("t" * 300, "1-64"), ("tenantä", "ASCII"), ("naïve", "ASCII"), ("a/b", "ASCII"), ("", "1-64")],
)
def test_a_bad_tenant_is_one_line(home, tenant, why):
    one_line_error(runner.invoke(app, ["status", "--tenant", tenant]), "tenant must be", why)


def test_a_question_that_is_not_utf8_is_refused_before_the_model_loads(home):
    result = runner.invoke(app, ["run", "Who leads \udcff?"])
    one_line_error(result, "question is not valid UTF-8")


def test_a_context_past_the_model_window_is_refused_naming_the_budget(tiny_model_dir):
    from agent_cl.models.chat import ContextTooLongError
    from agent_cl.serving.local_backend import LocalBackend

    backend = LocalBackend(tiny_model_dir, torch_threads=1)
    long = [{"role": "user", "content": "word " * 600}]
    with pytest.raises(ContextTooLongError, match="reads at most 512"):
        backend.generate([long], max_new_tokens=8)
    assert backend.generate([[{"role": "user", "content": "hi"}]], max_new_tokens=2).texts


def test_a_cron_that_never_fires_is_shown_not_a_crash(home, monkeypatch):
    monkeypatch.setenv("AGENT_CL_DAEMON_CRON", "0 0 31 2 *")  # 31 February
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    assert "never" in result.output


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[agent-cl]\nservers = [1, 2]\n", "servers must be a list of URL strings"),
        ("[agent-cl]\nservers = 'http://x'\n", "setting servers"),
        ("[agent-cl]\ntorch_threads = 'two'\n", "setting torch_threads"),
        ("agent-cl = 3\n", "must be a table"),
    ],
)
def test_bad_settings_files_are_one_line(home, tmp_path, toml, expected):
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    one_line_error(runner.invoke(app, ["--config", str(path), "status"]), expected)


def test_a_config_that_is_binary_or_a_directory_is_one_line(home, tmp_path):
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe[agent-cl]\x00")
    one_line_error(runner.invoke(app, ["--config", str(binary), "status"]), "not valid TOML")
    one_line_error(runner.invoke(app, ["--config", str(tmp_path), "status"]), "cannot be read")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("AGENT_CL_HOME", "", "AGENT_CL_HOME is empty"),
        ("AGENT_CL_DAEMON_IDLE_MINUTES", "nan", "daemon_idle_minutes"),
        ("AGENT_CL_DAEMON_IDLE_MINUTES", "inf", "daemon_idle_minutes"),
        ("AGENT_CL_TORCH_THREADS", "two", "AGENT_CL_TORCH_THREADS"),
        ("AGENT_CL_GATE_MAX_KL_FROM_BASE", "0", "gate_max_kl_from_base"),
    ],
)
def test_bad_environment_values_are_one_line(home, monkeypatch, variable, value, expected):
    monkeypatch.setenv(variable, value)
    one_line_error(runner.invoke(app, ["status"]), expected)


@pytest.mark.parametrize(
    ("field", "value"), [("demonstration_ids", 5), ("method", ["x"]), ("gate", "passed")]
)
def test_a_manifest_field_of_the_wrong_type_names_the_file_and_repair(home, field, value):
    registry = AdapterRegistry(home / "adapters" / "default")
    version = registry.publish(fake_adapter(home / "src", "x"), {"method": "sft"})
    manifest = version.path / "manifest.json"
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), field: value}))
    one_line_error(runner.invoke(app, ["adapters", "list"]), "manifest.json", field, "repair")
    repaired = runner.invoke(app, ["adapters", "repair"])
    assert repaired.exit_code == 0 and "moved to" in repaired.output
    assert runner.invoke(app, ["adapters", "list"]).exit_code == 0


def test_odd_files_in_the_reports_folder_do_not_break_status(home):
    reports = home / "reports"
    (reports / "sleep-20260101T000000-dir.json").mkdir(parents=True)
    (reports / "sleep-20260102T000000-bin.json").write_bytes(b"\xff\x00")
    (reports / "sleep-20260103T000000-list.json").write_text("[1, 2]")
    (reports / "sleep-20260104T000000-gate.json").write_text(
        json.dumps({"tenant": "default", "status": "published", "gate": "yes"})
    )
    (reports / "notes.txt").write_text("hello")
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0, result.output
    assert "unreadable" in result.output  # the bad report is named in its cell, not a crash


def test_a_truncated_store_is_one_line(home, hash_embedder):
    from agent_cl.memory.chroma import ChromaDemonstrationStore
    from agent_cl.memory.schema import Demonstration

    with ChromaDemonstrationStore.open(home / "store", embedder=hash_embedder) as store:
        store.add([Demonstration(query="q?", answer="a.")])
    database = home / "store" / "chroma.sqlite3"
    database.write_bytes(database.read_bytes()[: database.stat().st_size // 3])
    one_line_error(runner.invoke(app, ["memory", "list"]), "store", "is corrupt", "backup")


def test_a_truncated_current_adapter_in_run_names_repair(home, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("AGENT_CL_MODEL_DIR", str(tiny_model_dir))
    registry = AdapterRegistry(home / "adapters" / "default")
    version = registry.publish(fake_adapter(home / "src", "x"))
    weights = version.path / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:20])
    one_line_error(runner.invoke(app, ["run", "Who?"]), "v1 cannot be served", "repair")


def test_memory_list_limit_below_one_is_refused(home):
    result = runner.invoke(app, ["memory", "list", "--limit", "-1"])
    assert result.exit_code == 2 and "Invalid value" in result.output
    assert "Traceback" not in result.output


# -- properties -------------------------------------------------------------------------------
NAME = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)


@given(NAME)
def test_tenant_names_are_accepted_exactly_when_the_rule_says(name):
    rule = (
        0 < len(name) <= TENANT_MAX_LENGTH
        and name.isascii()
        and name.replace("-", "").replace("_", "").isalnum()
    )
    try:
        accepted = Tenant(name) == name
    except ConfigError:
        accepted = False
    assert accepted == rule


NUMERIC = ["torch_threads", "adapter_keep", "sleep_replay", "daemon_poll_seconds", "store_port"]


@given(st.sampled_from(NUMERIC), st.text(max_size=12))
@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_any_environment_value_either_loads_or_is_a_config_error(monkeypatch, field, raw):
    monkeypatch.setenv(f"AGENT_CL_{field.upper()}", raw.replace("\x00", ""))
    with contextlib.suppress(ConfigError):  # anything else (TypeError...) fails the test
        Settings.load()


@given(st.text(max_size=40), st.text(max_size=6))
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_any_cli_arguments_end_in_exit_0_or_2(home, tenant, limit):
    for args in (["status", "--tenant", tenant], ["memory", "list", "--limit", limit]):
        result = runner.invoke(app, [a.replace("\x00", "") for a in args])
        assert result.exit_code in (0, 2), (args, result.output, result.exception)


def test_debug_shows_the_traceback_the_one_line_hides(home):
    from agent_cl.adapters.registry import UnknownAdapterVersionError

    one_line_error(runner.invoke(app, ["adapters", "rollback", "5"]), "version 5 does not exist")
    debug = runner.invoke(app, ["--debug", "adapters", "rollback", "5"])
    assert isinstance(debug.exception, UnknownAdapterVersionError)


def test_an_unexpected_error_is_one_line_with_exit_1(home, monkeypatch, capsys):
    import sys

    from agent_cl.cli import main
    from agent_cl.night import status

    def broken(*args, **kwargs):
        raise OSError("disk on fire")

    monkeypatch.setattr(status, "home_status", broken)
    monkeypatch.setattr(sys, "argv", ["agent-cl", "status"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "OSError: disk on fire" in err and "--debug" in err and "Traceback" not in err


def test_run_with_a_context_past_the_window_is_one_line(home, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("AGENT_CL_MODEL_DIR", str(tiny_model_dir))
    result = runner.invoke(app, ["run", "Who leads it?", "--context", "word " * 600])
    one_line_error(result, "tokens", "reads at most 512", "shorten the context")
