"""The evaluation suites: demonstrations to consolidate, the questions asked afterwards, and a
verifier for each answer. Deterministic from `(size, seed)`.

Every question is asked three ways, which is what makes weights and text memory comparable:
`conversation` (nothing in context: what consolidation must carry), `teacher` (the right
demonstration in context: the in-context teacher, an upper bound for consolidation) and, built
by `with_demonstrations`, the retrieved demonstrations as earlier turns (text memory). Questions are
split as the SDFT paper splits knowledge acquisition: `in` (held-out phrasings of trained
items) and `out` (a step away from them: two facts at once, a tool question phrased anew).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage, messages_to_dict

from agent_cl.evals.facts import Fact
from agent_cl.graphs.fewshot import demonstration_messages
from agent_cl.memory.schema import TOOLS_KEY, Demonstration
from agent_cl.models.chat import DEFAULT_SYSTEM, ChatMessage, task_message
from agent_cl.models.conversation import system_line
from agent_cl.scoring.matching import answer_matches
from agent_cl.scoring.tool_calls import parse_tool_calls
from agent_cl.serving.chat_model import to_chat_messages

SUITES = ("facts", "json", "tools")  # the default plan's
# `facts-varied`: twelve topics in several note forms, many answers numbers (evals.varied_facts)
KNOWN_SUITES = (*SUITES, "facts-varied")
SPLITS = ("in", "out")


@dataclass(frozen=True)
class EvalItem:
    """One question after the night, with its verifier and the teacher's view of it."""

    question: str
    conversation: list[ChatMessage]
    teacher: list[ChatMessage]
    is_correct: Callable[[str], bool]
    split: str = "in"


@dataclass(frozen=True)
class Suite:
    name: str
    seed: int
    demonstrations: list[Demonstration]
    items: list[EvalItem]
    system: str = DEFAULT_SYSTEM
    # Strings only this suite's demonstrations contain: seen in general answers, they leaked.
    invented: list[str] = field(default_factory=list)

    def split(self, name: str) -> list[EvalItem]:
        return [item for item in self.items if item.split == name]


def with_demonstrations(
    conversation: list[ChatMessage], retrieved: Sequence[Demonstration]
) -> list[ChatMessage]:
    """The conversation with the retrieved demonstrations before its last (user) turn, each
    as the turns it was (the whole trajectory for a tool run), as the LangMem/ExpeL-style
    baseline puts them."""
    turns = [turn for demo in retrieved for turn in demonstration_turns(demo)]
    return [*conversation[:-1], *turns, conversation[-1]]


def demonstration_turns(demo: Demonstration) -> list[ChatMessage]:
    """The turns an app's agent shows for `demo` (graphs.fewshot), as the served model reads
    them."""
    return to_chat_messages(demonstration_messages(demo))


def build_suite(name: str, n: int, seed: int = 0) -> Suite:
    """`n` demonstrations of skill `name` and the questions that test it."""
    if name not in KNOWN_SUITES:
        raise ValueError(f"unknown suite {name!r}; choose from {', '.join(KNOWN_SUITES)}")
    if n < 2:
        raise ValueError(f"a suite needs at least 2 demonstrations, got {n}")
    builders = {"facts": _facts, "facts-varied": _varied_facts, "json": _json, "tools": _tools}
    return builders[name](n, seed)


def _asked(system: str, question: str, context: str | None = None) -> list[ChatMessage]:
    return [
        {"role": "system", "content": system},
        {"role": "user", "content": task_message(question, context)},
    ]


def _facts(n: int, seed: int) -> Suite:
    from agent_cl.evals.facts import build_facts

    facts = build_facts(n, seed=seed)
    return _facts_suite("facts", facts, seed, invented=[f.answer for f in facts])


def _varied_facts(n: int, seed: int) -> Suite:
    from agent_cl.evals.varied_facts import TOPICS, build_varied_facts

    facts = build_varied_facts(n, seed=seed)
    # A number or a weekday in a general answer is no evidence of a leak; an invented name is.
    closed = {t.name for t in TOPICS if t.closed}
    invented = [f.answer for f in facts if not f.answer.isdigit() and f.relation not in closed]
    return _facts_suite("facts-varied", facts, seed, invented)


