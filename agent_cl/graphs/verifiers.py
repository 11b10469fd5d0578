"""Verifiers decide which episodes become demonstrations: only accepted answers are logged."""

from __future__ import annotations

import re

from .state import AgentState


def answer_matches(response: str, expected: str) -> bool:
    """Exact answer string present, ignoring case, punctuation and spacing."""
    return bool(expected.strip()) and _normalise(expected) in _normalise(response)


def _normalise(text: str) -> str:
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text.lower()).split())


def expected_answer_verifier(state: AgentState) -> bool:
    """Accept when the answer contains the task's expected string; no expectation, no log."""
    expected = state.get("expected")
    return bool(expected) and answer_matches(state.get("answer", ""), expected)
