"""`agent-cl memory ...`: the demonstration store."""

from __future__ import annotations

import typer
from rich.table import Table

from agent_cl.cli.common import (
    HomeOption,
    TenantOption,
    console,
    fail,
    quiet_libraries,
    settings_for,
)

memory_app = typer.Typer(help="The demonstration store.")


@memory_app.command("list")
def memory_list(
    status: str | None = typer.Option(None, help="pending, claimed, consolidated, rejected"),
    limit: int = typer.Option(20, help="rows to show"),
    home: HomeOption = None,
    tenant: TenantOption = None,
):
    """Demonstrations in the store."""
    quiet_libraries()
    from agent_cl.memory.chroma import ChromaDemonstrationStore
    from agent_cl.memory.schema import DemoStatus

    settings = settings_for(home, tenant)
    try:
        wanted = DemoStatus(status) if status else None
    except ValueError:
        fail(f"unknown status {status!r}; use one of {', '.join(s.value for s in DemoStatus)}")
    store = ChromaDemonstrationStore.for_settings(settings)
    table = Table("id", "status", "query", "answer")
    for demo in store.list(tenant=settings.tenant, status=wanted, limit=limit):
        table.add_row(demo.id[:10], demo.status.value, demo.query, demo.answer)
    console.print(table)
