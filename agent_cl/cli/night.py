"""`agent-cl sleep`, `daemon` and `status`: the night, now, on a schedule, and where it stands."""

from __future__ import annotations

import json
import logging
from typing import Any

import typer
from rich.table import Table

from agent_cl.cli.common import (
    HomeOption,
    TenantOption,
    console,
    progress_bar,
    quiet_libraries,
    settings_for,
    training_steps,
    user_errors,
    with_night_options,
)


def _open_night(settings):
    """The night of `settings.home`, validated before any model loads."""
    from agent_cl.night.night import open_night

    with user_errors():
        return open_night(settings)


@with_night_options
def sleep(night: dict[str, Any], home: HomeOption = None, tenant: TenantOption = None):
    """Consolidate pending demonstrations now: every tenant in turn, or the one named."""
    quiet_libraries()
    runner = _open_night(settings_for(home, **night))
    with progress_bar() as progress, user_errors():
        reports = runner.run(only=tenant, on_step=training_steps(progress))
    if not reports:
        console.print("nothing to consolidate: no pending demonstrations")
    for report in reports:
        summary = {k: v for k, v in report.to_dict().items() if k not in ("train", "checks")}
        summary["gate"] = {k: v for k, v in report.gate.items() if k in ("passed", "reason")}
        console.print_json(json.dumps(summary, default=str))
    if any(r.status == "failed" for r in reports):
        raise typer.Exit(1)


@with_night_options
def daemon(
    night: dict[str, Any],
    cron: str | None = typer.Option(None, help="crontab expression, e.g. '0 2 * * *'"),
    min_pending: int | None = typer.Option(None, help="run when this many are pending"),
    idle_minutes: float | None = typer.Option(None, help="run after this long without new ones"),
    poll_seconds: float | None = typer.Option(None, help="how often the store triggers run"),
    home: HomeOption = None,
):
    """Run nights on a schedule until SIGTERM (the running night finishes first)."""
    quiet_libraries()
    from agent_cl.night.scheduler import DaemonAlreadyRunningError, SleepDaemon, Triggers

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = settings_for(
        home,
        daemon_cron=cron,
        daemon_min_pending=min_pending,
        daemon_idle_minutes=idle_minutes,
        daemon_poll_seconds=poll_seconds,
        **night,
    )
    with user_errors():
        triggers = Triggers.from_settings(settings)
    runner = _open_night(settings)
    with user_errors(DaemonAlreadyRunningError):
        SleepDaemon(runner.run, runner.store, triggers, settings.home / "daemon.lock").serve()


def status(home: HomeOption = None, tenant: TenantOption = None):
    """Where the data lives and, per tenant: the version served, pending demonstrations, the
    last night's gate decision and when the next night is due."""
    quiet_libraries()
    from agent_cl.night.status import home_status

    settings = settings_for(home, tenant)
    with user_errors():
        found = home_status(settings, only=tenant and settings.tenant)
    state = "ready" if found.model_ready else "missing: run agent-cl init"
    console.print(f"home {found.home}; model {found.model_dir} ({state})")
    console.print(f"store {found.store}; next night: {found.next_night}")
    table = Table("tenant", "current", "served", "pending", "last night")
    for row in found.tenants:
        table.add_row(row.tenant, row.current, row.served, str(row.pending), row.last_night)
    console.print(table)
