"""Does an app's own memory help or hurt a tool skill? Few-shot formats side by side.

An app runs `create_agent(model, tools=[lab_leader], middleware=[DemonstrationMiddleware(...)])`
on the served model (in process, `BackendChatModel.bind_tools`). The middleware retrieves up to
2 logged tool episodes (cosine >= 0.8) and shows them before the task. Held-out labs (never
demonstrated) are asked three ways in one run, on the same weights and store:

- `none`: no demonstrations (k = 0);
- `prose`: each episode as its question and final answer (how the middleware showed them
  until 2026-12-01);
- `run`: each episode as the turns it was, tool call and result included (`graphs.fewshot`,
  the product's rule now).

A lab counts when the agent's run called `lab_leader` with exactly that lab (the day's
verifier, `called_lab_leader`); nothing is logged, so no format sees another's runs. By
default the store is fresh: `--demos` ideal tool runs on the base model. `--store` (copied
first, never written) and `--adapter` measure an existing agent instead, such as a long run's
home after its tools nights.

    python benchmarks/fewshot_tools.py --out bench-results/fewshot_tools.json   # ~5 min, 2 cores
    python benchmarks/fewshot_tools.py --store HOME/store --tenant long-run \\
        --adapter HOME/adapters/long-run/v0010 --first-lab 380
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORMATS = ("none", "prose", "run")


def _never(messages) -> bool:
    return False


def prose_turns(episodes, messages):
    """The earlier rule: the question and final answer only, marked as demonstration turns."""
    from langchain_core.messages import AIMessage, HumanMessage

    from agent_cl.graphs.middleware import _DEMO_MARK, message_text

    task = next(m for m in messages if m.type == "human")
    turns = []
    for demo in episodes.retrieve(message_text(task)):
        turns.append(HumanMessage(demo.query, response_metadata=dict(_DEMO_MARK)))
        turns.append(AIMessage(demo.answer, response_metadata=dict(_DEMO_MARK)))
    return turns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labs", type=int, default=12, help="held-out labs asked")
    parser.add_argument("--demos", type=int, default=12, help="labs demonstrated (fresh store)")
    parser.add_argument("--first-lab", type=int, default=None, help="default: --demos")
    parser.add_argument("--store", type=Path, default=None, help="an agent's Chroma store")
    parser.add_argument("--tenant", default="default")
    parser.add_argument("--adapter", type=Path, default=None, help="a published adapter dir")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "fewshot_tools.json"))
    args = parser.parse_args()
    if args.labs < 1 or args.demos < 1:
        parser.error("--labs and --demos must be at least 1")
    for path in (args.store, args.adapter):
        if path is not None and not path.is_dir():
            parser.error(f"{path} is not a directory")

    from langchain.agents import create_agent
    from langchain_core.messages import HumanMessage

    from agent_cl.config import Settings
    from agent_cl.evals.suites import _tool_trajectory
    from agent_cl.evals.tools_skill import build_tool_tasks, called_lab_leader, lab_leader
    from agent_cl.graphs.middleware import DemonstrationMiddleware
    from agent_cl.memory.chroma import ChromaDemonstrationStore
    from agent_cl.models.provision import provisioned_model_dir
    from agent_cl.serving.chat_model import BackendChatModel
    from agent_cl.serving.local_backend import LocalBackend

    settings = Settings.load()
    model_dir = provisioned_model_dir(settings.model_dir, settings.models_dir)
    scratch = Path(tempfile.mkdtemp(prefix="agent-cl-fewshot-"))
    first = args.demos if args.first_lab is None else args.first_lab
    labs = build_tool_tasks(first + args.labs, seed=0)
    if args.store is not None:
        shutil.copytree(args.store, scratch / "store")
        store = ChromaDemonstrationStore.open(scratch / "store")
    else:
        store = ChromaDemonstrationStore.open(scratch / "store")
        demos = [_tool_trajectory(t.question, t.lab, t.leader) for t in labs[: args.demos]]
        store.add([d.model_copy(update={"tenant": args.tenant}) for d in demos])
    held_out = labs[first:]
    backend = LocalBackend(model_dir, torch_threads=settings.torch_threads)
    if args.adapter is not None:
        backend.swap(1, args.adapter)
    chat = BackendChatModel(backend=backend, max_new_tokens=40)
    rows = {}
    for fmt in FORMATS:
        middleware = DemonstrationMiddleware(
            store,
            verifier=_never,  # log nothing: a lab solved by one format must not help the next
            skill="tools",
            tenant=args.tenant,
            k=0 if fmt == "none" else 2,
        )
        if fmt == "prose":
            episodes = middleware.episodes
            episodes.few_shot = lambda messages, e=episodes: prose_turns(e, messages)
        agent = create_agent(chat, tools=[lab_leader], middleware=[middleware])
        called, shots = [], []
        for task in held_out:
            shots.append(len(middleware.episodes.retrieve(task.question)))
            try:
                state = agent.invoke(
                    {"messages": [HumanMessage(task.question)]}, {"recursion_limit": 6}
                )
                called.append(bool(called_lab_leader(state["messages"])))
            except Exception:  # a run that loops or breaks fails, as in an app
                called.append(False)
        rows[fmt] = {"called": sum(called), "n": len(called), "per_lab": called, "shots": shots}
        print(f"{fmt:>5}: {sum(called)}/{len(called)} held-out labs called the tool", flush=True)
    result = {
        "store": str(args.store) if args.store else f"fresh, {args.demos} ideal tool runs",
        "adapter": str(args.adapter) if args.adapter else None,
        "held_out_labs": [t.lab for t in held_out],
        "rows": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(" ".join(f"{fmt}={rows[fmt]['called']}/{rows[fmt]['n']}" for fmt in FORMATS))


if __name__ == "__main__":
    main()
