from __future__ import annotations

import pytest


def test_merge_folds_the_adapter_into_a_new_base(tiny_model_dir, tmp_path):
    import torch

    from agent_cl.adapters.merge import merge_adapter
    from agent_cl.consolidation.trainer import ConsolidationTrainer
    from agent_cl.consolidation.training_config import ConsolidationConfig
    from agent_cl.memory.schema import Demonstration
    from agent_cl.models.chat import load_causal_lm
    from agent_cl.models.provision import read_manifest

    config = ConsolidationConfig(method="sft", steps=3, batch_size=1, learning_rate=1e-2)
    trainer = ConsolidationTrainer(tiny_model_dir, config, torch_threads=1)
    trainer.train([Demonstration(query="q", answer="a b c")], tmp_path / "adapter")
    merged_dir = merge_adapter(tiny_model_dir, tmp_path / "adapter", tmp_path / "merged")
    ids = torch.tensor([[1, 5, 9, 200, 3000]])
    with torch.no_grad():
        expected = trainer.model(input_ids=ids).logits
        merged = load_causal_lm(merged_dir)(input_ids=ids).logits
        base = load_causal_lm(tiny_model_dir)(input_ids=ids).logits
    assert torch.allclose(merged, expected, atol=1e-4)
    assert not torch.allclose(merged, base, atol=1e-4)  # the adapter did change something
    assert read_manifest(merged_dir)["merged_from"] == str(tiny_model_dir)
    with pytest.raises(FileExistsError):
        merge_adapter(tiny_model_dir, tmp_path / "adapter", merged_dir)
