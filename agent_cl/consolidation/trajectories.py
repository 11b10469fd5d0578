"""From a logged run to what a night trains on: one example per assistant turn.

An episode logged by the middleware keeps the whole run (LangChain message dicts): the task,
the assistant's tool calls, the tool results, the final answer. Consolidation trains on the
assistant turns, each given what came before it, so a tool-use skill learns the call (written
as `scoring.tool_calls` text, the form the served model emits) as well as the answer. A plain
question/answer demonstration is one turn and stays as it is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from agent_cl.memory.schema import SYSTEM_KEY, TOOLS_KEY, Demonstration
from agent_cl.models.chat import ChatMessage
from agent_cl.models.conversation import conversation
from agent_cl.scoring.tool_calls import render_tool_call

_ROLES = {"human": "user", "ai": "assistant", "tool": "tool", "system": "system"}


def chat_messages(message_dicts: Sequence[dict]) -> list[ChatMessage]:
    """LangChain message dicts as chat-template messages (tool calls rendered as text)."""
    out: list[ChatMessage] = []
    for item in message_dicts:
        role = _ROLES.get(item.get("type", ""))
        if role is None:
            raise ValueError(f"a trajectory cannot hold a {item.get('type')!r} message")
        data = item.get("data", {})
        content = data.get("content", "")
        if not isinstance(content, str):  # content blocks: keep the text parts
            content = "".join(b.get("text", "") for b in content if isinstance(b, dict))
        for call in data.get("tool_calls") or []:
            content += render_tool_call(call["name"], call.get("args", {}))
        out.append({"role": role, "content": content})
    return out


def expand(demonstrations: Sequence[Demonstration]) -> list[Demonstration]:
    """Each trajectory becomes one training example per assistant turn: `messages` holds the
    turns before it and `answer` the turn itself. Demonstrations without a trajectory, or
    already expanded (their `messages` end before an assistant turn), pass through."""
    out: list[Demonstration] = []
    for demo in demonstrations:
        turns = demo.messages
        if not turns or turns[-1].get("type") != "ai":
            out.append(demo)
            continue
        rendered = chat_messages(turns)
        for i, item in enumerate(turns):
            if item.get("type") != "ai" or not rendered[i]["content"].strip():
                continue
            out.append(
                demo.model_copy(update={"messages": turns[:i], "answer": rendered[i]["content"]})
            )
    return out


def prompt_messages(demo: Demonstration) -> list[ChatMessage]:
    """What the student sees for one (expanded) example: the turns before its answer, or the
    bare query for a plain demonstration, behind the episode's system message."""
    return episode_conversation(demo, run_turns(demo))


def run_turns(demo: Demonstration) -> list[ChatMessage]:
    """The turns before the example's answer (no system message), or the bare query."""
    if demo.messages:
        return [m for m in chat_messages(demo.messages) if m["role"] != "system"]
    return [{"role": "user", "content": demo.query}]


def episode_tools(demo: Demonstration) -> list[dict[str, Any]]:
    """The tool specs the run was given, as the middleware logged them (OpenAI format)."""
    raw = demo.metadata.get(TOOLS_KEY)
    if not isinstance(raw, str) or not raw:
        return []
    try:
        tools = json.loads(raw)
    except ValueError:
        return []
    return [t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []


def episode_conversation(demo: Demonstration, turns: Sequence[ChatMessage]) -> list[ChatMessage]:
    """`turns` behind the system message the episode ran with (its app's system prompt and
    tools): the night trains, and the gate asks, exactly as the app asked."""
    system = demo.metadata.get(SYSTEM_KEY)
    return conversation(
        turns, episode_tools(demo), system=system if isinstance(system, str) else None
    )
