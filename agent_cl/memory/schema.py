"""What a demonstration is: one successful episode, kept for retrieval and consolidation."""

from __future__ import annotations

import hashlib
import time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, field_validator

from agent_cl.config import validate_tenant


class DemoStatus(StrEnum):
    """Life cycle: pending -> claimed (by a sleep run) -> consolidated | rejected.

    A night the gate rejects sends its demonstrations back to pending (`attempts` + 1) until
    they reach the night's attempt limit: the forgetting that gets a night rejected usually
    comes from the mix, not from one demonstration, and a rejection must not lose a day.

    `claimed` exists so a crashed run can hand its batch back: a demonstration is marked
    consolidated only after an adapter that learnt it has been published. `awaiting` holds an
    episode no verifier decided, until feedback (`record_outcome`) makes it pending or
    rejected; nights never claim it.
    """

    AWAITING = "awaiting"
    PENDING = "pending"
    CLAIMED = "claimed"
    CONSOLIDATED = "consolidated"
    REJECTED = "rejected"


MetadataValue = str | int | float | bool
# metadata the agent's middleware writes on an episode: the tool specs the model was called with
# (a JSON list, OpenAI format) and the app's system prompt; the night renders that same prompt
TOOLS_KEY = "tools"
SYSTEM_KEY = "system"
SCHEMA_VERSION = 2  # 2: `messages` holds the run's trajectory (LangChain message dicts)


class Demonstration(BaseModel):
    """A query, the context the agent used, and the answer a verifier accepted."""

    query: str = Field(description="what the agent was asked")
    answer: str = Field(description="the verified answer")
    context: str = Field(default="", description="the note or documents the agent had in context")
    tenant: str = Field(default="default", description="the agent this episode belongs to")
    skill: str = Field(default="general", description="a label for grouping and evaluation")
    status: DemoStatus = DemoStatus.PENDING
    adapter_version: int | None = Field(default=None, description="adapter that consolidated it")
    status_reason: str = Field(default="", description="why a sleep run rejected it, if it did")
    attempts: int = Field(
        default=0, ge=0, description="nights whose gate rejected it (it is retried until the limit)"
    )
    created_at: float = Field(default_factory=time.time)
    metadata: dict[str, MetadataValue] = Field(default_factory=dict)
    messages: list[dict[str, Any]] = Field(
        default_factory=list,
        description="the run as LangChain message dicts (messages_to_dict), tool calls and "
        "tool results included; empty for a plain question/answer episode",
    )
    schema_version: int = SCHEMA_VERSION

    @field_validator("query", "answer")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value or not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, value: str) -> str:
        return validate_tenant(value)

    @field_validator("skill")
    @classmethod
    def _skill(cls, value: str) -> str:
        if not value or not value.strip():
            raise ValueError("must not be empty")
        return value

    @property
    def id(self) -> str:
        """Content address: the same episode logged twice is stored once."""
        key = "\x1f".join((self.tenant, self.query, self.context, self.answer))
        return hashlib.sha256(key.encode()).hexdigest()[:24]

    def moved_to(
        self,
        status: DemoStatus,
        *,
        adapter_version: int | None = None,
        reason: str = "",
        add_attempt: bool = False,
    ) -> Demonstration:
        """This demonstration after `DemonstrationStore.set_status`: one rule for every store
        of what a move replaces (status, version, reason) and what it keeps (the attempts,
        counted up only by a rejected night)."""
        return self.model_copy(
            update={
                "status": DemoStatus(status),
                "adapter_version": adapter_version,
                "status_reason": reason,
                "attempts": self.attempts + int(add_attempt),
            }
        )
