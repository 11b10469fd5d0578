"""agent-cl in a user's own agent: create_agent middleware and StateGraph nodes retrieve
demonstrations before the model and log judged trajectories after the run."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, messages_from_dict
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from pydantic import Field

from agent_cl.consolidation.trajectories import expand
from agent_cl.graphs.middleware import (
    DemonstrationMiddleware,
    EpisodeLogger,
    log_node,
    retrieve_node,
    tool_results_verifier,
)
from agent_cl.memory.inmemory import InMemoryDemonstrationStore
from agent_cl.memory.schema import DemoStatus
from agent_cl.serving.backend import GenerationResult
from agent_cl.serving.chat_model import BackendChatModel


@tool
def lookup(name: str) -> str:
    """The leader of a lab."""
    return {"Nerost": "Quenvel Ostrami"}.get(name, "unknown")


class ScriptedModel(GenericFakeChatModel):
    """A fake tool-calling model that also records what each call was shown."""

    seen: list[list[Any]] = Field(default_factory=list)

    def bind_tools(self, tools, **kwargs):
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append(list(messages))
        return super()._generate(messages, stop, run_manager, **kwargs)


def scripted(*replies: AIMessage) -> ScriptedModel:
    return ScriptedModel(messages=iter(replies), seen=[])


def tool_run() -> list[AIMessage]:
    call = {"name": "lookup", "args": {"name": "Nerost"}, "id": "c1"}
    return [AIMessage("", tool_calls=[call]), AIMessage("Quenvel Ostrami leads it.")]


@pytest.fixture
def store(hash_embedder):
    return InMemoryDemonstrationStore(hash_embedder)


def test_a_verified_tool_run_is_logged_as_a_trajectory_and_retrieved_next_time(store):
    middleware = DemonstrationMiddleware(store, verifier=tool_results_verifier, min_score=0.5)
    agent = create_agent(scripted(*tool_run()), tools=[lookup], middleware=[middleware])
    out = agent.invoke({"messages": [HumanMessage("Who leads the Nerost Lab?")]})
    [demo] = store.list(tenant="default")
    assert out["agent_cl_demonstration_id"] == demo.id
    assert demo.status == DemoStatus.PENDING and demo.answer == "Quenvel Ostrami leads it."
    kinds = [m.type for m in messages_from_dict(demo.messages)]
    assert kinds == ["human", "ai", "tool", "ai"]  # the tool call and its result are kept
    assert messages_from_dict(demo.messages)[2].content == "Quenvel Ostrami"

    model = scripted(*tool_run())
    agent = create_agent(model, tools=[lookup], middleware=[middleware])
    agent.invoke({"messages": [HumanMessage("Who leads the Nerost Lab?")]})
    first_call = model.seen[0]
    # the few-shot turns are the whole run, tool call and result included (a tool episode shown
    # as its question and prose answer teaches prose: graphs.fewshot), then the task
    shot = first_call[:4]
    assert [m.type for m in shot] == ["human", "ai", "tool", "ai"]
    assert shot[1].tool_calls[0]["args"] == {"name": "Nerost"}
    assert [shot[0].content, shot[2].content, shot[3].content] == [
        demo.query,
        "Quenvel Ostrami",
        demo.answer,
    ]
    assert first_call[4].content == "Who leads the Nerost Lab?" and len(first_call) == 5
    assert len(store.list()) == 1  # the same episode again is stored once, without the shots


def test_undecided_runs_wait_for_feedback_and_a_correction_becomes_the_demonstration(store):
    middleware = DemonstrationMiddleware(store, verifier=lambda messages: None)
    agent = create_agent(scripted(AIMessage("Brilda leads it.")), middleware=[middleware])
    out = agent.invoke({"messages": [HumanMessage("Who leads the Nerost Lab?")]})
    run_id = out["agent_cl_run_id"]
    [waiting] = store.list(status=DemoStatus.AWAITING)
    assert store.pending("default") == []  # a night would not learn it
    fixed_id = middleware.record_outcome(run_id, success=False, correction="Quenvel leads it.")
    assert store.get([waiting.id])[0].status == DemoStatus.REJECTED
    [fixed] = store.pending("default")
    assert fixed.id == fixed_id and fixed.answer == "Quenvel leads it."
    # the night trains on the trajectory's assistant turns: the wrong answer must be gone
    [example] = expand([fixed])
    assert example.answer == "Quenvel leads it."
    assert "Brilda" not in str(fixed.messages)
    with pytest.raises(KeyError):
        middleware.record_outcome(run_id, success=True)  # already decided


def test_failed_runs_are_not_logged_and_bad_options_are_refused(store):
    middleware = DemonstrationMiddleware(store, verifier=lambda messages: False)
    agent = create_agent(scripted(AIMessage("no idea")), middleware=[middleware])
    assert agent.invoke({"messages": [HumanMessage("q?")]})["agent_cl_demonstration_id"] is None
    assert store.list() == []
    for bad in ({"k": -1}, {"token_budget": -5}, {"min_score": 2.0}, {"tenant": "a b"}):
        with pytest.raises(ValueError):
            EpisodeLogger(store, **bad)


def test_token_budget_limits_the_turns(store):
    logger = EpisodeLogger(store, verifier=lambda m: True, k=3, min_score=-1.0, token_budget=45)
    for i in range(3):
        logger.log([HumanMessage(f"Who leads lab {i}?"), AIMessage("x" * 60)])
    assert len(logger.retrieve("Who leads lab 1?")) == 2  # 3 fit k, only 2 fit 45 tokens (21 each)


def test_stategraph_nodes_retrieve_and_log(store):
    episodes = EpisodeLogger(store, verifier=lambda m: "Quenvel" in m[-1].content)
    episodes.log([HumanMessage("Who leads the Nerost Lab?"), AIMessage("Quenvel leads it.")])
    seen = []

    def model(state: MessagesState) -> dict:
        seen.append([m.content for m in state["messages"]])
        return {"messages": [AIMessage("Quenvel Ostrami.")]}

    graph = StateGraph(MessagesState)
    graph.add_node("retrieve", retrieve_node(episodes))
    graph.add_node("model", model)
    graph.add_node("log", log_node(episodes))
    graph.add_edge(START, "retrieve")
    graph.add_edge("retrieve", "model")
    graph.add_edge("model", "log")
    graph.add_edge("log", END)
    app = graph.compile()
    app.invoke({"messages": [HumanMessage("Who heads the Nerost Lab?")]})
    assert seen[0] == [
        "Who leads the Nerost Lab?",
        "Quenvel leads it.",
        "Who heads the Nerost Lab?",
    ]
    logged = {d.query for d in store.list()}
    assert logged == {"Who leads the Nerost Lab?", "Who heads the Nerost Lab?"}  # not the turn


class CannedBackend:
    """A ModelBackend that answers with fixed texts (what the embedded model would emit)."""

    adapter_version = 3

    def __init__(self, *texts: str) -> None:
        self.texts = list(texts)
        self.prompts: list = []

    def generate(self, conversations, *, max_new_tokens=48, temperature=0.0):
        self.prompts.append(conversations[0])
        return GenerationResult([self.texts.pop(0)], self.adapter_version)

    def swap(self, version, adapter_path=None) -> None: ...

    def health(self) -> dict:
        return {"ok": True}


def test_backend_chat_model_calls_tools_streams_and_runs_async():
    call = '<tool_call>{"name": "lookup", "arguments": {"name": "Nerost"}}</tool_call>'
    backend = CannedBackend(call, "Quenvel Ostrami leads it.", "plain", "async answer")
    agent = create_agent(BackendChatModel(backend=backend), tools=[lookup])
    out = agent.invoke({"messages": [HumanMessage("Who leads the Nerost Lab?")]})
    assert [m.type for m in out["messages"]] == ["human", "ai", "tool", "ai"]
    assert out["messages"][1].tool_calls[0]["args"] == {"name": "Nerost"}
    assert out["messages"][2].content == "Quenvel Ostrami"
    assert "lookup" in backend.prompts[0][0]["content"]  # the tools were described
    assert backend.prompts[1][-1] == {"role": "tool", "content": "Quenvel Ostrami"}
    chat = BackendChatModel(backend=backend)
    chunks = list(chat.stream("hi"))
    assert "".join(c.content for c in chunks) == "plain"
    assert chunks[0].response_metadata["adapter_version"] == 3  # streamed chunks carry it
    reply = asyncio.run(chat.ainvoke("hi"))
    assert reply.content == "async answer" and reply.response_metadata["adapter_version"] == 3


def test_unknown_tools_and_bad_json_stay_text():
    backend = CannedBackend(
        '<tool_call>{"name": "rm_rf", "arguments": {}}</tool_call>', "<tool_call>{bad"
    )
    chat = BackendChatModel(backend=backend).bind_tools([lookup])
    assert chat.invoke("x").tool_calls == []
    assert chat.invoke("x").content == "<tool_call>{bad"
