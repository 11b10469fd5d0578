"""What every `agent-cl` command shares: options, settings, errors, progress bars."""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from agent_cl.config import ConfigError, Settings

console = Console()
err = Console(stderr=True)

HomeOption = Annotated[
    Path | None, typer.Option("--home", help="data directory (default $AGENT_CL_HOME)")
]
TenantOption = Annotated[str | None, typer.Option("--tenant", help="agent/tenant name")]
MethodOption = Annotated[
    str | None, typer.Option(help="consolidation recipe (default: docs/results/consolidation.md)")
]
StepsOption = Annotated[int | None, typer.Option(help="training steps (default: the recipe's)")]
GateOption = Annotated[
    bool | None, typer.Option("--gate/--no-gate", help="publish only if the gate passes")
]
DropOption = Annotated[
    float | None, typer.Option(help="gate: largest robust-retention drop (default 0.03)")
]
ReplayOption = Annotated[
    int | None, typer.Option(help="consolidated demonstrations replayed per night")
]
CheckpointOption = Annotated[int | None, typer.Option(help="training steps between checkpoints")]
ServerOption = Annotated[
    list[str] | None,
    typer.Option("--server", help="vLLM server URL to swap too (repeat for replicas)"),
]


CONFIG_PATH: list[Path] = []  # set by the app's --config option


def settings_for(home: Path | None = None, tenant: str | None = None, **overrides) -> Settings:
    """Settings from --config / agent-cl.toml, AGENT_CL_* and the command's own options."""
    try:
        path = CONFIG_PATH[-1] if CONFIG_PATH else None
        return Settings.load(path, home=home, tenant=tenant, **overrides)
    except ConfigError as exc:
        fail(str(exc))


def fail(message: str, code: int = 2):
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


@contextmanager
def user_errors(*kinds: type[Exception]):
    """Errors the user can act on print as one line (exit 2) instead of a traceback."""
    from agent_cl.durable import CorruptFileError, LockedError
    from agent_cl.models.provision import EmbeddedModelMissingError, ModelNotProvisionedError

    known = (CorruptFileError, LockedError, ModelNotProvisionedError, EmbeddedModelMissingError)
    try:
        yield
    except (ValueError, *known, *kinds) as exc:
        fail(str(exc))


def quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # transformers reads this at import for its "Loading weights" bars, which rich's own
    # progress display would otherwise be interleaved with
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    logging.getLogger("transformers").setLevel(logging.ERROR)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def registry_for(home: Path | None, tenant: str | None):
    from agent_cl.serving.registry import AdapterRegistry

    return AdapterRegistry(settings_for(home, tenant).adapters_dir)


def replicas(urls: list[str], registry, tenant: str):
    from agent_cl.serving.replicas import ReplicaSet

    key = os.environ.get("AGENT_CL_VLLM_API_KEY")
    return ReplicaSet.from_urls(urls, registry, tenant=tenant, api_key=key)
