"""Fold an adapter into the base weights: a new base model version, served as the base after.

Why: after many nights the adapter lineage (N+1 from N) carries everything learnt; merging it
makes the next nights start from a plain model again (no LoRA overhead when serving, and a new
adapter of full rank budget). The merged directory is written like a provisioned model (temp
dir, fsync, rename) with a manifest naming its parent and the adapter, and a new weights
checksum, so registries refuse the old base's adapters on it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from agent_cl.durable import atomic_directory, atomic_write_json
from agent_cl.models.provision import MANIFEST, read_manifest, sha256_file

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def merge_adapter(model_dir: Path, adapter_dir: Path, out_dir: Path) -> Path:
    """Write base + adapter as one model to `out_dir` (must not exist); returns it."""
    from peft import PeftModel

    from agent_cl.adapters.validation import validate_adapter_dir
    from agent_cl.models.chat import load_causal_lm

    model_dir, adapter_dir, out_dir = Path(model_dir), Path(adapter_dir), Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} exists; merges never overwrite a model")
    validate_adapter_dir(adapter_dir, base_model_dir=model_dir)
    merged = PeftModel.from_pretrained(load_causal_lm(model_dir), adapter_dir).merge_and_unload()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with atomic_directory(out_dir) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        for name in _TOKENIZER_FILES:
            if (model_dir / name).exists():
                shutil.copy2(model_dir / name, tmp / name)
        parent = read_manifest(model_dir) or {}
        manifest = {
            "version": parent.get("version", 1),
            "name": out_dir.name,
            "merged_from": str(model_dir),
            "parent_weights_sha256": parent.get("weights_sha256"),
            "adapter": str(adapter_dir),
            "weights_sha256": sha256_file(tmp / "model.safetensors"),
        }
        atomic_write_json(tmp / MANIFEST, manifest)
    return out_dir
