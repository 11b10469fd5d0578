"""The day-time agent: retrieve -> respond -> verify -> log.

Retrieved demonstrations enter the prompt as earlier user/assistant turns: measured on the
embedded model, examples inlined into one message get copied verbatim, while earlier turns
work as few-shot evidence. Only verified episodes are logged, so the store holds successes.
"""

from __future__ import annotations

from collections.abc import Callable

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langgraph.graph import END, START, StateGraph

from agent_cl.config import Tenant
from agent_cl.memory.base import DemonstrationStore
from agent_cl.memory.schema import Demonstration, DemoStatus
from agent_cl.models.chat import DEFAULT_SYSTEM, task_message

from .fewshot import demonstration_messages
from .middleware import DEFAULT_MIN_SCORE
from .state import AgentInput, AgentState
from .verifiers import expected_answer_verifier

SYSTEM_PROMPT = DEFAULT_SYSTEM
Verifier = Callable[[AgentState], bool]


def demonstration_turns(demos: list[Demonstration]) -> list[BaseMessage]:
    return [turn for demo in demos for turn in demonstration_messages(demo)]


def task_messages(
    question: str, context: str | None = None, retrieved: list[Demonstration] | None = None
) -> list[BaseMessage]:
    """The whole prompt for one task; evaluations build theirs here too, so they match."""
    messages: list[BaseMessage] = [SystemMessage(SYSTEM_PROMPT)]
    messages += demonstration_turns(retrieved or [])
    messages.append(HumanMessage(task_message(question, context)))
    return messages


class _Nodes:
    """The agent's four steps over one store, chat model and verifier."""

    def __init__(self, chat_model, store, verifier, k: int, tenant: str, min_score: float):
        self.chat_model, self.store, self.verifier = chat_model, store, verifier
        self.k, self.tenant, self.min_score = k, tenant, min_score

    def retrieve(self, state: AgentState) -> dict:
        question = state.get("question", "")
        if not question or not question.strip():
            raise ValueError("the agent needs a non-empty 'question'")
        store = self.store
        if store is None or self.k == 0 or not store.supports_vector_search:
            return {"retrieved": []}
        hits = store.search(question, k=self.k, tenant=self.tenant)
        return {"retrieved": [h.demonstration for h in hits if h.score >= self.min_score]}

    def respond(self, state: AgentState) -> dict:
        messages = task_messages(state["question"], state.get("context"), state.get("retrieved"))
        reply = self.chat_model.invoke(messages)
        return {
            "messages": [*messages, reply],
            "answer": reply.text if hasattr(reply, "text") else str(reply.content),
            "adapter_version": reply.response_metadata.get("adapter_version"),
        }

    def verify(self, state: AgentState) -> dict:
        # An empty answer teaches nothing, whatever a custom verifier says.
        answer = state.get("answer", "")
        return {"verified": bool(answer.strip()) and bool(self.verifier(state))}

    def log(self, state: AgentState) -> dict:
        if self.store is None:
            return {"demonstration_id": None}
        metadata = {"expected": state["expected"]} if state.get("expected") else {}
        demo = Demonstration(
            query=state["question"],
            context=state.get("context") or "",
            answer=state["answer"],
            tenant=self.tenant,
            skill=state.get("skill") or "general",
            status=DemoStatus.PENDING,
            metadata=metadata,
        )
        [demo_id] = self.store.add([demo])
        return {"demonstration_id": demo_id}


def build_agent(
    chat_model: BaseChatModel,
    store: DemonstrationStore | None = None,
    *,
    verifier: Verifier = expected_answer_verifier,
    k: int = 2,
    tenant: str = "default",
    min_score: float = DEFAULT_MIN_SCORE,
):
    """Compile the agent graph. `store=None` gives an agent without memory (a baseline).
    `min_score` (default 0.8, measured by the demo) drops weak neighbours: below it they were
    other facts' demonstrations and misled the model."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    nodes = _Nodes(chat_model, store, verifier, k, Tenant(tenant), min_score)
    retrieve, respond, verify, log = nodes.retrieve, nodes.respond, nodes.verify, nodes.log

    graph = StateGraph(AgentState, input_schema=AgentInput)
    graph.add_node("retrieve", retrieve)
    graph.add_node("respond", respond)
    graph.add_node("verify", verify)
    graph.add_node("log", log)
    graph.add_edge(START, "retrieve")
    graph.add_edge("retrieve", "respond")
    graph.add_edge("respond", "verify")
    graph.add_conditional_edges("verify", lambda s: "log" if s["verified"] else END, ["log", END])
    graph.add_edge("log", END)
    return graph.compile()
