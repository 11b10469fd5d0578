"""GPU path: training on CUDA (bf16 when asked for). Skips cleanly where there is no GPU (CI,
laptops)."""

from __future__ import annotations

import pytest
import torch

from agent_cl.consolidation.trainer import ConsolidationTrainer, resolve_device
from agent_cl.consolidation.training_config import ConsolidationConfig
from agent_cl.evals.facts import build_facts

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA GPU and `pip install -e .[gpu]` (vllm==0.32.0, CUDA torch 2.13.0)",
)


def test_auto_device_falls_back_to_cpu_fp32_without_a_gpu():
    device, dtype = resolve_device("auto", "auto")
    # fp32 on both: bf16 nights forgot more on an H200 (docs/results/long_run/README.md)
    assert resolve_device("auto", "bfloat16")[1] == "bfloat16"
    if torch.cuda.is_available():
        assert (device.type, dtype) == ("cuda", "float32")
    else:
        assert (device.type, dtype) == ("cpu", "float32")
        with pytest.raises(RuntimeError, match=r"\[gpu\] extra"):
            resolve_device("cuda", "auto")


@needs_cuda
def test_sdft_sft_trains_in_bf16_on_cuda(embedded_model_dir, tmp_path):
    demos = [f.demonstration() for f in build_facts(8, seed=0)]
    config = ConsolidationConfig(method="sdft_sft", steps=4, batch_size=4, dtype="bfloat16")
    trainer = ConsolidationTrainer(embedded_model_dir, config)
    assert (trainer.device.type, trainer.dtype) == ("cuda", "bfloat16")
    result = trainer.train(demos, tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    assert all(torch.isfinite(torch.tensor(r.loss)) for r in result.history)
