"""`agent-cl report`: the morning report page over a home, written once or kept live."""

from __future__ import annotations

from pathlib import Path

import typer

from agent_cl.cli.common import HomeOption, console, quiet_libraries, settings_for, user_errors


def report(
    out: Path = typer.Option(Path("agent-cl-report.html"), "--out", help="the page to write"),
    serve: bool = typer.Option(False, "--serve", help="keep it live on a local port instead"),
    host: str = typer.Option("127.0.0.1", help="with --serve: bind address (loopback default)"),
    port: int = typer.Option(8002, min=1, max=65535, help="with --serve: port"),
    long_run: Path | None = typer.Option(
        None, "--long-run", help="also show a long run's results (its `eval --out` folder)"
    ),
    home: HomeOption = None,
):
    """One self-contained HTML page: each tenant's nights, gate decisions and scores, versions
    and rollbacks, retention against the base over nights, the store, the servers."""
    quiet_libraries()
    from agent_cl.night.morning import write_page
    from agent_cl.night.morning_server import report_server

    extra = None
    if long_run is not None:
        from agent_cl.evals.long_run_report import html_section

        def extra(unreadable: list[str]) -> list[str]:
            section = html_section(long_run, unreadable)
            return [section] if section else []

    settings = settings_for(home)
    if not settings.home.is_dir():
        with user_errors():
            raise ValueError(f"no agent-cl home at {settings.home}: run `agent-cl init` first")
    if serve:
        with user_errors(OSError):
            server = report_server(settings, host, port, extra)
        console.print(f"morning report at http://{host}:{server.server_address[1]}/ (Ctrl-C stops)")
        try:
            server.serve_forever()
        finally:
            server.server_close()
        return
    with user_errors(OSError):
        morning = write_page(settings, out, extra)
    tenants = len(morning.tenants)
    nights = sum(len(t.nights) for t in morning.tenants)
    console.print(f"report written to {out} ({tenants} tenants, {nights} nights)")
    for problem in morning.unreadable:
        console.print(f"[yellow]could not read:[/] {problem}")
