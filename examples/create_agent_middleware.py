"""An existing `create_agent` agent with a tool gains agent-cl in three lines: its successful
runs are logged as demonstrations (tool calls and results included) and similar past runs are
shown to the model as examples. Runs on the embedded model, offline:

    python examples/create_agent_middleware.py            # prints logged_demonstrations=N last

A night (`agent-cl sleep`) then consolidates what was logged into the model's weights.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from langchain.agents import create_agent
from langchain_core.tools import tool

from agent_cl.config import Settings
from agent_cl.models.provision import provisioned_model_dir
from agent_cl.serving.chat_model import BackendChatModel
from agent_cl.serving.local_backend import LocalBackend

LEADERS = {"Nerost Lab": "Quenvel Ostrami", "Dorbri Unit": "Fenna Kasfen"}


@tool
def lab_leader(lab: str) -> str:
    """Who leads a lab of the organisation."""
    return LEADERS.get(lab, "unknown")


def named_the_right_leader(messages) -> bool:
    """The app's own idea of success: the final answer names the asked lab's leader."""
    lab = next(lab for lab in LEADERS if lab in messages[0].content)
    return LEADERS[lab] in messages[-1].content


def main() -> None:
    settings = Settings.load()
    model = BackendChatModel(
        backend=LocalBackend(provisioned_model_dir(settings.model_dir, settings.models_dir)),
        max_new_tokens=32,
    )
    # --- agent-cl: the three added lines --------------------------------------------------
    from agent_cl.graphs.middleware import DemonstrationMiddleware
    from agent_cl.memory.chroma import ChromaDemonstrationStore

    memory = DemonstrationMiddleware(
        ChromaDemonstrationStore.open(
            Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
        ),
        verifier=named_the_right_leader,
    )
    # ---------------------------------------------------------------------------------------
    agent = create_agent(
        model,
        tools=[lab_leader],
        system_prompt="Answer in one sentence. Facts: "
        + "; ".join(f"the {lab} is led by {name}" for lab, name in LEADERS.items()),
        middleware=[memory],  # the existing agent, plus this argument
    )
    logged = 0
    for lab in [*LEADERS, *LEADERS]:  # the second pass retrieves the first pass's runs
        out = agent.invoke({"messages": [{"role": "user", "content": f"Who leads the {lab}?"}]})
        answer = out["messages"][-1].content
        demo_id = out.get("agent_cl_demonstration_id")
        logged += demo_id is not None
        print(f"{lab}: {answer!r} -> {'logged' if demo_id else 'not logged'}")
    print(f"logged_demonstrations={logged}")


if __name__ == "__main__":
    main()
