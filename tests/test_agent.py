from __future__ import annotations

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from agent_cl.graphs import build_agent, task_messages
from agent_cl.memory.inmemory import InMemoryDemonstrationStore
from agent_cl.memory.schema import Demonstration
from agent_cl.scoring.matching import answer_matches
from agent_cl.serving.chat_model import BackendChatModel
from agent_cl.serving.local_backend import LocalBackend


@pytest.fixture(scope="module")
def chat(tiny_model_dir):
    return BackendChatModel(backend=LocalBackend(tiny_model_dir, torch_threads=1), max_new_tokens=5)


def scripted(*answers: str) -> GenericFakeChatModel:
    """Any LangChain chat model can drive the agent; this one replies from a script."""
    return GenericFakeChatModel(messages=iter([AIMessage(a) for a in answers]))


def test_verified_episode_is_logged_with_its_context(hash_embedder):
    store = InMemoryDemonstrationStore(hash_embedder)
    agent = build_agent(scripted("Ana leads it."), store, tenant="t")
    state = agent.invoke(
        {"question": "Who leads the lab?", "context": "Ana leads it.", "expected": "Ana"}
    )
    assert state["verified"] and state["demonstration_id"]
    [demo] = store.pending("t")
    assert demo.query == "Who leads the lab?" and demo.context == "Ana leads it."
    assert demo.answer == state["answer"] and demo.metadata == {"expected": "Ana"}


def test_unverified_or_empty_episode_is_not_logged(hash_embedder):
    store = InMemoryDemonstrationStore(hash_embedder)
    agent = build_agent(scripted("Bob leads it.", "  "), store)  # default: must contain expected
    state = agent.invoke({"question": "Who leads the lab?", "expected": "Ana"})
    assert state["verified"] is False and "demonstration_id" not in state
    always = build_agent(scripted("  "), store, verifier=lambda s: True)
    assert always.invoke({"question": "Who leads the lab?"})["verified"] is False
    assert store.count() == 0


def test_retrieved_demonstrations_become_earlier_turns(chat, hash_embedder):
    store = InMemoryDemonstrationStore(hash_embedder)
    store.add([Demonstration(query="Who leads the Talvor Lab?", answer="Fenna leads it.")])
    agent = build_agent(chat, store, verifier=lambda s: False, k=1)
    state = agent.invoke({"question": "Who heads the Talvor Lab?"})
    roles = [m.type for m in state["messages"]]
    assert roles == ["system", "human", "ai", "human", "ai"]
    assert state["messages"][2].content == "Fenna leads it."
    assert state["messages"] == [
        *task_messages("Who heads the Talvor Lab?", None, state["retrieved"]),
        state["messages"][-1],
    ]


def test_agent_without_memory_and_bad_input(chat):
    agent = build_agent(scripted("Hello."), None, verifier=lambda s: True)
    state = agent.invoke({"question": "Hi?"})
    assert state["retrieved"] == [] and state["demonstration_id"] is None
    with pytest.raises(ValueError, match="non-empty 'question'"):
        agent.invoke({"question": "   "})
    with pytest.raises(ValueError):
        build_agent(chat, None, k=-1)


def test_answer_matching_rules():
    assert answer_matches("It is led by Fenna  Quenmar!", "fenna quenmar")
    assert not answer_matches("Fenna", "Fenna Quenmar")
    assert not answer_matches("anything", "  ")
