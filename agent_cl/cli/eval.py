"""`agent-cl eval`: the weights-versus-text-memory experiments, report and plots."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import typer

from agent_cl.cli.common import (
    HomeOption,
    console,
    err,
    progress_bar,
    quiet_libraries,
    settings_for,
    training_steps,
    user_errors,
)
from agent_cl.evals.progress import EvalProgress


def _names(value: str | None) -> tuple[str, ...] | None:
    return None if value is None else tuple(v.strip() for v in value.split(",") if v.strip())


def evaluate(
    out: Path = typer.Option(..., "--out", help="folder for results.json, report.md and plots"),
    suite: str | None = typer.Option(
        None,
        help="suites, comma-separated: facts,json,tools (or facts-varied); long-run: the "
        "kinds a day mixes (default facts,json,tools)",
    ),
    methods: str | None = typer.Option(
        None,
        help="default: none,text-gated (the agent's own retrieval, cosine >= 0.8),text "
        "(plain top-k),sft,sdft,default,default+text",
    ),
    seeds: int | None = typer.Option(None, help="seeds per measurement (default 3; quick 1)"),
    experiments: str | None = typer.Option(
        None,
        "--experiments",
        "--experiment",
        help="one-night,sequential,scaling (default: all); or long-run alone: an agent's "
        "life of nights through the product's path",
    ),
    demos: int | None = typer.Option(
        None, help="demonstrations per suite (default 8); long-run: tasks per day (24)"
    ),
    nights: int | None = typer.Option(None, help="long-run: nights (default 20; quick 4)"),
    sizes: str | None = typer.Option(None, help="scaling sizes, e.g. 8,32,128"),
    text_k: int | None = typer.Option(None, help="text memory: demonstrations retrieved (2)"),
    min_score: float | None = typer.Option(
        None, help="text memory: lowest cosine kept (default 0: plain top-k; the agent uses 0.8)"
    ),
    retention_limit: int | None = typer.Option(
        None, help="robust retention prompts to ask (default 128; 0: the whole frozen set)"
    ),
    quick: bool = typer.Option(False, "--quick", help="the smoke run (minutes on 2 CPU cores)"),
    report_only: bool = typer.Option(
        False, "--report-only", help="rebuild report.md and plots from results.json"
    ),
    serving_cost: Path | None = typer.Option(
        None,
        "--serving-cost",
        help="a benchmarks/serving_cost.py result: the break-even then counts what the adapter "
        "adds to decoding on each serving path (kept in results.json)",
    ),
    home: HomeOption = None,
):
    """Compare consolidation with text memory: accuracy, forgetting, cost, sequential skills
    and scaling. Resumes a killed run from --out/results.json."""
    quiet_libraries()
    chosen = _names(experiments) or ()
    if "long-run" in chosen:
        if len(chosen) > 1:
            with user_errors():
                raise ValueError("long-run runs alone: give --experiment long-run by itself")
        others = {
            "--methods": methods,
            "--seeds": seeds,
            "--sizes": sizes,
            "--text-k": text_k,
            "--min-score": min_score,
            "--serving-cost": serving_cost,
        }
        given = [name for name, value in others.items() if value is not None]
        if given:  # silently ignored, they would start hours of the wrong run
            with user_errors():
                raise ValueError(f"{', '.join(given)} do not apply to --experiment long-run")
        _long_run(out, quick=quick, nights=nights, demos=demos, kinds=suite,
                  retention_limit=retention_limit, report_only=report_only, home=home)  # fmt: skip
        return
    if nights is not None:
        with user_errors():
            raise ValueError("--nights applies to --experiment long-run only")
    from agent_cl.evals.plan import EvalPlan
    from agent_cl.evals.runner import RESULTS, EvalRunner, PlanMismatchError

    options = _plan_options(
        suites=_names(suite),
        methods=_names(methods),
        experiments=_names(experiments),
        seeds=seeds,
        n_demos=demos,
        text_k=text_k,
        min_score=min_score,
        retention_limit=retention_limit,
        sizes=sizes,
    )
    with user_errors(PlanMismatchError):
        plan = EvalPlan.quick(**options) if quick else EvalPlan(**options)
    settings = settings_for(home)
    command = "agent-cl " + shlex.join(sys.argv[1:]) if len(sys.argv) > 1 else None
    if serving_cost is not None and not report_only:
        with user_errors():
            raise ValueError("--serving-cost goes with --report-only (after the run)")
    if report_only:
        if serving_cost is not None:
            _attach_serving_cost(out, serving_cost)
        _write_report(out)
        return
    if (out / RESULTS).exists():
        console.print(f"resuming from {out / RESULTS}")
    with progress_bar() as bar, user_errors(PlanMismatchError):
        runner = EvalRunner(settings, plan, out, progress=_RichProgress(bar), command=command)
        runner.run()
    _write_report(out)


def _long_run(out: Path, *, quick: bool, nights, demos, kinds, retention_limit, report_only, home):
    """The long run: resumable per day, night and morning in --out/results.json."""
    from agent_cl.evals.long_run import RESULTS, LongRun, PlanMismatchError, final_line
    from agent_cl.evals.long_run_plan import LongRunPlan

    options = {"nights": nights, "demos_per_night": demos, "kinds": _names(kinds)}
    options = {k: v for k, v in options.items() if v is not None}
    if retention_limit is not None:
        options["retention_limit"] = retention_limit or None  # 0: the whole frozen set
    with user_errors():
        plan = LongRunPlan.quick(**options) if quick else LongRunPlan(**options)
    if not report_only:
        settings = settings_for(home)
        command = "agent-cl " + shlex.join(sys.argv[1:]) if len(sys.argv) > 1 else None
        if (out / RESULTS).exists():
            console.print(f"resuming from {out / RESULTS}")
        with progress_bar() as bar, user_errors(PlanMismatchError):
            on_step = training_steps(bar, indent="  ")
            run = LongRun(settings, plan, out, say=console.print, on_step=on_step,
                          command=command)  # fmt: skip
            run.run()
    summary = _write_long_run_report(out)
    console.print(final_line(summary), highlight=False, soft_wrap=True)


def _write_long_run_report(out: Path) -> dict:
    from agent_cl.evals.long_run import summarise
    from agent_cl.evals.long_run_report import build_report, write_plots

    data = _read_results(out, "the long run")
    if data.get("experiment") != "long-run":
        with user_errors():
            raise ValueError(f"{out} holds another experiment's results, not long-run")
    _write_outputs(out, data, build_report, write_plots)
    return data.get("summary") or summarise(data)


def _read_results(out: Path, what: str, name: str | None = None) -> dict:
    from agent_cl.durable import read_json
    from agent_cl.evals.runner import RESULTS

    path = out / (name or RESULTS)
    if not path.exists():
        err.print(f"[bold red]error:[/] no {path.name} in {out}: run {what} first")
        raise typer.Exit(2)
    with user_errors():
        return read_json(path, fix=f"move {path} aside and run again")


def _write_outputs(out: Path, data: dict, build_report, write_plots) -> None:
    from agent_cl.durable import atomic_write_text

    atomic_write_text(out / "report.md", build_report(data))
    for picture in write_plots(data, out):
        console.print(f"plot written to {picture}")
    console.print(f"report written to {out / 'report.md'}")


def _plan_options(*, sizes: str | None, retention_limit: int | None, **given) -> dict:
    """EvalPlan's keyword arguments from the options given (None: the plan's default)."""
    options = {k: v for k, v in given.items() if v is not None}
    if sizes is not None:
        with user_errors():
            options["scaling_sizes"] = tuple(int(s) for s in _names(sizes) or ())
    if retention_limit is not None:
        options["retention_limit"] = retention_limit or None  # 0: the whole frozen set
    return options


def _attach_serving_cost(out: Path, bench_path: Path) -> None:
    """Keep the serving benchmark's per-token decode cost in results.json, so the report (and
    every later --report-only) shows the break-even with it."""
    from agent_cl.durable import atomic_write_json
    from agent_cl.evals.runner import RESULTS
    from agent_cl.evals.serving_cost import ANSWER_TOKENS, decode_cost_per_token

    data = _read_results(out, "the evaluation")
    bench = _read_results(bench_path.parent, "the serving benchmark", name=bench_path.name)
    with user_errors():
        if not isinstance(bench, dict):
            raise ValueError(f"{bench_path} is not a benchmarks/serving_cost.py result")
        per_token = decode_cost_per_token(bench)
    data["serving_cost"] = {
        "source": bench_path.name,
        "answer_tokens": int(bench.get("max_tokens", ANSWER_TOKENS)),
        "per_token_ms": per_token,
    }
    atomic_write_json(out / RESULTS, data)


def _write_report(out: Path) -> None:
    from agent_cl.evals.report import build_report
    from agent_cl.evals.report_plots import write_plots

    _write_outputs(out, _read_results(out, "the evaluation"), build_report, write_plots)


class _RichProgress(EvalProgress):
    """Units done out of all, and the training steps of the unit that trains."""

    def __init__(self, bar) -> None:
        self.bar = bar
        self.units = bar.add_task("eval", total=None)
        self.training = bar.add_task("training", total=None, visible=False)

    def begin(self, total: int, done: int) -> None:
        self.bar.update(self.units, total=total, completed=done)

    def unit(self, label: str) -> None:
        self.bar.update(self.units, description=label)
        self.bar.update(self.training, visible=False)

    def step(self, record) -> None:
        self.bar.update(
            self.training,
            total=record.total_steps,
            completed=record.step,
            visible=True,
            description=f"  training ({record.step}/{record.total_steps}, loss {record.loss:.3f})",
        )

    def advance(self) -> None:
        self.bar.advance(self.units)
