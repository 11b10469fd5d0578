"""`agent-cl`: parse options, build settings, call one library function, print the result.

The only package that imports typer; rich is used for tables and progress bars. Library errors
a user can fix (bad options, a missing model, an unreachable server) become one red line and
exit code 2, never a traceback. Each command lives in the module named for its part of the
product: `day` (init, demo, run), `night` (sleep, daemon, status), `report`, `adapters`,
`serve`, `memory`, `eval`; what they share is in `common`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.markup import escape

from agent_cl.cli.adapters import adapters_app
from agent_cl.cli.common import CONFIG_PATH, DEBUG, err
from agent_cl.cli.day import demo, init, run
from agent_cl.cli.eval import evaluate
from agent_cl.cli.memory import memory_app
from agent_cl.cli.night import daemon, sleep, status
from agent_cl.cli.report import report
from agent_cl.cli.serve import serve

app = typer.Typer(
    help="A LangGraph agent that gets better overnight.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(adapters_app, name="adapters")
app.add_typer(memory_app, name="memory")
for command in (init, demo, run, sleep, daemon, status, report, serve):
    app.command()(command)
app.command("eval")(evaluate)


@app.callback()
def options(
    config: Path | None = typer.Option(
        None, "--config", help="settings file (default ./agent-cl.toml; docs/configuration.md)"
    ),
    debug: bool = typer.Option(False, "--debug", help="show tracebacks instead of one line"),
):
    """A LangGraph agent that gets better overnight."""
    CONFIG_PATH.clear()  # one invocation's --config never leaks into the next (tests, apps)
    if config is not None:
        CONFIG_PATH.append(config)
    DEBUG[:] = [debug]


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # a bug or an environment problem: one line unless --debug
        if any(DEBUG):
            raise
        err.print(
            f"[bold red]error:[/] {escape(f'{type(exc).__name__}: {exc}')} "
            "(agent-cl --debug ... shows the traceback)",
            soft_wrap=True,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
