"""A third skill: calling a tool with the right arguments. Unlike facts (knowledge) and JSON (a
format), success here is structural: the agent must call `lab_leader` with the lab the user
asked about, and the verifier reads the call, not the words around it.

Episodes are whole trajectories (the call, the tool's result, the answer), logged through the
create_agent middleware; a night trains on their assistant turns and gates the skill with
`called_lab_leader` itself (an importable verifier, so the daemon can replay it).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

_SYLLABLES = ["ner", "ost", "dor", "bri", "kas", "fen", "tal", "vor", "qui", "lem", "zar", "pel"]
_QUESTION = re.compile(r"Who leads the (?P<lab>[A-Z][a-z]+) Lab\?")
LEADERS: dict[str, str] = {}  # lab -> leader, for the suites built in this process


@dataclass(frozen=True)
class ToolTask:
    lab: str
    leader: str

    @property
    def question(self) -> str:
        return f"Who leads the {self.lab} Lab?"


def build_tool_tasks(n: int, seed: int = 0) -> list[ToolTask]:
    """`n` invented labs and leaders (deterministic from `seed`); the tool below knows them."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = random.Random(seed)
    tasks, seen = [], set()
    two_syllable = len(_SYLLABLES) * (len(_SYLLABLES) - 1)
    while len(tasks) < n:
        # Two syllables give 132 labs; a month of nights needs more, so later labs take three
        # (the first 132 stay as they were, so earlier runs keep their labs).
        size = 2 if len(seen) < two_syllable else 3
        lab = "".join(rng.sample(_SYLLABLES, size)).capitalize()
        if lab in seen:
            continue
        seen.add(lab)
        leader = " ".join(w.capitalize() for w in rng.sample(_SYLLABLES, 2))
        tasks.append(ToolTask(lab, leader))
        LEADERS[lab] = leader
    return tasks


@tool
def lab_leader(lab: str) -> str:
    """Who leads a lab (the organisation's directory)."""
    return LEADERS.get(lab, "unknown lab")


def called_lab_leader(messages: Sequence) -> bool | None:
    """True when an assistant turn calls lab_leader with the lab the question names; None
    when the question is not one of this skill's."""
    question = next((m for m in messages if m.type == "human"), None)
    match = _QUESTION.search(str(question.content)) if question is not None else None
    if match is None:
        return None
    return any(
        call["name"] == "lab_leader" and call["args"] == {"lab": match.group("lab")}
        for message in messages
        if message.type == "ai"
        for call in message.tool_calls
    )


def ideal_run(task: ToolTask) -> list[AIMessage]:
    """What a stronger model does on `task`: call the tool with the lab, then answer with it."""
    call = {"name": "lab_leader", "args": {"lab": task.lab}, "id": "call-1"}
    return [AIMessage("", tool_calls=[call]), AIMessage(f"{task.leader} leads the {task.lab} Lab.")]


class Demonstrator(GenericFakeChatModel):
    """A stronger model's run, replayed through the app's own agent: the trajectory a team
    seeds a skill with when its served model cannot do the task yet."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Demonstrator:
        return self
