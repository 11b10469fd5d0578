"""How a retrieved demonstration enters a prompt: as the turns it was.

One rule for every path that shows demonstrations in context (the middleware, the built-in
agent's graph, and the evals' text memory), so what is measured is what an app sends.

An episode that kept its run enters as that run: question, tool call, tool result, answer.
Shown only its question and final answer, a tool episode teaches the model to answer in prose:
through `create_agent` + `DemonstrationMiddleware` + `bind_tools` on the embedded model, 0 of 12
held-out labs got a tool call that way, on the base and on weights that called the tool for 11
of 12 without memory; shown the runs, 4 of 12 on the base and 10 of 12 on those weights
(`benchmarks/fewshot_tools.py`, docs/results/tools.md). A demonstration without a run (logged
by the built-in agent, or written by hand) enters as its question and answer.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, messages_from_dict

from agent_cl.memory.schema import Demonstration
from agent_cl.models.chat import task_message
from agent_cl.serving.chat_model import to_chat_messages


def demonstration_messages(
    demo: Demonstration, mark: dict[str, str] | None = None
) -> list[BaseMessage]:
    """`demo` as the turns it was, without its system prompt (the app's own comes first);
    `mark` goes into each turn's response_metadata, so a run can tell them from its own."""
    if demo.messages:
        turns = [m for m in messages_from_dict(demo.messages) if m.type != "system"]
    else:
        turns = [HumanMessage(task_message(demo.query)), AIMessage(demo.answer)]
    if mark:
        for turn in turns:
            turn.response_metadata = {**turn.response_metadata, **mark}
    return turns


def turns_text(turns: Sequence[BaseMessage]) -> str:
    """What the turns put in the prompt, as the served model reads them (tool calls rendered
    by the chat model's own conversion), for a token estimate."""
    return "\n".join(message["content"] for message in to_chat_messages(list(turns)))
