"""A LangChain chat model over any `ModelBackend`, so a LangGraph agent keeps running across
adapter swaps without rebuilding its graph: each call goes to whatever the backend serves now.

Tools: the embedded model's chat template has no tool syntax, so `bind_tools` describes the
tools in the system message (`models.conversation`: the text the night trains with) and asks
for calls in `scoring.tool_calls`' text form; replies are parsed back into
`AIMessage.tool_calls`, and tool results travel as `tool` turns. A reply that names no tool, or
an unknown one, or malformed JSON, stays plain text: the agent then answers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field

from agent_cl.models.chat import ChatMessage
from agent_cl.models.conversation import conversation as rendered_conversation
from agent_cl.scoring.tool_calls import parse_tool_calls, render_tool_call
from agent_cl.serving.backend import ModelBackend

_ROLES = {"system": "system", "human": "user", "ai": "assistant", "tool": "tool"}


def to_chat_messages(messages: list[BaseMessage]) -> list[ChatMessage]:
    converted: list[ChatMessage] = []
    for message in messages:
        role = _ROLES.get(message.type)
        if role is None:
            raise ValueError(f"unsupported message type {message.type!r} for this chat model")
        content = message.content if isinstance(message.content, str) else message.text
        for call in getattr(message, "tool_calls", None) or []:
            content += render_tool_call(call["name"], call["args"])
        converted.append({"role": role, "content": content})
    return converted


class BackendChatModel(BaseChatModel):
    """`BaseChatModel` over a backend; the answering adapter version is in response_metadata
    (streamed chunks included)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    backend: Any = Field(description="a ModelBackend")
    max_new_tokens: int = 64
    temperature: float = 0.0

    def model_post_init(self, context: Any) -> None:
        if not isinstance(self.backend, ModelBackend):
            raise TypeError(f"backend must implement ModelBackend, got {type(self.backend)!r}")

    @property
    def _llm_type(self) -> str:
        return "agent-cl-backend"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable | Any],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ):
        """Tools as OpenAI function specs, passed to every call (see the module docstring)."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        return super().bind(tools=formatted, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self._reply(messages, stop, **kwargs)
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """Token pieces when the backend streams (vLLM), else the whole reply as one chunk;
        with tools bound, one chunk (a tool call is known only when the reply is complete)."""
        pieces = getattr(self.backend, "iter_stream", None)
        if pieces is None or kwargs.get("tools"):
            message = self._reply(messages, stop, **kwargs)
            chunk = AIMessageChunk(
                content=message.content,
                tool_call_chunks=[
                    {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": i}
                    for i, c in enumerate(message.tool_calls)
                ],
                response_metadata=message.response_metadata,
            )
            yield ChatGenerationChunk(message=chunk)
            return
        for text, version in pieces(
            rendered_conversation(to_chat_messages(messages)),
            max_new_tokens=kwargs.get("max_new_tokens", self.max_new_tokens),
            temperature=kwargs.get("temperature", self.temperature),
        ):
            meta = {"adapter_version": version}
            chunk = ChatGenerationChunk(
                message=AIMessageChunk(content=text, response_metadata=meta)
            )
            if run_manager is not None:
                run_manager.on_llm_new_token(text, chunk=chunk)
            yield chunk

    async def _astream(self, messages, stop=None, run_manager=None, **kwargs: Any) -> AsyncIterator:
        import asyncio

        # the backends are synchronous: generate off the event loop, then hand the chunks over
        chunks = await asyncio.to_thread(lambda: list(self._stream(messages, stop, **kwargs)))
        for chunk in chunks:
            yield chunk

    def _reply(self, messages: list[BaseMessage], stop: list[str] | None, **kwargs: Any):
        tools = kwargs.get("tools") or []
        conversation = rendered_conversation(to_chat_messages(messages), tools)
        result = self.backend.generate(
            [conversation],
            max_new_tokens=kwargs.get("max_new_tokens", self.max_new_tokens),
            temperature=kwargs.get("temperature", self.temperature),
        )
        text = result.texts[0]
        if stop:
            cut = min((text.find(s) for s in stop if s in text), default=-1)
            text = text[:cut] if cut >= 0 else text
        known = {t["function"]["name"] for t in tools}
        text, calls = parse_tool_calls(text, known) if tools else (text, [])
        return AIMessage(
            content=text,
            tool_calls=calls,
            response_metadata={"adapter_version": result.adapter_version},
        )