def _facts_suite(name: str, facts: list[Fact], seed: int, invented: list[str]) -> Suite:
    items = [
        EvalItem(q, _asked(DEFAULT_SYSTEM, q), _asked(DEFAULT_SYSTEM, q, f.note), f.is_correct)
        for f in facts
        for q in f.paraphrases
    ]
    # Two facts in one question: never demonstrated together, so answering needs both in the
    # weights (or both retrieved) and the composition on top.
    for first, second in zip(facts[0::2], facts[1::2], strict=False):
        question = (
            f"{first.paraphrases[0]} Also, {second.paraphrases[1][0].lower()}"
            + (second.paraphrases[1][1:])
        )
        both = f"{first.note} {second.note}"
        items.append(
            EvalItem(
                question,
                _asked(DEFAULT_SYSTEM, question),
                _asked(DEFAULT_SYSTEM, question, both),
                _all_of(first.answer, second.answer),
                split="out",
            )
        )
    return Suite(name, seed, [f.demonstration() for f in facts], items, invented=invented)


def _all_of(*answers: str) -> Callable[[str], bool]:
    def is_correct(response: str) -> bool:
        return all(answer_matches(response, a) for a in answers)

    return is_correct


def _json(n: int, seed: int) -> Suite:
    from agent_cl.evals.json_skill import build_json_tasks

    tasks = build_json_tasks(2 * n, seed=seed)
    demos = [t.demonstration() for t in tasks[:n]]
    example = demonstration_turns(demos[0])  # one worked example is enough in context
    items = []
    for task in tasks[n:]:
        asked = _asked(DEFAULT_SYSTEM, task.question)
        items.append(
            EvalItem(task.question, asked, [asked[0], *example, asked[1]], task.is_correct)
        )
    return Suite("json", seed, demos, items)


TOOL_SPEC = {
    "type": "function",
    "function": {
        "name": "lab_leader",
        "description": "Who leads a lab (the organisation's directory).",
        "parameters": {
            "type": "object",
            "properties": {"lab": {"type": "string"}},
            "required": ["lab"],
        },
    },
}


def _tools(n: int, seed: int) -> Suite:
    from agent_cl.evals.tools_skill import build_tool_tasks

    tasks = build_tool_tasks(2 * n, seed=seed)
    system = system_line(None, [TOOL_SPEC])  # what an app's bind_tools sends
    demos = [_tool_trajectory(t.question, t.lab, t.leader) for t in tasks[:n]]
    # Two whole trajectories in context: with one, the base copies its tool result instead of
    # calling (teacher 0.19 against 0.81 on 16 held-out labs, measured on the embedded model).
    example = [turn for demo in demos[:2] for turn in demonstration_turns(demo)]
    items = []
    for task in tasks[n:]:
        for split, question in (
            ("in", task.question),
            ("out", f"Which person heads the {task.lab} Lab?"),
        ):
            asked = _asked(system, question)
            teacher = [asked[0], *example, asked[1]]
            items.append(EvalItem(question, asked, teacher, calls_lab_leader(task.lab), split))
    return Suite("tools", seed, demos, items, system=system, invented=[t.lab for t in tasks[:n]])


def _tool_trajectory(question: str, lab: str, leader: str) -> Demonstration:
    """The run a verified tool episode logs (what `DemonstrationMiddleware` stores)."""
    call = {"name": "lab_leader", "args": {"lab": lab}, "id": "call-1"}
    answer = f"{leader} leads the {lab} Lab."
    messages = [
        HumanMessage(task_message(question)),
        AIMessage("", tool_calls=[call]),
        ToolMessage(leader, tool_call_id="call-1"),
        AIMessage(answer),
    ]
    return Demonstration(
        query=question,
        answer=answer,
        skill="tools",
        messages=messages_to_dict(messages),
        metadata={"expected": lab, TOOLS_KEY: json.dumps([TOOL_SPEC])},
    )


def calls_lab_leader(lab: str) -> Callable[[str], bool]:
    """Structural and by arguments: a parsed `lab_leader` call whose arguments are exactly
    `{"lab": lab}` (a nested or misspelt argument is a wrong call)."""

    def is_correct(response: str) -> bool:
        _, calls = parse_tool_calls(response, {"lab_leader"})
        return any(call["args"] == {"lab": lab} for call in calls)

    return is_correct
