"""General prompts that anchor the student to the base model while it learns new skills.

The KL-to-base regulariser and self-replay need inputs that exercise what the model already
does. Two kinds, measured to matter: with open-ended prompts only (chat, explanations), the
anchor kept KL from base on open prompts at 0.027 but short factual questions still drifted
(retention 0.72 after SFT on facts), because the new skill is itself short factual Q/A. So the
pool also holds short questions of the same shapes as prior capabilities (sums, capitals,
trivia, formats). Every item is disjoint from the retention pool in `scoring/retention.py` (a
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


# Shapes of the retention set's newer kinds (words, instructions, reasoning, numbers), on other
# words and numbers: the anchor holds the *skill* in place, the retention set then checks it on
# items the anchor never saw.
_WORDS = ["river", "lamp", "cloud", "stone", "horse", "paper", "glass", "shoe", "king", "rain"]
_OPPOSITES = [
    "wide",
    "near",
    "cheap",
    "polite",
    "noisy",
    "sharp",
    "gentle",
    "brave",
    "warm",
    "deep",
]
_VERBS = ["read", "fall", "find", "build", "catch", "hold", "bring", "feel", "sit", "win"]
_NOUNS = ["calf", "foot", "dish", "lady", "tomato", "glass", "church", "wife", "hero", "key"]
_STORIES = [
    "Ella has {a} oranges and buys {b} more. How many oranges does she have now?",
    "A shelf holds {a} books and {b} more are added. How many books are on the shelf?",
    "Max had {c} coins and spent {b}. How many coins does he have left?",
    "There are {c} ducks on a pond and {b} fly away. How many ducks are left?",
]


def wide_anchor_prompts(seed: int = 0) -> list[str]:
    """`default_anchor_prompts` plus prompts shaped like every retention kind (about 290)."""
    rng = random.Random(seed + 1)
    prompts = default_anchor_prompts(seed)
    prompts += [f"What is the opposite of {w}?" for w in _OPPOSITES]
    prompts += [f"What is the past tense of '{v}'?" for v in _VERBS]
    prompts += [f"What is the plural of '{n}'?" for n in _NOUNS]
    prompts += [f"How many letters are in the word '{w}'?" for w in _WORDS]
    prompts += [f"Reply with only the word {w.upper()}." for w in _WORDS[:5]]
    prompts += [f"Write the word '{w}' in lowercase letters." for w in _WORDS[5:]]
    prompts += [f"Spell the word {w} backwards." for w in _WORDS[:5]]
    prompts += [
        f"What is {a} times {b}?"
        for a, b in ((rng.randint(10, 12), rng.randint(2, 9)) for _ in range(8))
    ]
    prompts += [f"What number comes after {n}?" for n in range(60, 70)]
    prompts += [f"Which is larger, {a} or {b}?" for a, b in ((31, 13), (45, 54), (70, 17), (88, 8))]
    prompts += [f"Is {n} an even or an odd number?" for n in (21, 34, 55, 68)]
    prompts += [
        story.format(a=rng.randint(2, 9), b=rng.randint(1, 4), c=rng.randint(10, 19))
        for story in _STORIES
        for _ in range(2)
    ]
    prompts += [
        "If today is Tuesday, what day is tomorrow?",
        "If today is Thursday, what day was yesterday?",
        "What comes next: 3, 6, 9, 12, ...?",
        "What comes next: 2, 4, 8, 16, ...?",
        "Which is heavier, a car or a bicycle?",
        "Which is smaller, an ant or a dog?",
        "Translate 'apple' into Spanish.",
        "Translate 'please' into French.",
        "Complete the phrase: as busy as a ...",
        "What language is spoken in Portugal?",
        "What is a baby goat called?",
        "How many legs does a bird have?",
    ]
    return list(dict.fromkeys(prompts))


def anchor_prompts(pool: str, seed: int = 0) -> list[str]:
    """The named anchor pool (ANCHOR_POOLS)."""
    if pool not in ANCHOR_POOLS:
        raise ValueError(f"anchor_pool must be one of {', '.join(ANCHOR_POOLS)}; got {pool!r}")
    return ANCHOR_POOLS[pool](seed)


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


ANCHOR_POOLS = {"general": default_anchor_prompts, "wide": wide_anchor_prompts}
