"""The agent's state: what one task carries from retrieval to logging."""

from __future__ import annotations

from typing import TypedDict

from langchain_core.messages import BaseMessage

from agent_cl.memory.schema import Demonstration


class AgentInput(TypedDict, total=False):
    question: str  # required
    context: str  # the source note, if the task came with one
    expected: str  # what a correct answer contains, for the default verifier
    skill: str


class AgentState(AgentInput, total=False):
    retrieved: list[Demonstration]
    messages: list[BaseMessage]
    answer: str
    adapter_version: int | None
    verified: bool
    demonstration_id: str | None
