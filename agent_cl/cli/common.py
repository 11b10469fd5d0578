"""What every `agent-cl` command shares: options, settings, errors, progress bars."""

from __future__ import annotations

import functools
import inspect
import logging
import os
import time
import typing
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from agent_cl.config import ConfigError, Settings

console = Console(soft_wrap=True)  # paths and errors stay one copyable line
err = Console(stderr=True, soft_wrap=True)

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
MaxDemosOption = Annotated[
    int | None,
    typer.Option(help="a night's budget: most demonstrations claimed, oldest first (default 64)"),
]
ReplayOption = Annotated[
    int | None, typer.Option(help="consolidated demonstrations replayed per night")
]
ReplayStepsOption = Annotated[
    int | None,
    typer.Option(help="steps per replayed demonstration, its weight beside a new one's"),
]
ReplayRecentOption = Annotated[
    float | None,
    typer.Option(help="share of the replay drawn from the newest night's demonstrations (0-1)"),
]
DtypeOption = Annotated[
    str | None,
    typer.Option(
        "--dtype",
        help="precision a night trains and gates in: auto (fp32, on CUDA or CPU), "
        "float32 or bfloat16",
    ),
]
LoraRankOption = Annotated[
    int | None,
    typer.Option(help="LoRA rank a night trains (at most adapter_max_rank; alpha twice it)"),
]
LoraPerNightOption = Annotated[
    str | None,
    typer.Option(
        help="'continue' the served adapter (default) or 'fresh': a new LoRA per night on "
        "the earlier nights frozen"
    ),
]
MaxAttemptsOption = Annotated[
    int | None,
    typer.Option(
        help="nights a rejected demonstration is retried in, this one included (default 2)"
    ),
]
ShrinkOption = Annotated[
    str | None,
    typer.Option(
        help="gate: shares of a rejected night's update tried in turn when it learned but "
        "forgot, e.g. '0.75,0.5' (the default); '' for none"
    ),
]
CheckpointOption = Annotated[int | None, typer.Option(help="training steps between checkpoints")]
ServerOption = Annotated[
    list[str] | None,
    typer.Option("--server", help="vLLM server URL to swap too (repeat for replicas)"),
]


CONFIG_PATH: list[Path] = []  # set by the app's --config option
DEBUG: list[bool] = []  # set by the app's --debug option: tracebacks instead of one line


def settings_for(home: Path | None = None, tenant: str | None = None, **overrides) -> Settings:
    """Settings from --config / agent-cl.toml, AGENT_CL_* and the command's own options."""
    try:
        path = CONFIG_PATH[-1] if CONFIG_PATH else None
        return Settings.load(path, home=home, tenant=tenant, **overrides)
    except ConfigError as exc:
        fail(str(exc))


def fail(message: str, code: int = 2):
    # one unbroken line whatever the terminal's width (a wrapped path cannot be copied), and
    # the message printed as text: "[agent-cl.sleep]" in it is not rich markup
    err.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def user_errors(*kinds: type[Exception]):
    """Errors the user can act on print as one line (exit 2) instead of a traceback."""
    from agent_cl.durable import CorruptFileError, LockedError
    from agent_cl.models.provision import EmbeddedModelMissingError, ModelNotProvisionedError
    from agent_cl.serving.backend import AdapterLoadError

    known = (
        CorruptFileError,
        LockedError,
        ModelNotProvisionedError,
        EmbeddedModelMissingError,
        AdapterLoadError,  # a damaged adapter, an unreachable or refusing server
    )
    try:
        yield
    except (ValueError, *known, *kinds) as exc:
        if any(DEBUG):
            raise
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


# The options a night takes, declared once for `sleep` and `daemon`: option name -> (its
# annotated type, the Settings field it overrides).
NIGHT_OPTIONS: dict[str, tuple[object, str]] = {
    "method": (MethodOption, "sleep_method"),
    "steps": (StepsOption, "sleep_steps"),
    "gate": (GateOption, "gate_enabled"),
    "max_retention_drop": (DropOption, "gate_max_retention_drop"),
    "shrink": (ShrinkOption, "gate_shrink"),
    "replay": (ReplayOption, "sleep_replay"),
    "replay_recent": (ReplayRecentOption, "sleep_replay_recent"),
    "replay_steps_per_demo": (ReplayStepsOption, "sleep_replay_steps_per_demo"),
    "max_demos": (MaxDemosOption, "sleep_max_demos"),
    "max_attempts": (MaxAttemptsOption, "sleep_max_attempts"),
    "lora_per_night": (LoraPerNightOption, "sleep_lora_per_night"),
    "lora_rank": (LoraRankOption, "sleep_lora_rank"),
    "checkpoint_every": (CheckpointOption, "sleep_checkpoint_every"),
    "dtype": (DtypeOption, "sleep_dtype"),
    "server": (ServerOption, "servers"),
}


def with_night_options(command: Callable) -> Callable:
    """Add the night's options to `command`, which receives them as one `night` dict of
    Settings overrides (None: unset, so agent-cl.toml / AGENT_CL_* decide)."""
    signature = inspect.signature(command)
    resolved = typing.get_type_hints(command, include_extras=True)
    own = [
        p.replace(annotation=resolved.get(p.name, p.annotation))
        for p in signature.parameters.values()
        if p.name != "night"
    ]
    added = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=kind)
        for name, (kind, _) in NIGHT_OPTIONS.items()
    ]

    @functools.wraps(command)
    def wrapper(**kwargs):
        night = {field: kwargs.pop(name) for name, (_, field) in NIGHT_OPTIONS.items()}
        if night["servers"] is not None:
            night["servers"] = tuple(night["servers"]) or None
        if night["gate_shrink"] is not None:  # "0.75,0.5" -> ("0.75", "0.5"); Settings checks
            night["gate_shrink"] = tuple(v for v in night["gate_shrink"].split(",") if v.strip())
        return command(night=night, **kwargs)

    hints = {p.name: p.annotation for p in own} | {p.name: p.annotation for p in added}
    wrapper.__signature__ = signature.replace(parameters=[*own, *added])
    wrapper.__annotations__ = hints
    del wrapper.__wrapped__  # typer must read the new signature, not the original
    return wrapper


def training_steps(bar, *, indent: str = "") -> Callable[[Any], None]:
    """A hidden "training" row on `bar` and the `on_step` callback that shows each step.

    Rich draws no bar when the output is not a terminal (nohup, CI, a daemon's log), which
    left a night of half an hour silent between its first line and its result; there, a plain
    line is printed at the first step, about every tenth of the run and the last."""
    task = bar.add_task("training", total=None, visible=False)
    # one callback may see many trainings (a long run's nights): each restarts the count
    seen = {"step": 0, "printed": 0, "started": 0.0}

    def on_step(record) -> None:
        label = f"{indent}training ({record.step}/{record.total_steps}, loss {record.loss:.3f})"
        bar.update(
            task, total=record.total_steps, completed=record.step, visible=True, description=label
        )
        if record.step <= seen["step"] or not seen["step"]:  # a new training (or a resume)
            seen.update(printed=0, started=time.perf_counter() - record.seconds)
        seen["step"] = record.step
        if bar.console.is_terminal:
            return
        every = max(1, (record.total_steps or 1) // 10)
        if (
            not seen["printed"]
            or record.step == record.total_steps
            or record.step - seen["printed"] >= every
        ):
            seen["printed"] = record.step
            elapsed = time.perf_counter() - seen["started"]
            bar.console.print(f"{label}, {elapsed:.0f} s", highlight=False)

    return on_step
