"""A second skill: extracting a person record as JSON in one exact format.

The base model does not produce the format zero-shot, but does with one worked example as an
earlier turn, so the skill lives in context until consolidation moves it into the weights.
Unlike the facts suite it is a *format* (a procedure), not knowledge: a recipe tuned to facts
alone would show here.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass

from agent_cl.memory.schema import Demonstration

_NAMES = [
    "Marta",
    "Jonas",
    "Priya",
    "Tomasz",
    "Aiko",
    "Lucas",
    "Nadia",
    "Omar",
    "Greta",
    "Felix",
    "Ines",
    "Ravi",
    "Sofia",
    "Hugo",
    "Lena",
    "Mateo",
    "Yara",
    "Emil",
    "Zoe",
    "Karim",
]
_CITIES = [
    "Oslo",
    "Lisbon",
    "Krakow",
    "Osaka",
    "Lyon",
    "Dublin",
    "Porto",
    "Zurich",
    "Bergen",
    "Seville",
    "Turin",
    "Ghent",
    "Malmo",
    "Leeds",
    "Graz",
    "Nantes",
]
_TEMPLATES = [
    "{name} is {age} years old and lives in {city}.",
    "Living in {city}, {name} turned {age} this year.",
    "{name}, aged {age}, moved to {city} last spring.",
    "In {city} you will find {name}, who is {age}.",
]
# The instruction does not name the keys: the upper-case NAME/AGE/CITY format is the skill,
# learnt from a demonstration, never stated. Measured on the base model (30 held-out tasks):
# 0/30 zero-shot, 24/30 with one worked example as an earlier turn.
INSTRUCTION = "Extract the person from this sentence as JSON: "


@dataclass(frozen=True)
class JsonTask:
    sentence: str
    record: dict

    @property
    def question(self) -> str:
        return INSTRUCTION + self.sentence

    @property
    def answer(self) -> str:
        return json.dumps(self.record)

    @property
    def context(self) -> str:
        return ""

    def is_correct(self, response: str) -> bool:
        return parse_record(response) == self.record

    def demonstration(self) -> Demonstration:
        return Demonstration(
            query=self.question,
            answer=self.answer,
            skill="json",
            metadata={"expected": self.answer},
        )


def parse_record(response: str) -> dict | None:
    match = re.search(r"\{.*?\}", response, flags=re.S)
    if not match:
        return None
    try:
        value = json.loads(match.group(0))
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def build_json_tasks(n: int = 30, seed: int = 0) -> list[JsonTask]:
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        name, age, city = rng.choice(_NAMES), rng.randint(19, 88), rng.choice(_CITIES)
        sentence = _TEMPLATES[i % len(_TEMPLATES)].format(name=name, age=age, city=city)
        tasks.append(JsonTask(sentence, {"NAME": name, "AGE": age, "CITY": city}))
    return tasks


EXAMPLE = JsonTask(
    "Anna is 41 years old and lives in Vienna.", {"name": "Anna", "age": 41, "city": "Vienna"}
)
