"""What every serving backend offers; no backend imports here (vLLM, torch stay out)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from agent_cl.models.chat import ChatMessage


class AdapterLoadError(RuntimeError):
    """The backend refused an adapter; the previously served version keeps serving."""


@dataclass(frozen=True)
class GenerationResult:
    texts: list[str]
    adapter_version: int | None  # None: the base model answered


@runtime_checkable
class ModelBackend(Protocol):
    """A served model whose LoRA adapter can be replaced while requests are in flight.

    `swap` is the whole hot-swap contract: generations that started before it finish on the
    old weights, generations that start after it returns use the new ones, and a failed load
    leaves the old version serving.
    """

    def generate(
        self,
        conversations: Sequence[Sequence[ChatMessage]],
        *,
        max_new_tokens: int = 48,
        temperature: float = 0.0,
    ) -> GenerationResult: ...

    def swap(self, version: int | None, adapter_path: Path | None = None) -> None: ...

    @property
    def adapter_version(self) -> int | None: ...

    def health(self) -> dict: ...
