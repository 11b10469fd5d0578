"""General prompts that anchor the student to the base model while it learns new skills.

The KL-to-base regulariser and self-replay need inputs that exercise what the model already
does. Two kinds, measured to matter: with open-ended prompts only (chat, explanations), the
anchor kept KL from base on open prompts at 0.027 but short factual questions still drifted
(retention 0.72 after SFT on facts), because the new skill is itself short factual Q/A. So the
pool also holds short questions of the same shapes as prior capabilities (sums, capitals,
trivia, formats). Every item is disjoint from the retention set in `evals/retention.py` (a
test checks it), so retention measures generalisation of the anchor, not memorisation.
"""

from __future__ import annotations

import random

_TOPICS = [
    "the ocean",
    "a rainy day",
    "friendship",
    "a busy city",
    "autumn leaves",
    "a good breakfast",
    "learning to swim",
    "the night sky",
    "a mountain hike",
    "a library",
    "winter",
    "a garden",
    "a train journey",
    "music",
    "a birthday party",
    "the moon",
]
_TASKS = [
    "Write one sentence about {t}.",
    "Give me a short tip about {t}.",
    "Describe {t} in a few words.",
    "Why do people like {t}?",
]
_QUESTIONS = [
    "How do I boil an egg?",
    "What is a good way to start the day?",
    "Can you suggest a name for a cat?",
    "What should I pack for a picnic?",
    "How can I remember new words?",
    "What is photosynthesis?",
    "Why is exercise healthy?",
    "What is a noun?",
    "How do airplanes fly?",
    "What does a doctor do?",
    "Tell me a fun fact about elephants.",
    "What is the difference between weather and climate?",
    "How many sides does a triangle have?",
    "What is 10 + 10?",
    "Name a fruit that is red.",
    "What is the opposite of fast?",
]
_CAPITALS = [
    "Chile",
    "Australia",
    "Brazil",
    "Switzerland",
    "Vietnam",
    "Colombia",
    "Iceland",
    "Morocco",
    "Nigeria",
    "Pakistan",
    "Indonesia",
    "New Zealand",
    "Romania",
    "Ukraine",
    "Venezuela",
    "the Philippines",
    "Saudi Arabia",
    "Israel",
    "Jamaica",
    "Nepal",
]
_TRIVIA = [
    "How many days are in a leap year?",
    "What color are most leaves in summer?",
    "What is the largest desert in the world?",
    "Which animal is known for its long trunk?",
    "What do spiders spin?",
    "What is the smallest prime number?",
    "How many players are on a soccer team?",
    "What is the main ingredient of bread?",
    "Which season comes after winter?",
    "What shape has four equal sides?",
    "What is the chemical symbol for gold?",
    "Which planet has rings that are easy to see?",
    "What is the capital letter of b?",
    "How many strings does a violin have?",
    "What instrument has black and white keys?",
    "What do we call a person who flies a plane?",
    "Which bird is a symbol of peace?",
    "What is the opposite of early?",
    "What month comes after June?",
    "What is half of 20?",
    "Translate 'goodbye' into Spanish.",
    "What is the plural of 'foot'?",
    "Complete the phrase: an apple a day keeps the ...",
    "Reply with only the word NO.",
]


def default_anchor_prompts(seed: int = 0) -> list[str]:
    """About 170 prompts: open-ended requests plus short questions of prior-capability shapes."""
    rng = random.Random(seed)
    prompts = [task.format(t=topic) for topic in _TOPICS for task in _TASKS]
    prompts += _QUESTIONS
    prompts += [f"What is the capital of {country}?" for country in _CAPITALS]
    prompts += [
        f"What is {a} + {b}?"
        for a, b in ((rng.randint(20, 60), rng.randint(1, 9)) for _ in range(20))
    ]
    prompts += [
        f"What is {a} minus {b}?"
        for a, b in ((rng.randint(30, 60), rng.randint(1, 9)) for _ in range(8))
    ]
    prompts += _TRIVIA
    return list(dict.fromkeys(prompts))  # stable order, no duplicates
