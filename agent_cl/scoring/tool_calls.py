"""Tool calls written as text: how the embedded model is asked to call tools and how its reply
is read back, shared by the chat model that serves it and the gate that replays a tool-use
skill (so a call the agent would execute is the call the gate scores).

The embedded model's chat template has no tool syntax, so calls are
`<tool_call>{"name": ..., "arguments": {...}}</tool_call>` (the tag SmolLM2's instruction data
uses). A reply whose JSON is malformed, or that names a tool not offered, is plain text.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Collection, Sequence

TOOLS_PROMPT_HEAD = "You can call these tools:\n"
TOOLS_PROMPT_TAIL = (
    'To call one, reply only with <tool_call>{"name": NAME, "arguments": {...}}</tool_call>. '
    "When you have the answer, reply with it in plain text."
)
_TOOL_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)


def tools_prompt(tools: Sequence[dict]) -> str:
    """What the model is told about the tools it may call (OpenAI function specs)."""
    specs = "".join(json.dumps(t.get("function", t)) + "\n" for t in tools)
    return TOOLS_PROMPT_HEAD + specs + TOOLS_PROMPT_TAIL


def render_tool_call(name: str, args: dict) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': args})}</tool_call>"


def parse_tool_calls(text: str, known: Collection[str] | None = None) -> tuple[str, list[dict]]:
    """(the text without the calls, the calls as LangChain tool-call dicts). With `known`,
    calls to other names are ignored; None accepts any name."""
    calls = []
    for raw in _TOOL_CALL.findall(text):
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        for item in data if isinstance(data, list) else [data]:
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                continue
            if known is not None and item["name"] not in known:
                continue
            args = item.get("arguments") or {}
            if isinstance(args, dict):
                calls.append({"name": item["name"], "args": args, "id": uuid.uuid4().hex[:12]})
    if not calls:
        return text, []
    return _TOOL_CALL.sub("", text).strip(), calls
