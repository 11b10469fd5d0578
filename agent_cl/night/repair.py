"""`agent-cl adapters repair`: put a tenant's night files back in a state a night can start from.

Damaged versions and a damaged `CURRENT` are the registry's to fix (`AdapterRegistry.repair`).
A damaged journal cannot say which run claimed what, so every claim of the tenant goes back to
pending (a demonstration already in a published adapter is trained once more: time, not data,
is lost). The claims are released *before* the journal is set aside: if the store is locked the
release fails, the journal stays, and the next repair tries again; the other order left
demonstrations `claimed` for ever.
"""

from __future__ import annotations

from agent_cl.adapters.registry import registry_for
from agent_cl.config import Settings, Tenant
from agent_cl.durable import CorruptFileError
from agent_cl.memory.base import DemonstrationStore
from agent_cl.memory.schema import DemoStatus
from agent_cl.night.journal import Journal


def repair_tenant(
    settings: Settings, tenant: str | None = None, store: DemonstrationStore | None = None
) -> list[str]:
    """Repair `tenant` (default: the settings' tenant); returns what was done, one line each.
    `store` defaults to the one `settings` name, opened only when claims must be released."""
    tenant = Tenant(tenant or settings.tenant)
    registry = registry_for(settings, tenant)
    done = registry.repair()
    journal = Journal(settings.paths(tenant).sleep_state)
    try:
        journal.load()
    except CorruptFileError:
        with registry.lock():
            released = _release_claims(settings, tenant, store)
            aside = journal.set_aside()
        done.append(f"journal: moved to {aside}; {released} claimed demonstrations pending")
    return done


def _release_claims(settings: Settings, tenant: Tenant, store: DemonstrationStore | None) -> int:
    if store is None:
        from agent_cl.memory.chroma import ChromaDemonstrationStore

        with ChromaDemonstrationStore.for_settings(settings) as opened:
            return _release_claims(settings, tenant, opened)
    claimed = store.list(tenant=tenant, status=DemoStatus.CLAIMED)
    store.set_status([d.id for d in claimed], DemoStatus.PENDING, tenant=tenant)
    return len(claimed)
