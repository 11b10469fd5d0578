"""Shared fixtures.

The embedded model is provisioned once into the user cache (idempotent, as `agent-cl init`
does); everything a test writes goes to its own tmp dir. Unit tests use a tiny randomly
initialised Llama that shares the embedded tokenizer, so prompts and chat templates are real.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from agent_cl.config import Settings


@pytest.fixture(scope="session")
def embedded_model_dir() -> Path:
    from agent_cl.models.provision import provision_embedded_model

    return provision_embedded_model(Settings.load().models_dir).path


@pytest.fixture(scope="session")
def tiny_model_dir(embedded_model_dir: Path, tmp_path_factory) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = tmp_path_factory.mktemp("tiny-llama")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=49152,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=2,
    )
    LlamaForCausalLM(config).save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(embedded_model_dir / name, out / name)
    return out


class HashEmbedder:
    """A deterministic bag-of-words embedder: cheap, offline, and similar texts score higher."""

    dimension = 64

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out = []
        for text in texts:
            vec = [0.0] * self.dimension
            for word in text.lower().split():
                digest = hashlib.sha256(word.strip("?.!,").encode()).digest()
                vec[digest[0] % self.dimension] += 1.0
            out.append(vec if any(vec) else [1.0] + [0.0] * (self.dimension - 1))
        return out


@pytest.fixture
def hash_embedder() -> HashEmbedder:
    return HashEmbedder()
