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

import itertools
import random
import re
from collections.abc import Iterable, Sequence

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


# Real-world facts asked in the forms a user's facts take (who, where, when, which, how many,
# what is X called): the base answers them, rightly or not, and the anchor keeps those answers.
# A facts night that writes "The Galmun Office is located in Brimargal." was measured to teach
# real places the invented names ("The capital of Ireland is Londar"); these hold the base's
# behaviour on the real neighbours of what a night learns.
_WORLD = [
    "Where is the Statue of Liberty?",
    "Where is the Golden Gate Bridge located?",
    "Where is Mount Kilimanjaro?",
    "Where is the Louvre museum located?",
    "Where is Machu Picchu?",
    "Where is the Sydney Opera House?",
    "Where is Harvard University located?",
    "Where are the headquarters of the United Nations?",
    "Where was Albert Einstein born?",
    "Where is the Amazon rainforest?",
    "Who wrote 'Don Quixote'?",
    "Who wrote 'The Odyssey'?",
    "Who painted the ceiling of the Sistine Chapel?",
    "Who discovered gravity?",
    "Who invented the light bulb?",
    "Who founded Microsoft?",
    "Who leads the government of the United Kingdom?",
    "Who leads an orchestra?",
    "Who is the head of the Catholic Church?",
    "Who built the first airplane?",
    "Who was Cleopatra?",
    "Who composed 'The Four Seasons'?",
    "When did the Second World War end?",
    "When did humans first land on the Moon?",
    "When was the United Nations founded?",
    "When did the Titanic sink?",
    "When was the printing press invented?",
    "When did the Berlin Wall fall?",
    "When is Christmas Day?",
    "When was the Eiffel Tower built?",
    "Which river flows through London?",
    "Which river flows through Cairo?",
    "Which city is the largest in Australia?",
    "Which country has the largest population?",
    "Which ocean lies between Europe and America?",
    "Which mountain range is in Nepal?",
    "What is the name of the longest river in South America?",
    "What is the name of the galaxy we live in?",
    "What is the official language of Brazil?",
    "What is the currency of Mexico?",
    "What is the name of the company that makes the iPhone?",
    "What is the code for the element gold?",
    "How many planets are in our solar system?",
    "How many states does the United States have?",
    "How many years are in a century?",
    "How many players are on a basketball team?",
]
_MORE_CAPITALS = [
    "Kazakhstan",
    "Cameroon",
    "Honduras",
    "Slovenia",
    "Niger",
    "Bhutan",
    "Oman",
    "Kuwait",
    "Namibia",
    "Botswana",
    "Mozambique",
    "Madagascar",
    "Fiji",
    "Singapore",
    "Uzbekistan",
    "Azerbaijan",
    "Moldova",
    "Bosnia and Herzegovina",
    "North Macedonia",
    "El Salvador",
]


def world_anchor_prompts(seed: int = 0) -> list[str]:
    """`wide_anchor_prompts` plus real-world facts asked the ways users' facts are (about 360)."""
    prompts = wide_anchor_prompts(seed) + _WORLD
    prompts += [f"What is the capital of {country}?" for country in _MORE_CAPITALS]
    return list(dict.fromkeys(prompts))


def _shape(text: str) -> set[str]:
    """The words and word pairs of a question, which carry its form ("where is the ... located")
    as much as its topic."""
    words = re.findall(r"[a-z0-9']+", text.lower())
    return {*words, *(f"{a} {b}" for a, b in itertools.pairwise(words))}


_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")


def _exchange_shape(question: str, answer: str) -> set[str]:
    """The shape of a question *and its answer*, every number one token: a night that writes
    "316 grams" and "1853" was measured to leak its numbers into sums ("2 times 9 is 29"), which
    share no words with "How many grams does the kettle weigh?" but do share a numeric answer."""
    return _shape(_NUMBER.sub(" 0 ", f"{question} {answer}"))


def _likeness(mine: set[str], other: set[str]) -> float:
    return len(mine & other) / max(1, len(mine | other))


def nearest_anchor_indices(prompts: Sequence[str], queries: Iterable[str], k: int) -> list[int]:
    """The `k` anchor prompts most like any of the night's questions (Jaccard on words and word
    pairs), best first: the base behaviour a night is most likely to overwrite is on inputs
    shaped like what it trains, so part of each anchor batch is drawn from these."""
    shapes = [_shape(q) for q in queries]
    if not shapes or k <= 0:
        return []

    def likeness(prompt: str) -> float:
        mine = _shape(prompt)
        return max(_likeness(mine, other) for other in shapes)

    ranked = sorted(range(len(prompts)), key=lambda i: (-likeness(prompts[i]), i))
    return ranked[:k]


def nearest_exchange_indices(
    prompts: Sequence[str],
    prompt_answers: Sequence[str],
    exchanges: Iterable[tuple[str, str]],
    k: int,
) -> list[int]:
    """The `k` anchor prompts nearest the night's exchanges (`prompt_answers` are the base's
    answers to `prompts`), taken in turn from rankings of each exchange: by likeness of question
    and answer together, numbers alike, and, when its answer holds a number, among the prompts
    the base answers with a number.

    Both turns were measured to matter. Ranked by best likeness to any question, the prompts
    sharing "what is the" filled the near set with capitals and opposites, and a night of 16
    varied facts had no sum among its 32 nearest, while that night's numbers leaked into sums
    ("2 times 9 is 29"); on words alone a door code sits nearer "the capital of Chile" than
    "12 times 7" (benchmarks/anchor_near_sets.py)."""
    if len(prompt_answers) != len(prompts):
        raise ValueError(f"{len(prompt_answers)} answers for {len(prompts)} anchor prompts")
    pairs = list(dict.fromkeys(exchanges))
    if not pairs or k <= 0:
        return []
    anchors = [_exchange_shape(p, a) for p, a in zip(prompts, prompt_answers, strict=True)]
    numeric = [i for i, answer in enumerate(prompt_answers) if _NUMBER.search(answer)]
    rankings = []
    for question, answer in pairs:
        mine = _exchange_shape(question, answer)

        def by_likeness(i: int, mine: set[str] = mine) -> tuple[float, int]:
            return (-_likeness(mine, anchors[i]), i)

        rankings.append(iter(sorted(range(len(prompts)), key=by_likeness)))
        if _NUMBER.search(answer):
            rankings.append(iter(sorted(numeric, key=by_likeness)))
    chosen: dict[int, None] = {}
    limit = min(k, len(prompts))
    while len(chosen) < limit:
        for ranking in rankings:
            index = next((i for i in ranking if i not in chosen), None)
            if index is not None:
                chosen[index] = None
            if len(chosen) >= limit:
                break
    return list(chosen)


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


ANCHOR_POOLS = {
    "general": default_anchor_prompts,
    "wide": wide_anchor_prompts,
    "world": world_anchor_prompts,
}
