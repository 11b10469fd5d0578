"""`agent-cl adapters repair`: put a tenant's night files back in a state a night can start from,
losing no demonstration.

Damaged versions and a damaged `CURRENT` are the registry's to fix (`AdapterRegistry.repair`,
which keeps the operator's last choice of version). Then the store is made to agree with what
is left: demonstrations consolidated into a version that was set aside, and those of a journal
whose published version is gone, go back to pending; a damaged journal cannot say which run
claimed what, so every claim of the tenant goes back to pending (a demonstration already in a
published adapter is trained once more: time, not data, is lost). Claims are released *before*
a journal is set aside: if the store is locked the release fails, the journal stays, and the
next repair tries again; the other order left demonstrations `claimed` for ever.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from agent_cl.adapters.registry import UnknownAdapterVersionError, registry_for
from agent_cl.config import Settings, Tenant
from agent_cl.durable import CorruptFileError
from agent_cl.memory.base import DemonstrationStore
from agent_cl.memory.schema import DemoStatus
from agent_cl.night.journal import Journal, JournalEntry


def repair_tenant(
    settings: Settings, tenant: str | None = None, store: DemonstrationStore | None = None
) -> list[str]:
    """Repair `tenant` (default: the settings' tenant); returns what was done, one line each.
    `store` defaults to the one `settings` name, opened only when demonstrations must move."""
    tenant = Tenant(tenant or settings.tenant)
    registry = registry_for(settings, tenant)
    repaired = registry.repair()
    done = list(repaired.lines)
    journal = Journal(settings.paths(tenant).sleep_state)
    with registry.lock():
        if repaired.quarantined:
            with _opened(settings, store) as demos:
                moved = _unconsolidate(demos, tenant, repaired.quarantined)
            done.append(f"store: {moved} demonstrations of set-aside versions pending again")
        try:
            entry = journal.load()
        except CorruptFileError:
            with _opened(settings, store) as demos:
                released = _release_claims(demos, tenant)
            aside = journal.set_aside()
            done.append(f"journal: moved to {aside}; {released} claimed demonstrations pending")
            return done
        if entry is not None and _publish_lost(registry, entry):
            with _opened(settings, store) as demos:
                released = _release_run(demos, tenant, entry)
            aside = journal.set_aside()
            done.append(
                f"journal: its v{entry.published_version} is gone; moved to {aside}; "
                f"{released} demonstrations pending again"
            )
    return done


def _publish_lost(registry, entry: JournalEntry) -> bool:
    if entry.published_version is None:
        return False
    try:
        registry.get(entry.published_version)
    except UnknownAdapterVersionError:
        return registry.find_run(entry.run_id) is None
    return False


@contextmanager
def _opened(settings: Settings, store: DemonstrationStore | None) -> Iterator[DemonstrationStore]:
    if store is not None:
        yield store
        return
    from agent_cl.memory.chroma import ChromaDemonstrationStore

    with ChromaDemonstrationStore.for_settings(settings) as opened:
        yield opened


def _release_claims(store: DemonstrationStore, tenant: Tenant) -> int:
    claimed = store.list(tenant=tenant, status=DemoStatus.CLAIMED)
    store.set_status([d.id for d in claimed], DemoStatus.PENDING, tenant=tenant)
    return len(claimed)


def _release_run(store: DemonstrationStore, tenant: Tenant, entry: JournalEntry) -> int:
    demos = store.get(entry.demonstration_ids, tenant=tenant)
    ids = [d.id for d in demos if d.status in (DemoStatus.CLAIMED, DemoStatus.CONSOLIDATED)]
    store.set_status(ids, DemoStatus.PENDING, tenant=tenant)
    return len(ids)


def _unconsolidate(store: DemonstrationStore, tenant: Tenant, versions: list[int]) -> int:
    done = store.list(tenant=tenant, status=DemoStatus.CONSOLIDATED)
    ids = [d.id for d in done if d.adapter_version in versions]
    store.set_status(ids, DemoStatus.PENDING, tenant=tenant)
    return len(ids)
