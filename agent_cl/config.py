"""Settings shared by every part of agent-cl.

One frozen dataclass, read from an optional `agent-cl.toml` and overridden by `AGENT_CL_*`
environment variables, so a laptop, CI and a server all configure the same object the same way.
Environment variables win over the file because operators change them per process.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "AGENT_CL_"
DEFAULT_HOME = Path.home() / ".cache" / "agent-cl"


class ConfigError(ValueError):
    """Raised when a setting has a value agent-cl cannot use."""


@dataclass(frozen=True)
class Settings:
    """Where agent-cl keeps its state and how it uses this machine.

    Parameters that control storage:
        home: data directory holding the provisioned model, the Chroma store, the adapter
            registry and job reports.
    Parameters that control compute:
        torch_threads: threads torch may use. Two heavy processes each using every core slowed
            generation and training 3-15x on a 2-core machine (measured), so we set it on purpose.
        seed: seed for sampling and data order.
    """

    home: Path = field(default=DEFAULT_HOME, metadata={"help": "data directory"})
    model_dir: Path | None = field(
        default=None,
        metadata={"help": "HF model directory to use; default: the provisioned embedded model"},
    )
    tenant: str = field(default="default", metadata={"help": "agent whose demonstrations we use"})
    torch_threads: int = field(default=2, metadata={"help": "torch intra-op threads"})
    seed: int = field(default=0, metadata={"help": "random seed"})

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).expanduser())
        if self.model_dir is not None:
            object.__setattr__(self, "model_dir", Path(self.model_dir).expanduser())
        if self.torch_threads < 1:
            raise ConfigError(f"torch_threads must be >= 1, got {self.torch_threads}")
        if not self.tenant or not self.tenant.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(
                "tenant must be a non-empty name of letters, digits, '-' or '_', "
                f"got {self.tenant!r}"
            )

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def store_dir(self) -> Path:
        return self.home / "store"

    @property
    def adapters_dir(self) -> Path:
        return self.home / "adapters" / self.tenant

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"

    @classmethod
    def load(cls, path: Path | None = None, **overrides: Any) -> Settings:
        """Build settings from `agent-cl.toml` (if present), then env vars, then overrides."""
        values: dict[str, Any] = {}
        toml_path = path or Path("agent-cl.toml")
        if toml_path.exists():
            with toml_path.open("rb") as fh:
                values.update(tomllib.load(fh).get("agent-cl", {}))
        elif path is not None:
            raise ConfigError(f"config file {path} does not exist")
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(values) - set(known)
        if unknown:
            raise ConfigError(f"unknown settings in {toml_path}: {sorted(unknown)}")
        for name, fld in known.items():
            raw = os.environ.get(ENV_PREFIX + name.upper())
            if raw is not None:
                values[name] = _coerce(raw, fld.type, name)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _coerce(raw: str, annotation: Any, name: str) -> Any:
    text = str(annotation)
    try:
        if text.startswith("int"):
            return int(raw)
        if "Path" in text:
            return Path(raw) if raw else None
    except ValueError as exc:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}={raw!r} is not a valid {text}") from exc
    return raw
