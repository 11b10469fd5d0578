"""The in-process backend: transformers + peft in this Python process (the laptop path, CI's).

One base model stays in memory; adapters are loaded into it by name with peft. A swap takes the
write side of a readers-writer lock, so generations already running finish on the old adapter
before the new one becomes active, and none starts half-way through a swap.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from pathlib import Path

from agent_cl.adapters.rules import AdapterRules
from agent_cl.adapters.validation import InvalidAdapterError
from agent_cl.models.chat import (
    ChatMessage,
    generate_batch,
    load_causal_lm,
    load_tokenizer,
    set_torch_threads,
)
from agent_cl.serving.backend import AdapterLoadError, GenerationResult
from agent_cl.serving.rwlock import ReadWriteLock


def _adapter_name(version: int) -> str:
    return f"v{version}"


class LocalBackend:
    def __init__(
        self,
        model_dir: Path,
        *,
        torch_threads: int = 2,
        dtype: str = "float32",
        rules: AdapterRules | None = None,
    ) -> None:
        set_torch_threads(torch_threads)
        self.rules = rules or AdapterRules()  # every swap checks the adapter against these
        self.model_dir = Path(model_dir)
        self.tokenizer = load_tokenizer(self.model_dir)
        self._base = load_causal_lm(self.model_dir, dtype=dtype)
        self._peft = None  # PeftModel wrapping _base once the first adapter arrives
        self._version: int | None = None
        self._lock = ReadWriteLock()
        self._requests = 0
        self._count_lock = threading.Lock()

    @property
    def adapter_version(self) -> int | None:
        return self._version

    def generate(
        self,
        conversations: Sequence[Sequence[ChatMessage]],
        *,
        max_new_tokens: int = 48,
        temperature: float = 0.0,
    ) -> GenerationResult:
        if not conversations:
            raise ValueError("generate needs at least one conversation")
        for conv in conversations:
            if not conv or not any(m["content"].strip() for m in conv if m["role"] == "user"):
                raise ValueError("each conversation needs a non-empty user message")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        with self._lock.read():
            version = self._version
            model = self._peft if (self._peft is not None and version is not None) else self._base
            texts = self._generate_with(model, conversations, max_new_tokens, temperature)
        with self._count_lock:
            self._requests += len(conversations)
        return GenerationResult(texts, version)

    def _generate_with(self, model, conversations, max_new_tokens, temperature) -> list[str]:
        if model is self._base and self._peft is not None:
            # LoRA layers are injected into the base modules: serve the base with them off.
            with self._peft.disable_adapter():
                return generate_batch(
                    self._base,
                    self.tokenizer,
                    conversations,
                    max_new_tokens=max_new_tokens,
                    temperature=temperature,
                )
        return generate_batch(
            model,
            self.tokenizer,
            conversations,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
        )

    def swap(self, version: int | None, adapter_path: Path | None = None) -> None:
        """Serve adapter `version` from `adapter_path` (None: the base model)."""
        if version is not None and adapter_path is None:
            raise ValueError("swap to an adapter version needs its adapter_path")
        if adapter_path is not None:
            try:
                self.rules.check(Path(adapter_path))
            except InvalidAdapterError as exc:
                raise AdapterLoadError(str(exc)) from exc
        with self._lock.write():
            if version is not None:
                self._activate(version, Path(adapter_path))
            self._version = version

    def _activate(self, version: int, path: Path) -> None:
        """Make adapter `version` active; keep only it loaded (versions are immutable)."""
        from peft import PeftModel

        name = _adapter_name(version)
        try:
            if self._peft is None:
                self._peft = PeftModel.from_pretrained(self._base, path, adapter_name=name)
            elif name not in self._peft.peft_config:
                self._peft.load_adapter(path, adapter_name=name)
            self._peft.set_adapter(name)
            self._peft.eval()
        except Exception as exc:
            if self._peft is not None:
                if name in self._peft.peft_config and name != self._loaded_name():
                    with contextlib.suppress(Exception):  # drop a half-loaded adapter
                        self._peft.delete_adapter(name)
                if self._version is not None:
                    self._peft.set_adapter(_adapter_name(self._version))
            raise AdapterLoadError(f"could not load adapter v{version} from {path}: {exc}") from exc
        for other in list(self._peft.peft_config):
            if other != name:
                self._peft.delete_adapter(other)

    def _loaded_name(self) -> str | None:
        return None if self._version is None else _adapter_name(self._version)

    def health(self) -> dict:
        return {
            "status": "ok",
            "backend": "local",
            "model_dir": str(self.model_dir),
            "adapter_version": self._version,
            "requests": self._requests,
        }
