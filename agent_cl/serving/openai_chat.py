"""ChatOpenAI that always talks to the adapter version being served now.

An existing LangChain/LangGraph app keeps its ChatOpenAI-shaped model; each call asks the vLLM
backend which versioned adapter name is current and pins it for the call (so a swap meanwhile
does not unload it). The graph is never rebuilt across swaps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI
from pydantic import Field

from agent_cl.serving.vllm_backend import VLLMBackend


class CurrentVersionChatOpenAI(ChatOpenAI):
    backend: Any = Field(default=None, exclude=True, description="the VLLMBackend to follow")

    def _generate(self, messages, stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        with self.backend.request() as (name, version):
            result = super()._generate(messages, stop, run_manager, **{**kwargs, "model": name})
        for generation in result.generations:
            generation.message.response_metadata["adapter_version"] = version
        return result

    def _stream(
        self, messages, stop=None, run_manager=None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        with self.backend.request() as (name, _):
            yield from super()._stream(messages, stop, run_manager, **{**kwargs, "model": name})

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        with self.backend.request() as (name, version):
            result = await super()._agenerate(
                messages, stop, run_manager, **{**kwargs, "model": name}
            )
        for generation in result.generations:
            generation.message.response_metadata["adapter_version"] = version
        return result

    async def _astream(
        self, messages, stop=None, run_manager=None, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        with self.backend.request() as (name, _):
            async for chunk in super()._astream(
                messages, stop, run_manager, **{**kwargs, "model": name}
            ):
                yield chunk


def current_version_chat_model(
    backend: VLLMBackend, *, api_key: str | None = None, **kwargs: Any
) -> CurrentVersionChatOpenAI:
    """A ChatOpenAI for `backend`'s server; kwargs go to ChatOpenAI (temperature, max_tokens)."""
    return CurrentVersionChatOpenAI(
        backend=backend,
        base_url=f"{backend.url}/v1",
        api_key=api_key or "not-needed-on-loopback",
        model=backend.base_name,
        **kwargs,
    )
