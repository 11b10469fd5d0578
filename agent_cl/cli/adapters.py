"""`agent-cl adapters ...`: the registry's versions, rollback, repair and merge."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from agent_cl.adapters.registry import registry_for
from agent_cl.cli.common import (
    HomeOption,
    ServerOption,
    TenantOption,
    console,
    quiet_libraries,
    settings_for,
    user_errors,
)

adapters_app = typer.Typer(help="The adapter registry: versions, current, rollback.")


@adapters_app.command("list")
def adapters_list(home: HomeOption = None, tenant: TenantOption = None):
    """Every published version; the current one is starred."""
    registry = registry_for(settings_for(home, tenant))
    with user_errors():
        current = registry.current()
        versions = registry.versions()
    table = Table("version", "method", "demos", "published", "current")
    for v in versions:
        table.add_row(
            str(v.version),
            str(v.manifest.get("method", "?")),
            str(len(v.manifest.get("demonstration_ids", []))),
            str(v.manifest.get("published_at", "?")),
            "*" if current and current.version == v.version else "",
        )
    console.print(table)


@adapters_app.command("current")
def adapters_current(
    home: HomeOption = None, tenant: TenantOption = None, server: ServerOption = None
):
    """The version the served model should carry (none: the base model), and with --server
    what each replica actually serves."""
    from agent_cl.serving.replicas import replicas_for

    settings = settings_for(home, tenant, servers=tuple(server) if server else None)
    registry = registry_for(settings)
    with user_errors():
        current = registry.current()
        console.print(
            "base (no adapter)" if current is None else f"v{current.version} {current.path}"
        )
        if settings.servers:
            for url, models in replicas_for(settings, registry, settings.tenant).served_models():
                console.print(f"{url}: {models}")


@adapters_app.command("rollback")
def adapters_rollback(
    version: int | None = typer.Argument(None, help="version to serve (default: the previous)"),
    home: HomeOption = None,
    tenant: TenantOption = None,
    server: ServerOption = None,
):
    """Point the registry's current version back and, with --server, swap every replica to it
    (all or none: a replica that refuses puts the others and the registry back). Waits for
    nothing: while the tenant's night runs it fails at once and says so."""
    from agent_cl.adapters.registry import UnknownAdapterVersionError
    from agent_cl.serving.backend import AdapterLoadError
    from agent_cl.serving.replicas import replicas_for

    settings = settings_for(home, tenant, servers=tuple(server) if server else None)
    registry = registry_for(settings)
    with user_errors(UnknownAdapterVersionError, AdapterLoadError):
        target = replicas_for(settings, registry, settings.tenant) if server else registry
        now = target.rollback(version)
    console.print("now current: " + ("base (no adapter)" if now is None else f"v{now.version}"))


@adapters_app.command("repair")
def adapters_repair(home: HomeOption = None, tenant: TenantOption = None):
    """Set damaged versions aside, point a damaged CURRENT at the newest intact version, and
    set a damaged sleep journal aside, handing its claimed demonstrations back to pending."""
    quiet_libraries()
    from agent_cl.night.repair import repair_tenant

    settings = settings_for(home, tenant)
    with user_errors():
        done = repair_tenant(settings)
    for line in done or ["nothing to repair"]:
        console.print(line)


@adapters_app.command("merge")
def adapters_merge(
    out: Path = typer.Option(..., "--out", help="directory for the merged model (new)"),
    version: int | None = typer.Argument(None, help="version to fold in (default: current)"),
    home: HomeOption = None,
    tenant: TenantOption = None,
):
    """Fold an adapter into the base weights as a new model directory; serve it as the base
    with AGENT_CL_MODEL_DIR=OUT (its registry starts empty: old adapters belong to the old
    base and are refused on the new one)."""
    quiet_libraries()
    from agent_cl.adapters.merge import merge_adapter
    from agent_cl.adapters.registry import UnknownAdapterVersionError
    from agent_cl.adapters.validation import InvalidAdapterError
    from agent_cl.models.provision import resolve_model_dir

    settings = settings_for(home, tenant)
    registry = registry_for(settings)
    with user_errors(UnknownAdapterVersionError, InvalidAdapterError, FileExistsError):
        chosen = registry.get(version) if version is not None else registry.current()
        if chosen is None:
            raise ValueError("no current adapter to merge; name a version")
        model_dir = resolve_model_dir(settings.model_dir, settings.models_dir)
        with console.status(f"merging v{chosen.version} into {model_dir.name}"):
            merged = merge_adapter(model_dir, chosen.path, out)
    console.print(
        f"merged v{chosen.version} -> {merged}; serve it with AGENT_CL_MODEL_DIR={merged}"
    )
