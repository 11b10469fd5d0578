"""A night, wired once: from `Settings` to each tenant's registry, paths and sleep job.

The CLI (`sleep`, `daemon`), the demo, the nights benchmark and the tests all build their
nights here from one `Settings`, so the adapter rules (rank ceiling, versions kept, base model:
`adapters.rules`), the on-disk layout, the swap hook and the gate defaults cannot drift apart
between them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from functools import cached_property
from typing import Any

from agent_cl.adapters.registry import AdapterRegistry, AdapterVersion
from agent_cl.adapters.rules import AdapterRules, rules_for
from agent_cl.config import Settings, Tenant
from agent_cl.durable import CorruptFileError
from agent_cl.memory.base import DemonstrationStore
from agent_cl.models.provision import resolve_model_dir
from agent_cl.night.plan import NightPlan
from agent_cl.night.scheduler import tenants_to_consolidate
from agent_cl.night.sleep import SleepAlreadyRunningError, SleepJob, SleepReport

log = logging.getLogger(__name__)

# (tenant, its registry) -> what to do with a freshly published version (e.g. swap servers)
PublishHook = Callable[[str, AdapterRegistry], Callable[[AdapterVersion], None] | None]


class Night:
    """Sleep jobs for every tenant of one `Settings` home."""

    def __init__(
        self,
        settings: Settings,
        store: DemonstrationStore,
        *,
        on_publish: PublishHook | None = None,
    ) -> None:
        """`on_publish` defaults to swapping every server in `settings.servers`."""
        self.settings = settings
        self.plan = NightPlan.from_settings(settings)
        self.store = store
        if on_publish is None and settings.servers:
            from agent_cl.serving.replicas import publish_hook_for

            on_publish = publish_hook_for(settings)
        self.on_publish = on_publish
        self.model_dir = resolve_model_dir(settings.model_dir, settings.models_dir)

    @cached_property
    def rules(self) -> AdapterRules:
        return rules_for(self.settings)

    def registry(self, tenant: str) -> AdapterRegistry:
        """The tenant's registry under the home's adapter rules."""
        return AdapterRegistry(self.settings.paths(tenant).adapters, self.rules)

    def job(self, tenant: str, **overrides: Any) -> SleepJob:
        """The tenant's sleep job; `overrides` set any other SleepJob field (held_out, check,
        on_step, on_publish, ...)."""
        tenant = Tenant(tenant)
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
            "replay_recent": self.plan.replay_recent,
            "steps_per_demo": self.plan.night_steps_per_demo,
            "replay_steps_per_demo": self.plan.replay_steps_per_demo,
            "max_demonstrations": self.plan.max_demos,
            "max_attempts": self.plan.max_attempts,
        }
        unknown = set(overrides) - {f.name for f in dataclasses.fields(SleepJob)}
        if unknown:
            raise TypeError(f"unknown SleepJob fields: {sorted(unknown)}")
        return SleepJob(**{**fields, **overrides})

    def tenants(self, only: str | None = None) -> list[str]:
        """Tenants with pending demonstrations or a killed run to resume, sorted."""
        if only is not None:
            return [Tenant(only)]
        return tenants_to_consolidate(self.store, unfinished=self.settings.unfinished_tenants())

    def check_servers(self) -> None:
        """Every configured server answers with the key (ServerUnreachableError otherwise):
        called before any tenant trains, so a dead server costs seconds, not a night."""
        if self.settings.servers and self.on_publish is not None:
            from agent_cl.serving.replicas import check_servers

            check_servers(self.settings)

    def run(self, only: str | None = None, **overrides: Any) -> list[SleepReport]:
        """One night: each tenant's sleep job in turn. A tenant that fails is logged and
        skipped, so one bad batch cannot starve the others; its report says why."""
        self.check_servers()
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


def open_night(settings: Settings, *, on_publish: PublishHook | None = None) -> Night:
    """A night over the store `settings` name (embedded Chroma, or `store_url`)."""
    from agent_cl.memory.chroma import ChromaDemonstrationStore

    NightPlan.from_settings(settings)  # a bad plan fails here, before the store opens
    store = ChromaDemonstrationStore.for_settings(settings)
    return Night(settings, store, on_publish=on_publish)


__all__ = ["Night", "NightPlan", "PublishHook", "open_night"]
