"""The one owner of what an adapter must pass before it is published or served.

Built once from `Settings` (`rules_for`) and handed to every registry and backend: the rank
ceiling the server was started with, the base model an adapter must fit (tensor widths and the
weights' checksum), and how many versions stay on disk. A rule checked in one place and not in
another is how a rank-64 adapter reached a server that then failed its first request.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_cl.adapters.validation import (
    InvalidAdapterError,
    check_base_model,
    validate_adapter_dir,
)
from agent_cl.config import Settings
from agent_cl.durable import read_json


@dataclass(frozen=True)
class AdapterRules:
    """`None` fields check nothing: a bare `AdapterRules()` is the permissive rule set tests
    and scratch registries use; the product builds its rules with `rules_for(settings)`."""

    max_rank: int | None = None
    base_model_dir: Path | None = None
    base_model_sha256: str | None = None
    keep: int | None = None

    def __post_init__(self) -> None:
        if self.keep is not None and self.keep < 1:
            raise ValueError(f"keep must be >= 1, got {self.keep}")
        if self.max_rank is not None and self.max_rank < 1:
            raise ValueError(f"max_rank must be >= 1, got {self.max_rank}")

    def check(self, adapter_dir: Path, manifest: dict[str, Any] | None = None) -> dict[str, Any]:
        """Raise InvalidAdapterError unless `adapter_dir` may be served on this base model;
        `manifest` (default: the version's own manifest.json, when present) names the base it
        was trained on. Returns the adapter config."""
        config = validate_adapter_dir(
            adapter_dir, max_rank=self.max_rank, base_model_dir=self.base_model_dir
        )
        if manifest is None:
            manifest = _manifest_of(Path(adapter_dir))
        check_base_model(manifest, self.base_model_sha256)
        return config


def _manifest_of(adapter_dir: Path) -> dict[str, Any]:
    try:
        found = read_json(adapter_dir / "manifest.json", fix="see `agent-cl adapters repair`")
    except FileNotFoundError:
        return {}
    except Exception as exc:
        raise InvalidAdapterError(f"{adapter_dir}/manifest.json unreadable: {exc}") from exc
    if not isinstance(found, dict):
        raise InvalidAdapterError(f"{adapter_dir}/manifest.json is not a JSON object")
    return found


def rules_for(settings: Settings) -> AdapterRules:
    """The rules of `settings`' home: its rank ceiling, versions kept and base model."""
    from agent_cl.models.provision import (
        ModelNotProvisionedError,
        read_manifest,
        resolve_model_dir,
    )

    try:
        model_dir = resolve_model_dir(settings.model_dir, settings.models_dir)
    except ModelNotProvisionedError:  # nothing can be served yet; shapes cannot be checked
        model_dir = None
    sha = (read_manifest(model_dir) or {}).get("weights_sha256") if model_dir else None
    return AdapterRules(
        max_rank=settings.adapter_max_rank,
        base_model_dir=model_dir,
        base_model_sha256=sha,
        keep=settings.adapter_keep,
    )
