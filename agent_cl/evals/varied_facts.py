"""Invented facts that vary in topic and in form, the way a user's notes do.

`facts.build_facts` draws every fact from four relations about one organisation's units, each
note in one sentence shape. A recipe chosen on that suite was rejected on 24 hand-written
facts outside it (robust retention -4.8 points, facts and numbers hit hardest): real notes
are about people, products, places, rules and schedules; they come as a sentence, a memo, a
key-value line or a chat message; and many answers are numbers. This suite draws from twelve
topics, each with several note forms and its own questions, so a recipe measured on it is
measured on data shaped like a user's. The entities are invented (the base cannot know them),
the values are drawn per seed, and the same `(n, seed)` always gives the same suite.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from agent_cl.evals.facts import Fact, _fresh, _word, filled_fact

_FIRST = ["Amara", "Bertil", "Celine", "Dario", "Eluned", "Farid"]
_FIRST += ["Greta", "Hiroshi", "Ines", "Jovan", "Kalani", "Leontine"]
_WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_COLOURS = ["teal", "crimson", "ochre", "violet", "amber", "olive", "indigo", "coral"]
_MONTHS = ["January", "March", "April", "June", "August", "September", "October", "November"]

Values = Callable[[random.Random], str]


@dataclass(frozen=True)
class Topic:
    """One kind of fact: how its subject is named, how its value is drawn, the note forms it
    is written in (one is chosen per fact), how it is asked by day, and two held-out ways."""

    name: str
    subject: Values
    value: Values
    notes: tuple[str, ...]
    question: str
    paraphrases: tuple[str, str]
    answer_sentence: str
    closed: bool = False  # values from a short list (weekdays, colours): they may repeat


def _person(rng: random.Random) -> str:
    return f"{rng.choice(_FIRST)} {_word(rng, 3)}"


def _number(low: int, high: int) -> Values:
    return lambda rng: str(rng.randint(low, high))


TOPICS: tuple[Topic, ...] = (
    Topic(
        "role",
        lambda rng: f"{_word(rng, 2)} Robotics",
        _person,
        (
            "{value} is the chief engineer at {subject}.",
            "Org chart update, {subject}: chief engineer = {value}.",
            "Quick note: the person who runs engineering at {subject} is {value}.",
        ),
        "Who is the chief engineer at {subject}?",
        ("Who runs engineering at {subject}?", "Which person is {subject}'s chief engineer?"),
        "The chief engineer at {subject} is {value}.",
    ),
    Topic(
        "weight",
        lambda rng: f"{_word(rng, 2)} {rng.choice(['drone', 'kettle', 'lamp', 'scanner'])}",
        _number(120, 980),
        (
            "The {subject} weighs {value} grams.",
            "Spec sheet - {subject}: mass {value} g.",
            "FYI the {subject} came in at {value} grams on the scale.",
        ),
        "How many grams does the {subject} weigh?",
        ("What is the weight of the {subject} in grams?", "How heavy is the {subject}?"),
        "The {subject} weighs {value} grams.",
    ),
    Topic(
        "refund",
        lambda rng: f"{_word(rng, 2)} Outfitters",
        _number(11, 89),
        (
            "At {subject}, customers may return items within {value} days.",
            "Returns policy ({subject}): {value} days from delivery.",
            "Reminder from support: {subject} accepts returns up to {value} days after purchase.",
        ),
        "How many days does {subject} allow for returns?",
        (
            "Within how many days can items be returned to {subject}?",
            "What is the return window at {subject}, in days?",
        ),
        "{subject} allows returns within {value} days.",
    ),
    Topic(
        "weekday",
        lambda rng: f"{_word(rng, 2)} review",
        lambda rng: rng.choice(_WEEKDAYS),
        (
            "The {subject} meeting happens every {value}.",
            "Calendar: {subject} - weekly, {value}s.",
            "Heads up, we moved the {subject} to {value} each week.",
        ),
        "On which day of the week is the {subject} meeting?",
        ("What day is the weekly {subject} held?", "When in the week does the {subject} meet?"),
        "The {subject} meeting is every {value}.",
        closed=True,
    ),
    Topic(
        "town",
        lambda rng: f"{_word(rng, 2)} Ceramics",
        lambda rng: _word(rng, 3),
        (
            "{subject} has its warehouse in the town of {value}.",
            "Warehouse location for {subject}: {value}.",
            "Shipping FAQ: all {subject} orders leave from our depot in {value}.",
        ),
        "In which town is the warehouse of {subject}?",
        (
            "Where does {subject} keep its warehouse?",
            "Which town are {subject}'s goods shipped from?",
        ),
        "The warehouse of {subject} is in {value}.",
    ),
    Topic(
        "code",
        lambda rng: f"{_word(rng, 2)} room",
        _number(2000, 9899),
        (
            "The door code for the {subject} is {value}.",
            "Access: {subject} keypad -> {value}.",
            "Psst, the {subject} keypad code changed, it is now {value}.",
        ),
        "What is the door code for the {subject}?",
        ("Which code opens the {subject}?", "What do I type on the {subject} keypad?"),
        "The door code for the {subject} is {value}.",
    ),
    Topic(
        "crew",
        lambda rng: f"the ship {_word(rng, 3)}",
        _number(13, 97),
        (
            "{Subject} sails with a crew of {value}.",
            "Vessel register - {subject}: crew {value}.",
            "Fun fact from the harbour office: {subject} needs {value} sailors aboard.",
        ),
        "How many crew members does {subject} have?",
        ("What is the size of the crew on {subject}?", "How many sailors are aboard {subject}?"),
        "{Subject} has a crew of {value}.",
    ),
    Topic(
        "treaty",
        lambda rng: f"the Treaty of {_word(rng, 2)}",
        _number(1610, 1890),
        (
            "{Subject} was signed in {value}.",
            "Archive card: {subject}, signed {value}.",
            "History club notes: {subject} dates from the year {value}.",
        ),
        "In which year was {subject} signed?",
        ("When was {subject} signed?", "What year is {subject} from?"),
        "{Subject} was signed in {value}.",
    ),
    Topic(
        "colour",
        lambda rng: f"the {_word(rng, 2)} Bridge",
        lambda rng: rng.choice(_COLOURS),
        (
            "{Subject} is painted {value}.",
            "Paint log, {subject}: {value}.",
            "Walked past {subject} today, they repainted it {value}.",
        ),
        "What colour is {subject}?",
        ("Which colour is {subject} painted?", "What colour paint is on {subject}?"),
        "{Subject} is painted {value}.",
        closed=True,
    ),
    Topic(
        "dose",
        lambda rng: f"{_word(rng, 3).lower()}ine",
        _number(15, 750),
        (
            "The standard adult dose of {subject} is {value} mg.",
            "Formulary entry: {subject} - adult dose {value} mg.",
            "Pharmacy says the usual dose of {subject} for adults is {value} milligrams.",
        ),
        "What is the standard adult dose of {subject} in mg?",
        (
            "How many milligrams of {subject} is an adult dose?",
            "What dose of {subject} do adults take, in mg?",
        ),
        "The standard adult dose of {subject} is {value} mg.",
    ),
    Topic(
        "festival",
        lambda rng: f"the {_word(rng, 2)} festival",
        lambda rng: rng.choice(_MONTHS),
        (
            "{Subject} is held every year in {value}.",
            "Events list: {subject} - annually, {value}.",
            "Save the date, {subject} is in {value} like every year.",
        ),
        "In which month is {subject} held?",
        ("What month does {subject} take place?", "When in the year is {subject}?"),
        "{Subject} is held in {value}.",
        closed=True,
    ),
    Topic(
        "author",
        lambda rng: f"the novel {_word(rng, 2)} Tides",
        _person,
        (
            "{Subject} was written by {value}.",
            "Library record: {subject}; author {value}.",
            "Book club pick this month is {subject}, by {value}.",
        ),
        "Who wrote {subject}?",
        ("Who is the author of {subject}?", "Which writer wrote {subject}?"),
        "{Subject} was written by {value}.",
    ),
)


def _fill(template: str, subject: str, value: str) -> str:
    return template.format(subject=subject, Subject=subject[0].upper() + subject[1:], value=value)


def build_varied_facts(n: int = 24, seed: int = 0) -> list[Fact]:
    """`n` facts cycling through the topics in a seeded order, each note in a form drawn per
    fact; subjects are unique within the suite and so are values, except a
    closed topic's (seven weekdays cannot be unique in a suite of thirty)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = random.Random(seed)
    order = list(TOPICS)
    rng.shuffle(order)
    used: set[str] = set()
    facts: list[Fact] = []
    for i in range(n):
        topic = order[i % len(order)]
        subject = _fresh(rng, used, lambda t=topic: t.subject(rng))
        value = (
            topic.value(rng) if topic.closed else _fresh(rng, used, lambda t=topic: t.value(rng))
        )
        note = rng.choice(topic.notes)
        templates = (note, topic.question, topic.paraphrases, topic.answer_sentence)
        facts.append(
            filled_fact(
                f"varied-{seed}-{i:03d}",
                (topic.name, subject, value),
                templates,
                lambda text, s=subject, v=value: _fill(text, s, v),
                tags={"topic": topic.name},
            )
        )
    return facts
