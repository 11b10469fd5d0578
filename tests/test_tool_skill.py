"""A tool-use episode from a user's create_agent, end to end: logged by the middleware with its
trajectory and verifier, trained on its assistant turns (the call included), and gated by
replaying the question through the candidate and that same verifier."""

from __future__ import annotations

import json

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from agent_cl.adapters.registry import AdapterRegistry
from agent_cl.consolidation.training_config import ConsolidationConfig
from agent_cl.consolidation.trajectories import expand, prompt_messages
from agent_cl.evals import tools_skill
from agent_cl.graphs.middleware import DemonstrationMiddleware
from agent_cl.memory.inmemory import InMemoryDemonstrationStore
from agent_cl.memory.schema import DemoStatus
from agent_cl.night.gate import GateConfig, demonstration_items
from agent_cl.night.sleep import SleepJob
from tests.test_middleware import CannedBackend, scripted

CALL = {"name": "lab_leader", "args": {"lab": "Nerost"}, "id": "c1"}
CALLS: list[list] = []  # what the verifier was shown


def recording_verifier(messages):
    """The suite's verifier, recording each judgement (importable: the gate replays it)."""
    CALLS.append(list(messages))
    return tools_skill.called_lab_leader(messages)


def log_tool_episode(store, **agent_options) -> None:
    middleware = DemonstrationMiddleware(store, verifier=recording_verifier)
    model = scripted(AIMessage("", tool_calls=[CALL]), AIMessage("Quenvel Ostrami leads it."))
    agent = create_agent(
        model, tools=[tools_skill.lab_leader], middleware=[middleware], **agent_options
    )
    agent.invoke({"messages": [HumanMessage("Who leads the Nerost Lab?")]})


def test_trajectory_becomes_one_example_per_assistant_turn(hash_embedder):
    store = InMemoryDemonstrationStore(hash_embedder)
    log_tool_episode(store)
    [demo] = store.pending("default")
    assert demo.metadata["verifier"] == "tests.test_tool_skill:recording_verifier"
    call_turn, final_turn = expand([demo])
    assert call_turn.answer == (
        '<tool_call>{"name": "lab_leader", "arguments": {"lab": "Nerost"}}</tool_call>'
    )
    system, question = prompt_messages(call_turn)
    assert question == {"role": "user", "content": "Who leads the Nerost Lab?"}
    assert system["role"] == "system" and "lab_leader" in system["content"]  # the tools prompt
    assert final_turn.answer == "Quenvel Ostrami leads it."
    assert [m["role"] for m in prompt_messages(final_turn)] == [
        "system",
        "user",
        "assistant",
        "tool",
    ]
    assert expand([final_turn]) == [final_turn]  # expanding twice changes nothing
    # the gate replays the question and judges the reply with the episode's own verifier
    [item] = demonstration_items([demo])
    assert item.is_correct(call_turn.answer) is True
    assert item.is_correct("Quenvel Ostrami leads it.") is False  # no call: not the skill


def test_a_night_trains_and_gates_the_tool_skill_with_its_verifier(
    hash_embedder, tiny_model_dir, tmp_path
):
    store = InMemoryDemonstrationStore(hash_embedder)
    log_tool_episode(store)
    CALLS.clear()
    job = SleepJob(
        store=store,
        registry=AdapterRegistry(tmp_path / "adapters"),
        model_dir=tiny_model_dir,
        config=ConsolidationConfig(method="sft", steps=2, batch_size=2),
        gate=GateConfig(max_kl_from_base=None, max_new_tokens=8, retention_items=4),
        torch_threads=1,
    )
    report = job.run()
    assert report.train["steps"] == 2
    before, after = report.gate["before"], report.gate["after"]
    assert before["new_skill"] is not None and after["new_skill"] is not None  # it was scored
    assert len(CALLS) == 2  # by the verifier: once before training, once after
    assert [m.type for m in CALLS[-1]] == ["human", "ai"]
    # the random tiny model cannot learn a tool call in 2 steps: the gate says so
    assert (
        report.status == "rejected" and "new-skill accuracy 0.000 -> 0.000" in report.gate["reason"]
    )
    [demo] = store.list()
    assert demo.status == DemoStatus.REJECTED


def test_the_night_trains_and_gates_under_the_prompt_the_app_serves_with(hash_embedder):
    """One renderer (models.conversation): the call turn the night trains on, the question the
    gate asks, and what `bind_tools` sends for the same question are one conversation, with
    and without the app's own system prompt."""
    from langchain_core.utils.function_calling import convert_to_openai_tool

    from agent_cl.serving.chat_model import BackendChatModel

    question = "Who leads the Nerost Lab?"
    for options in ({}, {"system_prompt": "You answer for the lab directory."}):
        store = InMemoryDemonstrationStore(hash_embedder)
        log_tool_episode(store, **options)
        [demo] = store.pending("default")
        assert json.loads(demo.metadata["tools"]) == [
            convert_to_openai_tool(tools_skill.lab_leader)
        ]
        assert demo.metadata.get("system") == options.get("system_prompt")
        call_turn, _ = expand([demo])
        trained = prompt_messages(call_turn)
        backend = CannedBackend(call_turn.answer)
        app = BackendChatModel(backend=backend).bind_tools([tools_skill.lab_leader])
        system = [SystemMessage(options["system_prompt"])] if options else []
        reply = app.invoke([*system, HumanMessage(question)])
        assert reply.tool_calls[0]["args"] == {"lab": "Nerost"}
        assert backend.prompts[0] == trained  # served exactly as trained
        [item] = demonstration_items([demo])
        assert item.conversation == trained  # and gated the same way
        if options:
            assert trained[0]["content"].startswith("You answer for the lab directory.\n\n")
