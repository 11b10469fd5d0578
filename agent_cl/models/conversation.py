"""The one conversation the model sees, from a night's training to an app's `bind_tools`.

A skill learned at night reaches the app only if the app asks the way the night trained.
Before this module each path built its own system message (docs/results/tools.md): training
rendered tool trajectories under the plain system line, the eval added the tools prompt to it,
`BackendChatModel.bind_tools` sent the tools prompt alone, and the vLLM template used SmolLM's
own line; calls learned at night reached 0 of 8 held-out labs through `bind_tools`. Now every
path builds the system message here: the app's own system prompt (else `DEFAULT_SYSTEM`), then
the tools prompt of the tools bound (`scoring.tool_calls`). Training and the gate take both
from the logged episode, serving from the request; the vLLM chat template
(`serving/templates/smollm2_tools.jinja`) writes the same text, which tests/test_serving.py
checks by rendering both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent_cl.models.chat import DEFAULT_SYSTEM, ChatMessage
from agent_cl.scoring.tool_calls import tools_prompt


def system_line(system: str | None = None, tools: Sequence[dict[str, Any]] = ()) -> str:
    """The system message: the app's own (else the product's default), then the tools."""
    line = system if system and system.strip() else DEFAULT_SYSTEM
    return f"{line}\n\n{tools_prompt(tools)}" if tools else line


def conversation(
    messages: Sequence[ChatMessage],
    tools: Sequence[dict[str, Any]] = (),
    *,
    system: str | None = None,
) -> list[ChatMessage]:
    """`messages` behind the one system message. The app's system text is `system` or, when
    the conversation opens with a system message, that message's text."""
    turns = [dict(m) for m in messages]
    if turns and turns[0]["role"] == "system":
        opening = turns.pop(0)["content"]
        system = system if system is not None else opening
    return [{"role": "system", "content": system_line(system, tools)}, *turns]
