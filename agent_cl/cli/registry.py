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
    settings = settings_for(home, tenant)
    registry = registry_for(home, tenant)
    with user_errors():
        current = registry.current()
        console.print(
            "base (no adapter)" if current is None else f"v{current.version} {current.path}"
        )
        if server:
            for url, models in replicas(server, registry, settings.tenant).served_models():
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
    from agent_cl.serving.backend import AdapterLoadError
    from agent_cl.serving.registry import UnknownAdapterVersionError

    settings = settings_for(home, tenant)
    registry = registry_for(home, tenant)
    with user_errors(UnknownAdapterVersionError, AdapterLoadError):
        target = replicas(server, registry, settings.tenant) if server else registry
        now = target.rollback(version)
    console.print("now current: " + ("base (no adapter)" if now is None else f"v{now.version}"))


@adapters_app.command("repair")
def adapters_repair(home: HomeOption = None, tenant: TenantOption = None):
    """Set damaged versions aside, point a damaged CURRENT at the newest intact version, and
    set a damaged sleep journal aside, handing its claimed demonstrations back to pending."""
    quiet_libraries()
    from agent_cl.consolidation.journal import Journal
    from agent_cl.durable import CorruptFileError

    settings = settings_for(home, tenant)
    registry = registry_for(home, tenant)
    with user_errors():
        done = registry.repair()
        journal = Journal(settings.paths().sleep_state)
        try:
            journal.load()
        except CorruptFileError:
            with registry.lock():
                aside = journal.set_aside()
                released = _release_claims(settings)
            done.append(f"journal: moved to {aside}; {released} claimed demonstrations pending")
    for line in done or ["nothing to repair"]:
        console.print(line)


def _release_claims(settings) -> int:
    """A lost journal cannot say which run claimed what: every claim of the tenant goes back
    to pending (a demonstration already in a published adapter is trained once more)."""
    from agent_cl.memory.chroma import ChromaDemonstrationStore
    from agent_cl.memory.schema import DemoStatus

    store = ChromaDemonstrationStore.for_settings(settings)
    try:
        claimed = store.list(tenant=settings.tenant, status=DemoStatus.CLAIMED)
        store.set_status([d.id for d in claimed], DemoStatus.PENDING, tenant=settings.tenant)
        return len(claimed)
    finally:
        store.close()


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
    host: str | None = typer.Option(None, help="bind address (default serve_host, 127.0.0.1)"),
    port: int | None = typer.Option(None, help="port (default serve_port, 8000)"),
    api_key: str | None = typer.Option(None, envvar="AGENT_CL_VLLM_API_KEY", help="API key"),
    max_lora_rank: int = typer.Option(16, help="largest adapter rank the server accepts"),
):
    """Start a vLLM server on the model; each tenant's model name `agent-cl/<tenant>` answers
    with its current adapter (a night's `--server URL` swap moves it). Ctrl-C stops."""
    quiet_libraries()
    from agent_cl.models.provision import resolve_model_dir
    from agent_cl.serving.vllm_server import (
        VLLMNotInstalledError,
        VLLMServer,
        VLLMServerConfig,
        VLLMServerError,
        serve_registry,
    )

    settings = settings_for(home, tenant, serve_host=host, serve_port=port)
    with user_errors(VLLMNotInstalledError, VLLMServerError):
        model_dir = resolve_model_dir(settings.model_dir, settings.models_dir)
        log_path = settings.home / "logs" / f"vllm-{settings.serve_port}.log"
        server = VLLMServer(
            VLLMServerConfig(
                model_dir,
                host=settings.serve_host,
                port=settings.serve_port,
                api_key=api_key,
                max_lora_rank=max_lora_rank,
                log_path=log_path,
            )
        )
        registries = {t: registry_for(home, t) for t in settings.known_tenants()}
        console.print(f"starting vLLM on {server.url} (log {server.log_path})")
        serve_registry(server, registries, on_ready=lambda served: _print_served(server, served))


def _print_served(server, served: dict[str, int | None]) -> None:
    from agent_cl.serving.vllm_backend import stable_name

    console.print(f"serving {server.url}/v1; model names, one per tenant:")
    for tenant, version in served.items():
        console.print(f"  {stable_name(tenant)}: " + (f"adapter v{version}" if version else "base"))
