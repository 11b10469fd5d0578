"""A night, wired once: from `Settings` to each tenant's registry, paths and sleep job.

The CLI (`sleep`, `daemon`), the demo, the nights benchmark and the tests all build their
nights here, so the registry policy (rank ceiling, versions kept, base-model checksum), the
on-disk layout and the gate defaults cannot drift apart between them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from agent_cl.config import Settings, validate_tenant
from agent_cl.consolidation.config import DEFAULT_METHOD, ConsolidationConfig
from agent_cl.consolidation.gate import GateConfig
from agent_cl.consolidation.scheduler import tenants_to_consolidate
from agent_cl.consolidation.sleep import SleepAlreadyRunningError, SleepJob, SleepReport
from agent_cl.durable import CorruptFileError
from agent_cl.memory.base import DemonstrationStore
from agent_cl.models.provision import read_manifest, resolve_model_dir
from agent_cl.serving.registry import AdapterRegistry, AdapterVersion

log = logging.getLogger(__name__)

# (tenant, its registry) -> what to do with a freshly published version (e.g. swap servers)
PublishHook = Callable[[str, AdapterRegistry], Callable[[AdapterVersion], None] | None]


@dataclass(frozen=True)
class NightPlan:
    """What each night does; validated on construction, before any model loads."""

    method: str = DEFAULT_METHOD
    steps: int | None = None  # None: `steps_per_demo` x the demonstrations the night claims
    steps_per_demo: int = 8  # the budget the default recipe was measured at
    gate: bool = True
    max_retention_drop: float | None = None  # None: GateConfig's default
    max_kl_from_base: float | None = None  # None: GateConfig's default
    replay: int = 0  # consolidated demonstrations mixed into each night's training
    checkpoint_every: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.replay < 0:
            raise ValueError(f"replay must be >= 0, got {self.replay}")
        if self.steps_per_demo < 1:
            raise ValueError(f"steps_per_demo must be >= 1, got {self.steps_per_demo}")
        if self.checkpoint_every < 0:
            raise ValueError(f"checkpoint_every must be >= 0, got {self.checkpoint_every}")
        self.consolidation()
        self.gate_config()

    def consolidation(self) -> ConsolidationConfig:
        steps = {} if self.steps is None else {"steps": self.steps}
        return ConsolidationConfig(method=self.method, seed=self.seed, **steps)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> NightPlan:
        """The plan `agent-cl.toml` / AGENT_CL_* describe; `overrides` (command-line options)
        that are not None win."""
        values = {
            "method": settings.sleep_method or DEFAULT_METHOD,
            "steps": settings.sleep_steps,
            "steps_per_demo": settings.sleep_steps_per_demo,
            "gate": settings.gate_enabled,
            "max_retention_drop": settings.gate_max_retention_drop,
            "max_kl_from_base": settings.gate_max_kl_from_base,
            "replay": settings.sleep_replay,
            "checkpoint_every": settings.sleep_checkpoint_every,
            "seed": settings.seed,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def gate_config(self) -> GateConfig | None:
        if not self.gate:
            return None
        given = {
            "max_retention_drop": self.max_retention_drop,
            "max_kl_from_base": self.max_kl_from_base,
        }
        return GateConfig(**{k: v for k, v in given.items() if v is not None})


class Night:
    """Sleep jobs for every tenant of one `Settings` home."""

    def __init__(
        self,
        settings: Settings,
        plan: NightPlan,
        store: DemonstrationStore,
        *,
        on_publish: PublishHook | None = None,
    ) -> None:
        self.settings = settings
        self.plan = plan
        self.store = store
        self.on_publish = on_publish
        self.model_dir = resolve_model_dir(settings.model_dir, settings.models_dir)

    @cached_property
    def base_model_sha256(self) -> str | None:
        return (read_manifest(self.model_dir) or {}).get("weights_sha256")

    def registry(self, tenant: str) -> AdapterRegistry:
        """The tenant's registry, refusing adapters the server could not load (rank above
        `adapter_max_rank`) or that belong to another base model; `adapter_keep` versions stay."""
        return AdapterRegistry(
            self.settings.paths(tenant).adapters,
            max_rank=self.settings.adapter_max_rank,
            base_model_sha256=self.base_model_sha256,
            keep=self.settings.adapter_keep,
        )

    def job(self, tenant: str, **overrides: Any) -> SleepJob:
        """The tenant's sleep job; `overrides` set any other SleepJob field (held_out, check,
        on_step, on_publish, ...)."""
        validate_tenant(tenant)
        registry = self.registry(tenant)
        paths = self.settings.paths(tenant)
        on_publish = self.on_publish(tenant, registry) if self.on_publish else None
        fields: dict[str, Any] = {
            "store": self.store,
            "registry": registry,
            "model_dir": self.model_dir,
            "config": self.plan.consolidation(),
            "tenant": tenant,
            "state_dir": paths.sleep_state,
            "gate": self.plan.gate_config(),
            "on_publish": on_publish,
            "reports_dir": paths.reports,
            "torch_threads": self.settings.torch_threads,
            "checkpoint_every": self.plan.checkpoint_every,
            "replay": self.plan.replay,
            "steps_per_demo": None if self.plan.steps is not None else self.plan.steps_per_demo,
        }
        unknown = set(overrides) - {f.name for f in dataclasses.fields(SleepJob)}
        if unknown:
            raise TypeError(f"unknown SleepJob fields: {sorted(unknown)}")
        return SleepJob(**{**fields, **overrides})

    def tenants(self, only: str | None = None) -> list[str]:
        """Tenants with pending demonstrations or a killed run to resume, sorted."""
        if only is not None:
            return [validate_tenant(only)]
        return tenants_to_consolidate(self.store, unfinished=self.settings.unfinished_tenants())

    def run(self, only: str | None = None, **overrides: Any) -> list[SleepReport]:
        """One night: each tenant's sleep job in turn. A tenant that fails is logged and
        skipped, so one bad batch cannot starve the others; its report says why."""
        reports = []
        for tenant in self.tenants(only):
            try:
                reports.append(self.job(tenant, **overrides).run())
            except SleepAlreadyRunningError as exc:
                log.warning("%s", exc)
            except CorruptFileError as exc:  # the message names the file and the fix
                log.error("sleep for tenant %s cannot start: %s", tenant, exc)
                reports.append(self._failed(tenant, str(exc)))
            except Exception as exc:
                log.exception("sleep for tenant %s failed", tenant)
                reports.append(self._failed(tenant, f"{type(exc).__name__}: {exc}"))
        return reports

    def _failed(self, tenant: str, error: str) -> SleepReport:
        return SleepReport("", tenant, "failed", self.plan.method, error=error)


def open_night(
    settings: Settings, plan: NightPlan, *, on_publish: PublishHook | None = None
) -> Night:
    """A night over the store in `settings.home` (the embedded Chroma store)."""
    from agent_cl.memory.chroma import ChromaDemonstrationStore

    store = ChromaDemonstrationStore.for_settings(settings)
    return Night(settings, plan, store, on_publish=on_publish)


__all__ = ["Night", "NightPlan", "PublishHook", "open_night"]
