"""`agent-cl serve`: a vLLM server on the model, every tenant's stable name at its version."""

from __future__ import annotations

from pathlib import Path

import typer

from agent_cl.cli.common import (
    HomeOption,
    TenantOption,
    console,
    quiet_libraries,
    settings_for,
    user_errors,
)


def serve(
    home: HomeOption = None,
    tenant: TenantOption = None,
    host: str | None = typer.Option(None, help="bind address (default serve_host, 127.0.0.1)"),
    port: int | None = typer.Option(None, help="port (default serve_port, 8000)"),
    api_key_file: Path | None = typer.Option(
        None,
        "--api-key-file",
        help="file holding the API key (default: AGENT_CL_VLLM_API_KEY or the file "
        "AGENT_CL_VLLM_API_KEY_FILE names; never on the command line)",
    ),
    max_lora_rank: int | None = typer.Option(
        None, help="largest adapter rank served (default adapter_max_rank, 16)"
    ),
    merged: bool | None = typer.Option(
        None,
        "--merged/--lora",
        help="serve the tenant's version merged into the weights (one tenant; base speed on "
        "CPU) or as LoRA adapters (every tenant; the default, serve_merged)",
    ),
):
    """Start a vLLM server on the model; each tenant's model name `agent-cl/<tenant>` answers
    with its current adapter (a night's `--server URL` swap moves it). With --merged, one
    tenant's current version is served merged into the weights. Ctrl-C stops."""
    quiet_libraries()
    import os

    from agent_cl.adapters.registry import registry_for
    from agent_cl.config import API_KEY_FILE_ENV, vllm_api_key
    from agent_cl.models.provision import resolve_model_dir
    from agent_cl.serving.vllm_server import (
        VLLMNotInstalledError,
        VLLMServer,
        VLLMServerConfig,
        VLLMServerError,
        serve_registry,
    )

    if api_key_file is not None:
        os.environ[API_KEY_FILE_ENV] = str(api_key_file)
    settings = settings_for(
        home,
        tenant,
        serve_host=host,
        serve_port=port,
        adapter_max_rank=max_lora_rank,
        serve_merged=merged,
    )
    with user_errors(VLLMNotInstalledError, VLLMServerError, OSError):
        model_dir = resolve_model_dir(settings.model_dir, settings.models_dir)
        log_path = settings.home / "logs" / f"vllm-{settings.serve_port}.log"
        server = VLLMServer(
            VLLMServerConfig(
                model_dir,
                host=settings.serve_host,
                port=settings.serve_port,
                api_key=vllm_api_key(),
                inference_keys_file=settings.serve_inference_keys,
                adapters_root=settings.adapters_root,
                max_body_bytes=settings.serve_max_body_bytes,
                max_lora_rank=settings.adapter_max_rank,
                log_path=log_path,
                merged=settings.serve_merged,
            )
        )
        tenants = [settings.tenant] if settings.serve_merged else settings.known_tenants()
        registries = {t: registry_for(settings, t) for t in tenants}
        console.print(f"starting vLLM on {server.url} (log {server.log_path})")
        serve_registry(server, registries, on_ready=lambda served: _print_served(server, served))


def _print_served(server, served: dict[str, int | None]) -> None:
    from agent_cl.serving.vllm_backend import stable_name

    console.print(f"serving {server.url}/v1; model names, one per tenant:")
    for tenant, version in served.items():
        console.print(f"  {stable_name(tenant)}: " + (f"adapter v{version}" if version else "base"))
