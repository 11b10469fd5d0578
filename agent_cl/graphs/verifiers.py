"""Verifiers decide which episodes become demonstrations: only accepted answers are logged."""

from __future__ import annotations

from agent_cl.scoring.matching import answer_matches

from .state import AgentState

__all__ = ["answer_matches", "expected_answer_verifier"]


def expected_answer_verifier(state: AgentState) -> bool:
    """Accept when the answer contains the task's expected string; no expectation, no log."""
    expected = state.get("expected")
    return bool(expected) and answer_matches(state.get("answer", ""), expected)
