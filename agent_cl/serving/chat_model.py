"""A LangChain chat model over any `ModelBackend`, so a LangGraph agent keeps running across
adapter swaps without rebuilding its graph: each call goes to whatever the backend serves now."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field

from agent_cl.models.chat import ChatMessage
from agent_cl.serving.backend import ModelBackend

_ROLES = {"system": "system", "human": "user", "ai": "assistant"}


def to_chat_messages(messages: list[BaseMessage]) -> list[ChatMessage]:
    converted: list[ChatMessage] = []
    for message in messages:
        role = _ROLES.get(message.type)
        if role is None:
            raise ValueError(f"unsupported message type {message.type!r} for this chat model")
        content = message.content if isinstance(message.content, str) else message.text
        converted.append({"role": role, "content": content})
    return converted


class BackendChatModel(BaseChatModel):
    """`BaseChatModel` over a backend; the answering adapter version is in response_metadata."""

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

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        result = self.backend.generate(
            [to_chat_messages(messages)],
            max_new_tokens=kwargs.get("max_new_tokens", self.max_new_tokens),
            temperature=kwargs.get("temperature", self.temperature),
        )
        text = result.texts[0]
        if stop:
            cut = min((text.find(s) for s in stop if s in text), default=-1)
            text = text[:cut] if cut >= 0 else text
        message = AIMessage(
            content=text, response_metadata={"adapter_version": result.adapter_version}
        )
        return ChatResult(generations=[ChatGeneration(message=message)])
