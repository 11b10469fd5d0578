"""A plain LangGraph `StateGraph` whose long-term memory is agent-cl's Chroma-backed store,
reached the LangGraph way: `graph.compile(store=...)` and `runtime.store` in the nodes. What a
user tells it survives the process (or, with `ChromaStore.from_url`, is shared by several).
Runs on the embedded model, offline:

    python examples/stategraph_store.py [STORE_DIR]      # prints remembered_items=N last
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from langchain_core.messages import AIMessage, SystemMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.runtime import Runtime

from agent_cl.config import Settings
from agent_cl.memory.embeddings import default_embedder
from agent_cl.memory.langgraph_store import ChromaStore
from agent_cl.models.provision import provisioned_model_dir
from agent_cl.serving.chat_model import BackendChatModel
from agent_cl.serving.local_backend import LocalBackend

USER = ("users", "ana")


def build(model: BackendChatModel):
    def recall(state: MessagesState, runtime: Runtime) -> dict:
        """What the store remembers about the user, closest to the question first."""
        question = state["messages"][-1].content
        memories = runtime.store.search(USER, query=question, limit=3)
        notes = "; ".join(m.value["text"] for m in memories) or "nothing yet"
        return {"messages": [SystemMessage(f"What you know about the user: {notes}.")]}

    def respond(state: MessagesState) -> dict:
        return {"messages": [model.invoke(state["messages"])]}

    def remember(state: MessagesState, runtime: Runtime) -> dict:
        said = [m.content for m in state["messages"] if m.type == "human"][-1]
        if said.lower().startswith(("my ", "i ")):
            key = f"fact-{len(runtime.store.search(USER, limit=100))}"
            runtime.store.put(USER, key, {"text": said})
        return {}

    graph = StateGraph(MessagesState)
    graph.add_node("recall", recall)
    graph.add_node("respond", respond)
    graph.add_node("remember", remember)
    graph.add_edge(START, "recall")
    graph.add_edge("recall", "respond")
    graph.add_edge("respond", "remember")
    graph.add_edge("remember", END)
    return graph


def main() -> None:
    settings = Settings.load()
    model = BackendChatModel(
        backend=LocalBackend(provisioned_model_dir(settings.model_dir, settings.models_dir)),
        max_new_tokens=32,
    )
    embedder = default_embedder()
    index = {"dims": embedder.dimension, "embed": embedder.embed, "fields": ["text"]}
    path = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()) / "langgraph"
    with ChromaStore.open(path, index=index) as store:
        app = build(model).compile(store=store)
        for said in ("My favourite colour is teal.", "I live in Kasfen.", "Where do I live?"):
            out = app.invoke({"messages": [{"role": "user", "content": said}]})
            reply = next(m for m in reversed(out["messages"]) if isinstance(m, AIMessage))
            print(f"user: {said}\nagent: {reply.content}")
        remembered = store.search(USER, limit=100)
    print(f"remembered_items={len(remembered)}")


if __name__ == "__main__":
    main()
