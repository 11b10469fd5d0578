from __future__ import annotations

import pytest

from agent_cl.adapters.registry import AdapterRegistry, UnknownAdapterVersionError
from agent_cl.adapters.rules import AdapterRules
from agent_cl.adapters.validation import InvalidAdapterError
from tests.adapters import fake_adapter, marker


def test_publish_versions_and_current(tmp_path):
    registry = AdapterRegistry(tmp_path / "reg")
    assert registry.current() is None and registry.versions() == []
    v1 = registry.publish(fake_adapter(tmp_path / "a1", "one"), {"method": "sft"})
    v2 = registry.publish(fake_adapter(tmp_path / "a2", "two"))
    assert (v1.version, v2.version) == (1, 2)
    assert registry.current().version == 2
    assert registry.get(1).manifest["method"] == "sft"
    assert marker(registry.get(1).path) == "one"
    # no temp directories left behind
    names = sorted(p.name for p in (tmp_path / "reg").iterdir())
    assert names == ["CURRENT", "CURRENT.history.json", "v0001", "v0002"]


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


@pytest.mark.parametrize(
    ("kwargs", "adapter", "message"),
    [
        ({"max_rank": 8}, {"r": 16}, "rank 16 > the maximum 8"),
        ({}, {"fill": float("nan")}, "NaN/inf"),
        ({}, {"fill": float("inf")}, "NaN/inf"),
    ],
)
def test_bad_adapters_are_refused_before_publish(tmp_path, kwargs, adapter, message):
    registry = AdapterRegistry(tmp_path / "reg", AdapterRules(**kwargs))
    registry.publish(fake_adapter(tmp_path / "good", "good"))
    with pytest.raises(InvalidAdapterError, match=message):
        registry.publish(fake_adapter(tmp_path / "bad", "bad", **adapter))
    assert [v.version for v in registry.versions()] == [1] and registry.current().version == 1


def test_adapter_of_another_base_model_is_refused(tmp_path):
    registry = AdapterRegistry(tmp_path / "reg", AdapterRules(base_model_sha256="a" * 64))
    with pytest.raises(InvalidAdapterError, match="trained on base model bbbb"):
        registry.publish(fake_adapter(tmp_path / "x", "x"), {"base_model_sha256": "b" * 64})
    registry.publish(fake_adapter(tmp_path / "y", "y"), {"base_model_sha256": "a" * 64})
    assert registry.current().version == 1


def test_keep_prunes_old_versions_but_never_the_current_one(tmp_path):
    registry = AdapterRegistry(tmp_path / "reg", AdapterRules(keep=2))
    for i in range(4):
        registry.publish(fake_adapter(tmp_path / f"a{i}", str(i)))
    assert [v.version for v in registry.versions()] == [3, 4]
    registry.rollback(3)
    registry.rules = AdapterRules(keep=1)
    assert registry.prune() == [] or registry.current().version == 3
    assert registry.current().version == 3 and registry.get(3)


def test_find_run_and_stale_temp_dirs(tmp_path):
    registry = AdapterRegistry(tmp_path / "reg")
    registry.publish(fake_adapter(tmp_path / "a", "a"), {"run_id": "r1"})
    assert registry.find_run("r1").version == 1 and registry.find_run("r2") is None
    stale = tmp_path / "reg" / ".v0002.partial-dead"  # what a killed publish leaves
    stale.mkdir()
    registry.publish(fake_adapter(tmp_path / "b", "b"))
    assert not stale.exists()


def test_adapter_shaped_for_another_base_model_is_refused(tmp_path, embedded_model_dir):
    from agent_cl.adapters.validation import validate_adapter_dir

    foreign = fake_adapter(tmp_path / "foreign", "f")  # 4-wide factors: no such layer here
    with pytest.raises(InvalidAdapterError, match="another base model"):
        validate_adapter_dir(foreign, base_model_dir=embedded_model_dir)
    validate_adapter_dir(foreign)  # without a base to compare with, shape is not checked
