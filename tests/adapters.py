"""Small adapter directories for registry tests: real safetensors, arbitrary contents."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file


def fake_adapter(path: Path, marker: str, *, r: int = 8, fill: float = 0.5) -> Path:
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"r": r, "marker": marker}))
    save_file({"lora_A.weight": torch.full((r, 4), fill)}, str(path / "adapter_model.safetensors"))
    return path


def marker(path: Path) -> str:
    return json.loads((Path(path) / "adapter_config.json").read_text())["marker"]
