"""Where a home stands, per tenant: the version the registry serves, what each configured server
answers with, what is pending, the last night's decision, and when the next night is due.

The CLI's `status` prints this; the morning report renders it. Every cell that cannot be read
says why (a locked store, an unreachable server) instead of failing the whole view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from agent_cl.adapters.registry import AdapterRegistry, registry_for
from agent_cl.adapters.rules import rules_for
from agent_cl.config import Settings, Tenant, vllm_api_key
from agent_cl.durable import LockedError
from agent_cl.night.reports import last_report


@dataclass(frozen=True)
class TenantStatus:
    tenant: str
    current: str  # "base" or "v3"
    served: str  # per configured server, or "-" without servers
    pending: int | str  # a count, or why it is unknown ("locked")
    last_night: str


@dataclass(frozen=True)
class HomeStatus:
    home: Path
    model_dir: Path
    model_ready: bool
    store: str
    next_night: str
    tenants: list[TenantStatus] = field(default_factory=list)


def home_status(settings: Settings, only: str | None = None) -> HomeStatus:
    """The status of every known tenant (or only `only`)."""
    from agent_cl.models.provision import embedded_model_dir, read_manifest

    model_dir = settings.model_dir or embedded_model_dir(settings.models_dir)
    ready = read_manifest(model_dir) is not None or (model_dir / "config.json").exists()
    pending = pending_counts(settings)
    names = [Tenant(only)] if only else sorted({*settings.known_tenants(), *pending})
    rules = rules_for(settings)
    rows = [
        TenantStatus(
            tenant=name,
            current=_current(registry_for(settings, name, rules)),
            served=served_by_servers(settings, name),
            pending=pending.get(name, 0),
            last_night=last_night(settings, name),
        )
        for name in names
    ]
    store = settings.store_url or str(settings.store_dir)
    return HomeStatus(settings.home, model_dir, ready, store, next_night(settings), rows)


def _current(registry: AdapterRegistry) -> str:
    current = registry.current()
    return "base" if current is None else f"v{current.version}"


def pending_counts(settings: Settings) -> dict[str, int | str]:
    """Pending demonstrations per tenant; "locked" while another process has the store."""
    from agent_cl.memory.chroma import ChromaDemonstrationStore
    from agent_cl.memory.schema import DemoStatus

    try:
        with ChromaDemonstrationStore.for_settings(settings) as store:
            counts: dict[str, int | str] = {}
            for demo in store.list(status=DemoStatus.PENDING):
                counts[demo.tenant] = int(counts.get(demo.tenant, 0)) + 1
            return counts
    except LockedError:
        return {t: "locked" for t in settings.known_tenants()}


def served_by_servers(settings: Settings, tenant: str) -> str:
    """What each configured server answers `tenant`'s stable name with (sending the key)."""
    if not settings.servers:
        return "-"
    from agent_cl.serving.vllm_backend import VLLMBackend

    answers = []
    for url in settings.servers:
        try:
            backend = VLLMBackend(url, tenant=tenant, api_key=vllm_api_key())
            try:
                answers.append(backend.aliases().get(backend.current_model, "-"))
            finally:
                backend.close()
        except Exception as exc:  # a dead server is a cell in the table, not a crash
            answers.append(f"unreachable ({type(exc).__name__})")
    return ", ".join(answers)


def last_night(settings: Settings, tenant: str) -> str:
    found = last_report(settings.reports_dir, tenant)
    if found is None or found.data is None:
        return "never"
    report, gate = found.data, found.data.get("gate") or {}
    if not isinstance(gate, dict):
        return f"{found.finished} {report.get('status')} (unreadable gate in {found.path.name})"
    if not gate:
        verdict = "no gate"
    elif gate.get("reason") == "gate disabled":
        verdict = "gate off"
    elif gate.get("passed"):
        verdict = "gate passed"
    else:
        verdict = f"rejected: {gate.get('reason')}"
    return f"{found.finished} {report.get('status')} ({verdict})"


def next_night(settings: Settings) -> str:
    from agent_cl.night.scheduler import Triggers

    try:
        triggers = Triggers.from_settings(settings)
    except ValueError:
        return "not scheduled (set daemon_cron, daemon_min_pending or daemon_idle_minutes)"
    parts = []
    if triggers.cron:
        when = triggers.next_cron_time()
        shown = f"{when:%Y-%m-%d %H:%M %Z}" if when is not None else "never (it matches no date)"
        parts.append(f"{shown} (cron {triggers.cron})")
    if triggers.min_pending:
        parts.append(f"when {triggers.min_pending} are pending")
    if triggers.idle_minutes:
        parts.append(f"after {triggers.idle_minutes} idle minutes")
    return " or ".join(parts)
