from __future__ import annotations

import json

import pytest

from agent_cl.serving.registry import (
    AdapterRegistry,
    InvalidAdapterError,
    UnknownAdapterVersionError,
)


def fake_adapter(path, marker: str):
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"r": 8, "marker": marker}))
    (path / "adapter_model.safetensors").write_bytes(marker.encode())
    return path


def test_publish_versions_and_current(tmp_path):
    registry = AdapterRegistry(tmp_path / "reg")
    assert registry.current() is None and registry.versions() == []
    v1 = registry.publish(fake_adapter(tmp_path / "a1", "one"), {"method": "sft"})
    v2 = registry.publish(fake_adapter(tmp_path / "a2", "two"))
    assert (v1.version, v2.version) == (1, 2)
    assert registry.current().version == 2
    assert registry.get(1).manifest["method"] == "sft"
    assert (registry.get(1).path / "adapter_model.safetensors").read_bytes() == b"one"
    # no temp directories left behind
    assert sorted(p.name for p in (tmp_path / "reg").iterdir()) == ["CURRENT", "v0001", "v0002"]


def test_rollback_to_previous_and_to_base(tmp_path):
    registry = AdapterRegistry(tmp_path / "reg")
    registry.publish(fake_adapter(tmp_path / "a1", "one"))
    registry.publish(fake_adapter(tmp_path / "a2", "two"))
    assert registry.rollback().version == 1
    assert registry.rollback() is None  # before v1 there is only the base model
    assert registry.current() is None
    assert registry.rollback(2).version == 2


def test_unknown_version_is_a_clear_error(tmp_path):
    registry = AdapterRegistry(tmp_path / "reg")
    registry.publish(fake_adapter(tmp_path / "a1", "one"))
    with pytest.raises(UnknownAdapterVersionError, match=r"version 7 does not exist.*\[1\]"):
        registry.get(7)
    with pytest.raises(UnknownAdapterVersionError):
        registry.rollback(0)
    assert registry.current().version == 1


def test_incomplete_adapter_is_never_published(tmp_path):
    registry = AdapterRegistry(tmp_path / "reg")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "adapter_config.json").write_text("{}")
    with pytest.raises(InvalidAdapterError, match=r"adapter_model\.safetensors"):
        registry.publish(bad)
    (bad / "adapter_model.safetensors").write_bytes(b"x")
    (bad / "adapter_config.json").write_text("{not json")
    with pytest.raises(InvalidAdapterError, match="not valid JSON"):
        registry.publish(bad)
    assert registry.versions() == [] and registry.current() is None
