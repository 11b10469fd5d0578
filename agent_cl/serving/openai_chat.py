"""ChatOpenAI on a tenant's stable model name, with the answering version in its metadata.

A plain `ChatOpenAI(base_url=URL + "/v1", model="agent-cl/<tenant>")` already follows every
swap and rollback: the server resolves the name per request (`vllm_aliases`). This subclass
only adds `response_metadata["adapter_version"]`, read from the `model` the server answered
with, so an app can log which version it talked to. The graph is never rebuilt across swaps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_openai import ChatOpenAI

from agent_cl.serving.vllm_backend import VLLMBackend, version_of


class CurrentVersionChatOpenAI(ChatOpenAI):
    def _generate(self, messages, stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        return _with_versions(super()._generate(messages, stop, run_manager, **kwargs))

    async def _agenerate(self, messages, stop=None, run_manager=None, **kwargs: Any) -> ChatResult:
        return _with_versions(await super()._agenerate(messages, stop, run_manager, **kwargs))

    def _stream(
        self, messages, stop=None, run_manager=None, **kwargs: Any
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in super()._stream(messages, stop, run_manager, **kwargs):
            yield _chunk_with_version(chunk)

    async def _astream(
        self, messages, stop=None, run_manager=None, **kwargs: Any
    ) -> AsyncIterator[ChatGenerationChunk]:
        async for chunk in super()._astream(messages, stop, run_manager, **kwargs):
            yield _chunk_with_version(chunk)


def _with_versions(result: ChatResult) -> ChatResult:
    for generation in result.generations:
        meta = generation.message.response_metadata
        meta["adapter_version"] = version_of(meta.get("model_name"))
    return result


def _chunk_with_version(chunk: ChatGenerationChunk) -> ChatGenerationChunk:
    meta = chunk.message.response_metadata
    if meta.get("model_name"):
        meta["adapter_version"] = version_of(meta["model_name"])
    return chunk


def current_version_chat_model(
    backend: VLLMBackend, *, api_key: str | None = None, **kwargs: Any
) -> CurrentVersionChatOpenAI:
    """A ChatOpenAI on `backend`'s server and tenant; kwargs go to ChatOpenAI (temperature,
    max_tokens)."""
    return CurrentVersionChatOpenAI(
        base_url=f"{backend.url}/v1",
        api_key=api_key or "not-needed-on-loopback",
        model=backend.current_model,
        **kwargs,
    )
