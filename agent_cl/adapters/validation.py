"""Adapter validation: the checks a LoRA adapter directory must pass before anything loads it.

Callers do not use these directly but through `rules.AdapterRules`, which knows the served
rank ceiling and the base model, so the registry (on publish and repair), both backends (on
every load) and `merge.py` apply the same checks with the same limits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REQUIRED_ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


class InvalidAdapterError(ValueError):
    """An adapter directory that must never reach a backend."""


def validate_adapter_dir(
    adapter_dir: Path, *, max_rank: int | None = None, base_model_dir: Path | None = None
) -> dict[str, Any]:
    """Refuse what must never reach a backend: missing or unreadable files, a rank above what
    the server was started with, NaN/inf weights, tensors shaped for another base model (given
    `base_model_dir`). Returns the adapter config."""
    path = Path(adapter_dir)
    if not path.is_dir():
        raise InvalidAdapterError(f"{path} is not a directory")
    missing = [name for name in REQUIRED_ADAPTER_FILES if not (path / name).is_file()]
    if missing:
        raise InvalidAdapterError(f"{path} lacks {missing}")
    try:
        config = json.loads((path / "adapter_config.json").read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidAdapterError(f"{path}/adapter_config.json is not valid JSON: {exc}") from exc
    if not isinstance(config, dict) or not isinstance(config.get("rank_pattern") or {}, dict):
        raise InvalidAdapterError(f"{path}/adapter_config.json is not an adapter config")
    ranks = [config.get("r") or 0, *(config.get("rank_pattern") or {}).values()]
    if not all(isinstance(r, int) and not isinstance(r, bool) for r in ranks):
        raise InvalidAdapterError(f"{path}/adapter_config.json: LoRA ranks must be integers")
    if max_rank is not None and max(ranks) > max_rank:
        raise InvalidAdapterError(f"{path} has LoRA rank {max(ranks)} > the maximum {max_rank}")
    tensors = _check_weights(path / "adapter_model.safetensors")
    if base_model_dir is not None:
        _check_fits_base(tensors, Path(base_model_dir), path)
    return config


def _check_fits_base(tensors: dict, base_model_dir: Path, path: Path) -> None:
    """Every LoRA factor's outer dimension must be one of the base model's layer widths."""
    cfg = json.loads((base_model_dir / "config.json").read_text())
    heads = cfg.get("num_attention_heads") or 1
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // heads
    widths = {
        cfg["hidden_size"],
        cfg.get("intermediate_size"),
        heads * head_dim,
        (cfg.get("num_key_value_heads") or heads) * head_dim,
    }
    for name, tensor in tensors.items():
        outer = tensor.shape[1] if "lora_A" in name else tensor.shape[0]
        if ("lora_A" in name or "lora_B" in name) and outer not in widths:
            raise InvalidAdapterError(
                f"{path} was trained on another base model: {name} has width {outer}, "
                f"{base_model_dir.name} has layer widths {sorted(w for w in widths if w)}"
            )


def _check_weights(weights: Path) -> dict:
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        tensors = load_file(weights)
    except (SafetensorError, OSError, ValueError) as exc:
        raise InvalidAdapterError(f"{weights} is not a readable safetensors file: {exc}") from exc
    if not tensors:
        raise InvalidAdapterError(f"{weights} holds no tensors")
    bad = [name for name, t in tensors.items() if not bool(torch.isfinite(t).all())]
    if bad:
        raise InvalidAdapterError(f"{weights} has NaN/inf in {len(bad)} tensors, e.g. {bad[0]}")
    return tensors


def check_base_model(manifest: dict[str, Any], expected_sha256: str | None) -> None:
    """An adapter trained on another base model must not be served on this one."""
    found = manifest.get("base_model_sha256")
    if expected_sha256 and found and found != expected_sha256:
        raise InvalidAdapterError(
            f"adapter was trained on base model {found[:12]}..., "
            f"this registry serves {expected_sha256[:12]}..."
        )
