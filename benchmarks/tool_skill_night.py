"""Can one night teach the embedded model a tool-use skill from logged trajectories?

Eight `create_agent` runs are logged through `DemonstrationMiddleware` with the tools suite's
structural verifier (`agent_cl.evals.tools_skill.called_lab_leader`): each is an ideal
trajectory (the `lab_leader` call, the tool's result, the answer), the kind a stronger model or
a user's correction provides. A night with the default recipe trains on every assistant turn
and the gate replays the eight questions through the candidate and that verifier. Before and
after, the served model (in process, `BackendChatModel.bind_tools`) is asked eight *other* labs'
questions: does it call the tool with the right lab?

    python benchmarks/tool_skill_night.py            # about 10 min on 2 CPU cores
    python benchmarks/tool_skill_night.py --no-gate  # publish whatever the night produced
    python benchmarks/tool_skill_night.py --served   # also through `agent-cl serve` (vLLM)
With --served the published version is also served by a real vLLM server started as `agent-cl
serve` starts it, and a plain `ChatOpenAI(...).bind_tools([lab_leader])` asks the held-out labs:
the path an app outside agent-cl takes. Writes bench-results/tool_skill_night.json; the last
line is `heldout_tool_calls_before=X after=Y served_after=Z gate=passed|rejected`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", type=int, default=8, help="logged trajectories")
    parser.add_argument("--heldout", type=int, default=8, help="other labs asked before/after")
    parser.add_argument("--no-gate", action="store_true")
    parser.add_argument("--served", action="store_true", help="also ask through vLLM")
    parser.add_argument("--out", default=str(ROOT / "bench-results" / "tool_skill_night.json"))
    args = parser.parse_args()

    from langchain.agents import create_agent
    from langchain_core.messages import HumanMessage

    from agent_cl.config import Settings
    from agent_cl.evals.tools_skill import (
        Demonstrator,
        build_tool_tasks,
        called_lab_leader,
        ideal_run,
        lab_leader,
    )
    from agent_cl.graphs.middleware import DemonstrationMiddleware
    from agent_cl.memory.chroma import ChromaDemonstrationStore
    from agent_cl.models.provision import provisioned_model_dir
    from agent_cl.night.night import Night
    from agent_cl.night.plan import NightPlan
    from agent_cl.serving.chat_model import BackendChatModel
    from agent_cl.serving.local_backend import LocalBackend

    base = Settings.load()
    model_dir = provisioned_model_dir(base.model_dir, base.models_dir)
    settings = Settings(
        home=Path(tempfile.mkdtemp(prefix="agent-cl-tools-")),
        model_dir=model_dir,
        torch_threads=base.torch_threads,
    )
    tasks = build_tool_tasks(args.train + args.heldout, seed=0)
    train, heldout = tasks[: args.train], tasks[args.train :]
    store = ChromaDemonstrationStore.open(settings.store_dir)
    memory = DemonstrationMiddleware(store, verifier=called_lab_leader, skill="tools")
    for task in train:
        agent = create_agent(
            Demonstrator(messages=iter(ideal_run(task))), tools=[lab_leader], middleware=[memory]
        )
        agent.invoke({"messages": [HumanMessage(task.question)]})
    logged = store.pending("default")
    print(json.dumps({"logged": len(logged), "verifier": logged[0].metadata.get("verifier")}))

    backend = LocalBackend(model_dir, torch_threads=settings.torch_threads)
    chat = BackendChatModel(backend=backend, max_new_tokens=48).bind_tools([lab_leader])

    def heldout_calls() -> tuple[float, list[str]]:
        replies = [chat.invoke([HumanMessage(t.question)]) for t in heldout]
        right = [
            called_lab_leader([HumanMessage(t.question), r]) is True
            for t, r in zip(heldout, replies, strict=True)
        ]
        shown = [str(r.tool_calls or r.content)[:80] for r in replies[:3]]
        return sum(right) / len(right), shown

    before, before_examples = heldout_calls()
    print(json.dumps({"heldout_before": before, "examples": before_examples}), flush=True)
    night_settings = dataclasses.replace(settings, gate_enabled=not args.no_gate)
    plan = NightPlan.from_settings(night_settings)
    job = Night(night_settings, store).job(
        "default", on_publish=lambda v: backend.swap(v.version, v.path)
    )
    t0 = time.perf_counter()
    report = job.run()
    seconds = time.perf_counter() - t0
    after, after_examples = heldout_calls()
    result = {
        "args": vars(args),
        "method": plan.method,
        "logged": len(logged),
        "training_examples": report.train.get("steps"),
        "status": report.status,
        "gate": report.gate,
        "sleep_seconds": seconds,
        "heldout_before": before,
        "heldout_after": after,
        "examples_before": before_examples,
        "examples_after": after_examples,
        "served_version": backend.adapter_version,
    }
    if args.served:
        result["served_after"], result["served_examples"] = served_heldout(
            settings, model_dir, heldout
        )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps({k: v for k, v in result.items() if k != "gate"}, default=str))
    gate = "passed" if report.status == "published" and not args.no_gate else report.status
    served = result.get("served_after")
    served_text = f" served_after={served:.3f}" if served is not None else ""
    print(f"heldout_tool_calls_before={before:.3f} after={after:.3f}{served_text} gate={gate}")


def served_heldout(settings, model_dir, heldout) -> tuple[float, list[str]]:
    """The held-out labs through a real vLLM server serving the tenant's current version, asked
    by a plain ChatOpenAI with the tool bound (no agent-cl code on the client side)."""
    from langchain_core.messages import HumanMessage
    from langchain_openai import ChatOpenAI

    from agent_cl.adapters.registry import registry_for
    from agent_cl.evals.tools_skill import called_lab_leader, lab_leader
    from agent_cl.serving.replicas import ReplicaSet
    from agent_cl.serving.vllm_server import VLLMServer, VLLMServerConfig

    registry = registry_for(settings, "default")
    config = VLLMServerConfig(
        model_dir,
        max_lora_rank=settings.adapter_max_rank,
        adapters_root=registry.root.parent,
        log_path=settings.home / "vllm.log",
    )
    with VLLMServer(config) as server:
        ReplicaSet.from_urls([server.url], registry, tenant="default").serve_current()
        chat = ChatOpenAI(
            base_url=f"{server.url}/v1", api_key="unused", model="agent-cl/default",
            temperature=0, max_tokens=48,
        ).bind_tools([lab_leader])  # fmt: skip
        replies = [chat.invoke([HumanMessage(t.question)]) for t in heldout]
    right = [
        called_lab_leader([HumanMessage(t.question), r]) is True
        for t, r in zip(heldout, replies, strict=True)
    ]
    return sum(right) / len(right), [str(r.tool_calls or r.content)[:80] for r in replies[:3]]


if __name__ == "__main__":
    main()
