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


def validate_tenant(name: str) -> str:
    """A tenant name names directories and store filters: letters, digits, '-' and '_' only."""
    if (
        not isinstance(name, str)
        or not name
        or not name.replace("-", "").replace("_", "").isalnum()
    ):
        raise ConfigError(
            f"tenant must be a non-empty name of letters, digits, '-' or '_', got {name!r}"
        )
    return name


@dataclass(frozen=True)
class TenantPaths:
    """Where one tenant's night keeps its files: the one spelling of the on-disk layout."""

    adapters: Path  # the adapter registry (versions, CURRENT)
    sleep_state: Path  # the sleep job's journal, checkpoints and lock
    reports: Path  # one JSON report per night

    SLEEP_DIR = ".sleep"
    JOURNAL_FILE = "journal.json"


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
    adapter_max_rank: int = field(
        default=16, metadata={"help": "largest LoRA rank published (and served by vLLM)"}
    )
    adapter_keep: int = field(default=10, metadata={"help": "versions kept on disk for rollback"})
    store_url: str | None = field(
        default=None,
        metadata={
            "help": "Chroma server shared by several processes (`agent-cl memory serve`); "
            "default: the embedded store in <home>/store, one process at a time"
        },
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home).expanduser())
        if self.model_dir is not None:
            object.__setattr__(self, "model_dir", Path(self.model_dir).expanduser())
        if self.torch_threads < 1:
            raise ConfigError(f"torch_threads must be >= 1, got {self.torch_threads}")
        validate_tenant(self.tenant)
        if self.adapter_max_rank < 1:
            raise ConfigError(f"adapter_max_rank must be >= 1, got {self.adapter_max_rank}")
        if self.adapter_keep < 1:
            raise ConfigError(f"adapter_keep must be >= 1, got {self.adapter_keep}")
        if self.store_url is not None and not self.store_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"store_url must start with http:// or https://, got {self.store_url!r}"
            )

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def store_dir(self) -> Path:
        return self.home / "store"

    @property
    def adapters_dir(self) -> Path:
        return self.paths().adapters

    @property
    def adapters_root(self) -> Path:
        return self.home / "adapters"

    def paths(self, tenant: str | None = None) -> TenantPaths:
        """`tenant`'s directories (default: this settings' tenant)."""
        name = validate_tenant(tenant or self.tenant)
        adapters = self.adapters_root / name
        return TenantPaths(adapters, adapters / TenantPaths.SLEEP_DIR, self.reports_dir)

    def unfinished_tenants(self) -> tuple[str, ...]:
        """Tenants whose last sleep run was killed: a journal is still in their sleep state."""
        pattern = f"*/{TenantPaths.SLEEP_DIR}/{TenantPaths.JOURNAL_FILE}"
        return tuple(sorted(p.parents[1].name for p in self.adapters_root.glob(pattern)))

    def known_tenants(self) -> tuple[str, ...]:
        """This settings' tenant and every tenant with an adapter directory, sorted."""
        found = {self.tenant}
        if self.adapters_root.is_dir():
            for child in self.adapters_root.iterdir():
                try:
                    found.add(validate_tenant(child.name))
                except ConfigError:
                    continue  # not a tenant directory
        return tuple(sorted(found))

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
