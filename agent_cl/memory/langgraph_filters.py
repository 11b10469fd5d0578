"""InMemoryStore's filter and namespace-matching semantics, reimplemented in Python because
Chroma's metadata filters cannot express them (nested dicts, lists, numeric comparisons on
values stored as JSON documents). Kept pure, so the store's Chroma code only narrows by prefix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langgraph.store.base import MatchCondition

from agent_cl.memory.langgraph_records import prefix_where


def matches(value: Mapping[str, Any], filter: Mapping[str, Any]) -> bool:
    return all(_value_matches(value.get(field), want) for field, want in filter.items())


def _value_matches(actual: Any, want: Any) -> bool:
    """InMemoryStore's filter semantics: an operator dict, a nested dict (every field must
    match), a list (same length, element-wise), else plain equality."""
    if isinstance(want, dict):
        if any(str(k).startswith("$") for k in want):
            return all(_compare(actual, operator, arg) for operator, arg in want.items())
        return isinstance(actual, dict) and all(
            _value_matches(actual.get(k), v) for k, v in want.items()
        )
    if isinstance(want, list | tuple):
        return (
            isinstance(actual, list | tuple)
            and len(actual) == len(want)
            and all(_value_matches(a, w) for a, w in zip(actual, want, strict=True))
        )
    return actual == want


def _compare(actual: Any, operator: str, arg: Any) -> bool:
    if operator == "$eq":
        return actual == arg
    if operator == "$ne":
        return actual != arg
    if operator not in ("$gt", "$gte", "$lt", "$lte"):
        raise ValueError(f"Unsupported operator: {operator}")
    try:
        left, right = float(actual), float(arg)
    except (TypeError, ValueError):
        return False  # InMemoryStore raises here; a missing field simply does not match
    if operator == "$gt":
        return left > right
    if operator == "$gte":
        return left >= right
    if operator == "$lt":
        return left < right
    return left <= right


def ns_matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    """A namespace against a prefix/suffix pattern in which "*" stands for any one label."""
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        part = namespace[: len(path)]
    elif condition.match_type == "suffix":
        part = namespace[len(namespace) - len(path) :]
    else:
        raise ValueError(f"Unsupported match type: {condition.match_type}")
    return all(want in ("*", label) for want, label in zip(path, part, strict=True))


def namespaces_where(conditions: Sequence[MatchCondition]) -> dict[str, Any] | None:
    """The part of the match conditions Chroma can check (minimum depth, a fixed prefix up to
    the first wildcard), so fewer rows come back; `ns_matches` still decides exactly."""
    clauses: list[dict[str, Any]] = []
    for condition in conditions:
        if condition.path:
            clauses.append({"depth": {"$gte": len(condition.path)}})
        if condition.match_type == "prefix":
            fixed = []
            for label in condition.path:
                if label == "*":
                    break
                fixed.append(label)
            if fixed:
                clauses.append(prefix_where(tuple(fixed)))
    return None if not clauses else clauses[0] if len(clauses) == 1 else {"$and": clauses}
