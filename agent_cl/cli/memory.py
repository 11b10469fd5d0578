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
    user_errors,
)

memory_app = typer.Typer(help="The demonstration store.")


@memory_app.command("list")
def memory_list(
    status: str | None = typer.Option(None, help="pending, claimed, consolidated, rejected"),
    limit: int = typer.Option(20, min=1, help="rows to show (at least 1)"),
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
    with user_errors():
        store = ChromaDemonstrationStore.for_settings(settings)
    table = Table("id", "status", "query", "answer")
    for demo in store.list(tenant=settings.tenant, status=wanted, limit=limit):
        table.add_row(demo.id[:10], demo.status.value, demo.query, demo.answer)
    console.print(table)


@memory_app.command("serve")
def memory_serve(
    home: HomeOption = None,
    host: str = typer.Option("127.0.0.1", help="bind address (Chroma's server has no auth)"),
    port: int | None = typer.Option(None, help="port (default store_port, 8001)"),
):
    """Serve the store to several processes (Chroma's server over <home>/store); point each
    process at it with store_url (AGENT_CL_STORE_URL=http://127.0.0.1:8001). Ctrl-C stops."""
    from agent_cl.memory.chroma_server import ChromaServer, ChromaServerError

    settings = settings_for(home, None, store_port=port)
    with user_errors(ChromaServerError):
        server = ChromaServer(settings.store_dir, host=host, port=settings.store_port).start()
    console.print(f"store {settings.store_dir} served at {server.url}")
    console.print(f"in every process: export AGENT_CL_STORE_URL={server.url}")
    server.serve_forever()
