"""`agent-cl adapters ...` and `agent-cl serve`: the registry's versions and the served model."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from agent_cl.cli.common import (
    HomeOption,
    ServerOption,
    TenantOption,
    console,
    quiet_libraries,
    registry_for,
    replicas,
    settings_for,
    user_errors,
)

adapters_app = typer.Typer(help="The adapter registry: versions, current, rollback.")


@adapters_app.command("list")
def adapters_list(home: HomeOption = None, tenant: TenantOption = None):
    """Every published version; the current one is starred."""
    registry = registry_for(home, tenant)
    current = registry.current()
    table = Table("version", "method", "demos", "published", "current")
    for v in registry.versions():
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
    registry = registry_for(home, tenant)
    current = registry.current()
    console.print("base (no adapter)" if current is None else f"v{current.version} {current.path}")
    if server:
        for url, models in replicas(server, registry).served_models():
            console.print(f"{url}: {models}")


@adapters_app.command("rollback")
def adapters_rollback(
    version: int | None = typer.Argument(None, help="version to serve (default: the previous)"),
    home: HomeOption = None,
    tenant: TenantOption = None,
    server: ServerOption = None,
):
    """Point the registry's current version back and, with --server, swap every replica to it
    (all or none: a replica that refuses puts the others and the registry back)."""
    from agent_cl.serving.backend import AdapterLoadError
    from agent_cl.serving.registry import UnknownAdapterVersionError

    registry = registry_for(home, tenant)
    with user_errors(UnknownAdapterVersionError, AdapterLoadError):
        target = replicas(server, registry) if server else registry
        now = target.rollback(version)
    console.print("now current: " + ("base (no adapter)" if now is None else f"v{now.version}"))


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
    from agent_cl.models.adapters import InvalidAdapterError
    from agent_cl.models.merge import merge_adapter
    from agent_cl.models.provision import resolve_model_dir
    from agent_cl.serving.registry import UnknownAdapterVersionError

    settings = settings_for(home, tenant)
    registry = registry_for(home, tenant)
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


def serve(
    home: HomeOption = None,
    tenant: TenantOption = None,
    host: str = typer.Option("127.0.0.1", help="bind address (non-loopback needs --api-key)"),
    port: int = typer.Option(8000, help="port"),
    api_key: str | None = typer.Option(None, envvar="AGENT_CL_VLLM_API_KEY", help="API key"),
    max_lora_rank: int = typer.Option(16, help="largest adapter rank the server accepts"),
):
    """Start a vLLM server on the model, serving the registry's current adapter; Ctrl-C stops."""
    quiet_libraries()
    from agent_cl.models.provision import resolve_model_dir
    from agent_cl.serving.vllm_server import (
        VLLMNotInstalledError,
        VLLMServer,
        VLLMServerConfig,
        VLLMServerError,
        serve_registry,
    )

    settings = settings_for(home, tenant)
    with user_errors(VLLMNotInstalledError, VLLMServerError):
        model_dir = resolve_model_dir(settings.model_dir, settings.models_dir)
        log_path = settings.home / "logs" / f"vllm-{port}.log"
        server = VLLMServer(
            VLLMServerConfig(
                model_dir,
                host=host,
                port=port,
                api_key=api_key,
                max_lora_rank=max_lora_rank,
                log_path=log_path,
            )
        )
        console.print(f"starting vLLM on {server.url} (log {server.log_path})")
        serve_registry(
            server,
            registry_for(home, tenant),
            on_ready=lambda v: console.print(
                f"serving {server.url}: " + (f"adapter v{v}" if v else "base")
            ),
        )
