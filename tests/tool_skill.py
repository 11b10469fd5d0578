"""A tool-use skill for tests: a tool, and a verifier importable by name (the night, in
another process in production, gates the skill with it)."""

from __future__ import annotations

from langchain_core.tools import tool

CALLS: list[list] = []  # every judgement, for tests to inspect


@tool
def lab_leader(lab: str) -> str:
    """Who leads a lab."""
    return {"Nerost": "Quenvel Ostrami"}.get(lab, "unknown")


def called_lab_leader_for_nerost(messages) -> bool:
    """Structural: some assistant turn calls lab_leader with lab="Nerost"."""
    CALLS.append(list(messages))
    return any(
        call["name"] == "lab_leader" and call["args"] == {"lab": "Nerost"}
        for message in messages
        if message.type == "ai"
        for call in message.tool_calls
    )
