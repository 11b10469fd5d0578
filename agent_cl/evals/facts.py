"""A deterministic suite of facts about an invented organisation.

The entities do not exist, so the base model cannot know them: accuracy without the note in
context measures only what consolidation put into the weights. Each fact has the question the
agent is asked by day (with its source note) and held-out paraphrases asked after sleep.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agent_cl.memory.schema import Demonstration
from agent_cl.scoring.matching import answer_matches, contains_answer

ORGANISATION = "the Veyra Institute"

_SYLLABLES = [
    "tal",
    "vor",
    "quen",
    "mar",
    "zel",
    "dor",
    "bri",
    "kas",
    "fen",
    "lio",
    "rud",
    "sav",
    "ner",
    "ost",
    "pim",
    "gal",
    "thu",
    "yor",
    "cad",
    "vel",
    "mun",
    "hes",
    "dri",
    "wen",
]
_FIRST_NAMES = [
    "Fenna",
    "Orla",
    "Tobin",
    "Marit",
    "Cassius",
    "Ilse",
    "Dorian",
    "Saskia",
    "Lennart",
    "Marisol",
    "Evander",
    "Rosalind",
    "Thaddeus",
    "Linnea",
    "Anselm",
    "Perpetua",
    "Caspian",
    "Wilhelmina",
    "Osric",
    "Zinnia",
]
_UNIT_KINDS = ["Lab", "Division", "Unit", "Office", "Studio", "Centre"]


@dataclass(frozen=True)
class Relation:
    name: str
    fact: str
    question: str
    paraphrases: tuple[str, ...]
    answer_sentence: str


RELATIONS: tuple[Relation, ...] = (
    Relation(
        "lead",
        "At {org}, the {unit} is led by {value}.",
        "Who leads the {unit}?",
        ("Who is the head of the {unit}?", "Who is in charge of the {unit}?"),
        "The {unit} is led by {value}.",
    ),
    Relation(
        "city",
        "The {unit} of {org} is located in the city of {value}.",
        "Where is the {unit} located?",
        ("In which city is the {unit} based?", "Which city is the {unit} in?"),
        "The {unit} is located in {value}.",
    ),
    Relation(
        "codename",
        "At {org}, the project run by the {unit} has the code name {value}.",
        "What is the code name of the {unit}'s project?",
        (
            "Which code name does the {unit}'s project go by?",
            "What is the {unit}'s project called?",
        ),
        "The code name of the {unit}'s project is {value}.",
    ),
    Relation(
        "founded",
        "The {unit} of {org} was founded in {value}.",
        "When was the {unit} founded?",
        ("In what year was the {unit} established?", "What year did the {unit} start?"),
        "The {unit} was founded in {value}.",
    ),
)


@dataclass(frozen=True)
class Fact:
    """One invented fact: the note the agent sees by day, and how it is asked."""

    fact_id: str
    relation: str
    unit: str
    answer: str
    note: str
    question: str
    paraphrases: tuple[str, ...]
    answer_sentence: str
    tags: dict[str, str] = field(default_factory=dict)

    def is_correct(self, response: str) -> bool:
        # A number must stand alone: a door code 4704 is not found inside 47041.
        if self.answer.isdigit():
            return contains_answer(response, self.answer)
        return answer_matches(response, self.answer)

    def demonstration(self) -> Demonstration:
        """The demonstration a successful day-1 episode would log for this fact."""
        return Demonstration(
            query=self.question,
            context=self.note,
            answer=self.answer_sentence,
            skill="facts",
            metadata={"expected": self.answer},
        )


def _word(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(parts)).capitalize()


def build_facts(n: int = 40, seed: int = 0) -> list[Fact]:
    """`n` facts, cycling through the relations; same `(n, seed)` gives the same suite."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = random.Random(seed)
    facts: list[Fact] = []
    used: set[str] = set()
    for i in range(n):
        relation = RELATIONS[i % len(RELATIONS)]
        unit = _fresh(rng, used, lambda: f"{_word(rng, 2)} {rng.choice(_UNIT_KINDS)}")
        value = _fresh(rng, used, lambda r=relation: _value(rng, r.name))
        fmt = {"org": ORGANISATION, "unit": unit, "value": value}
        templates = (relation.fact, relation.question, relation.paraphrases)
        facts.append(
            filled_fact(
                f"fact-{seed}-{i:03d}",
                (relation.name, unit, value),
                (*templates, relation.answer_sentence),
                lambda text, fmt=fmt: text.format(**fmt),
            )
        )
    return facts


def filled_fact(
    fact_id: str,
    what: tuple[str, str, str],
    templates: tuple[str, str, Sequence[str], str],
    fill: Callable[[str], str],
    tags: dict[str, str] | None = None,
) -> Fact:
    """A Fact from its (relation, subject, answer) and its (note, question, paraphrases,
    answer sentence) templates, each filled by `fill`: one way to build a fact for every
    suite that writes its facts from templates."""
    relation, unit, answer = what
    note, question, paraphrases, sentence = templates
    return Fact(
        fact_id=fact_id,
        relation=relation,
        unit=unit,
        answer=answer,
        note=fill(note),
        question=fill(question),
        paraphrases=tuple(fill(p) for p in paraphrases),
        answer_sentence=fill(sentence),
        tags=dict(tags or {}),
    )


def _value(rng: random.Random, relation: str) -> str:
    if relation == "lead":
        return f"{rng.choice(_FIRST_NAMES)} {_word(rng, 3)}"
    if relation == "city":
        return _word(rng, 3)
    if relation == "codename":
        return f"{_word(rng, 2)} {rng.choice(['Falcon', 'Lantern', 'Harbor', 'Meridian', 'Ember'])}"
    return str(rng.randint(1901, 1999))


def _fresh(rng: random.Random, used: set[str], make) -> str:
    for _ in range(1000):
        value = make()
        if value not in used:
            used.add(value)
            return value
    raise RuntimeError("could not draw a fresh name; the suite is too large for the syllable set")
