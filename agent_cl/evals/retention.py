"""The retention set: things the base model already does right, checked after every sleep.

Candidates come from generated pools (arithmetic, well-known facts, format instructions, short
completions), each with a verifiable answer. `build_fixture` runs the base model once, keeps the
items it answers correctly and freezes them as JSON tagged with the model's checksum, so
retention_before is 1.0 by construction and any drop after a sleep is forgetting.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from agent_cl.graphs.verifiers import answer_matches

FIXTURE_NAME = "retention_smollm2_135m.json"

_CAPITALS = {
    "France": "Paris",
    "Germany": "Berlin",
    "Italy": "Rome",
    "Spain": "Madrid",
    "Japan": "Tokyo",
    "China": "Beijing",
    "Russia": "Moscow",
    "Egypt": "Cairo",
    "England": "London",
    "the United Kingdom": "London",
    "Canada": "Ottawa",
    "Greece": "Athens",
    "Portugal": "Lisbon",
    "Ireland": "Dublin",
    "Austria": "Vienna",
    "Norway": "Oslo",
    "Sweden": "Stockholm",
    "Poland": "Warsaw",
    "Thailand": "Bangkok",
    "South Korea": "Seoul",
    "Kenya": "Nairobi",
    "Argentina": "Buenos Aires",
    "Peru": "Lima",
    "Cuba": "Havana",
    "Finland": "Helsinki",
    "Denmark": "Copenhagen",
    "Hungary": "Budapest",
    "the Netherlands": "Amsterdam",
    "Belgium": "Brussels",
    "India": "New Delhi",
    "Mexico": "Mexico City",
    "Turkey": "Ankara",
}
_LETTER_COUNTS = [
    ("cat", 3),
    ("dog", 3),
    ("tree", 4),
    ("book", 4),
    ("house", 5),
    ("apple", 5),
    ("sun", 3),
    ("water", 5),
    ("moon", 4),
    ("fish", 4),
    ("bird", 4),
    ("car", 3),
]
_FACTS = [
    ("What color is the sky on a clear day?", "blue"),
    ("What color is grass?", "green"),
    ("How many days are in a week?", "seven|7"),
    ("How many legs does a spider have?", "eight|8"),
    ("What is the largest planet in our solar system?", "Jupiter"),
    ("What planet do we live on?", "Earth"),
    ("Who wrote Romeo and Juliet?", "Shakespeare"),
    ("What is the chemical symbol for water?", "H2O"),
    ("What is the freezing point of water in Celsius?", "0"),
    ("What is the boiling point of water in Celsius?", "100"),
    ("What gas do plants absorb from the air?", "carbon dioxide|CO2"),
    ("What is the opposite of hot?", "cold"),
    ("What is the opposite of up?", "down"),
    ("How many months are in a year?", "twelve|12"),
    ("What animal is known as the king of the jungle?", "lion"),
    ("What is the closest star to Earth?", "Sun"),
    ("Which ocean is the largest?", "Pacific"),
    ("What do bees make?", "honey"),
    ("What is the first letter of the English alphabet?", "A"),
    ("How many hours are in a day?", "24|twenty-four"),
    ("Who painted the Mona Lisa?", "Leonardo|da Vinci"),
    ("What is the tallest animal in the world?", "giraffe"),
    ("What is frozen water called?", "ice"),
    ("Which animal says 'meow'?", "cat"),
    ("What is the color of a banana?", "yellow"),
    ("What color is snow?", "white"),
    ("What color is a tomato?", "red"),
    ("What color is coal?", "black"),
    ("Which animal barks?", "dog"),
    ("Which animal gives us milk?", "cow"),
    ("What do cows drink?", "water"),
    ("How many wheels does a bicycle have?", "two|2"),
    ("How many legs does a dog have?", "four|4"),
    ("How many fingers are on one hand?", "five|5"),
    ("What is the largest ocean on Earth?", "Pacific"),
    ("What is the capital city of the United States?", "Washington"),
    ("Who was the first president of the United States?", "Washington"),
    ("What language is spoken in France?", "French"),
    ("What language is spoken in Germany?", "German"),
    ("What language is spoken in Spain?", "Spanish"),
    ("What is the main language of Brazil?", "Portuguese"),
    ("Which planet is known as the Red Planet?", "Mars"),
    ("What is the hottest planet in the solar system?", "Venus"),
    ("What do you call a baby cat?", "kitten"),
    ("What do you call a baby dog?", "puppy"),
    ("What is the largest mammal?", "whale"),
    ("What is the fastest land animal?", "cheetah"),
    ("What do caterpillars turn into?", "butterfl"),
    ("What is the center of an atom called?", "nucleus"),
    ("What organ pumps blood through the body?", "heart"),
    ("What do we breathe in to live?", "oxygen"),
    ("What is the currency of the United Kingdom?", "pound"),
    ("What is the currency of Japan?", "yen"),
    ("In which country are the pyramids of Giza?", "Egypt"),
    ("Where is the Eiffel Tower?", "Paris"),
    ("Which continent is Kenya in?", "Africa"),
    ("What is the tallest mountain in the world?", "Everest"),
    ("Who developed the theory of relativity?", "Einstein"),
    ("Who wrote Hamlet?", "Shakespeare"),
    ("How many continents are there?", "seven|7"),
    ("How many minutes are in an hour?", "60|sixty"),
    ("How many seconds are in a minute?", "60|sixty"),
]
_FORMATS = [
    ("Reply with only the word YES in capital letters.", "YES"),
    ("Say hello.", "hello"),
    ("Repeat after me: blue whale", "blue whale"),
    ("Write the word 'apple' in capital letters.", "APPLE"),
    ("Spell the word cat backwards.", "tac"),
    ("Translate 'thank you' into French.", "merci"),
    ("Translate 'hello' into Spanish.", "hola"),
    ("What is the plural of 'child'?", "children"),
    ("What is the plural of 'mouse'?", "mice"),
    ("Complete the sentence: The early bird catches the ...", "worm"),
    ("Complete: Twinkle, twinkle, little ...", "star"),
    ("Complete the phrase: once upon a ...", "time"),
    ("What comes after Monday?", "Tuesday"),
    ("What comes after Wednesday?", "Thursday"),
    ("What month comes after January?", "February"),
    ("What month comes after March?", "April"),
    ("List the three primary colors.", "red"),
]


# Prompts for the KL-from-base measurement: open-ended, disjoint from the retention items and
# from the training anchors in consolidation/anchors.py.
KL_PROMPTS: tuple[str, ...] = (
    "What is your favourite season and why?",
    "Explain what a rainbow is.",
    "Give me a recipe idea for dinner.",
    "How do I make friends in a new city?",
    "What is the water cycle?",
    "Describe a cat.",
    "Why do we sleep?",
    "Write a haiku about snow.",
    "What are clouds made of?",
    "How does a bicycle work?",
    "Suggest a title for a mystery novel.",
    "What is gravity?",
    "How do bees communicate?",
    "Describe the taste of chocolate.",
    "What makes a good teacher?",
    "How do I write a thank-you note?",
    "What is the internet?",
    "Why is the sea salty?",
    "Tell me about volcanoes.",
    "What is a healthy snack?",
    "How do plants grow?",
    "Give me a tip for studying.",
    "What is democracy?",
    "Describe a sunset.",
    "What does a firefighter do?",
    "How do magnets work?",
    "Why do leaves change color?",
    "What is a computer?",
    "Write a short poem about the sea.",
    "How do fish breathe?",
    "What is an atom?",
    "Suggest a weekend activity.",
    "What is a planet?",
    "How is bread made?",
    "Why do birds migrate?",
    "What is electricity?",
    "Describe a forest.",
    "What is the purpose of a museum?",
    "How do I stay calm?",
    "What is a verb?",
    "Tell me something about penguins.",
    "Why do we have seasons?",
    "What is recycling?",
    "How do I care for a houseplant?",
    "What is a good habit?",
    "Describe your ideal house.",
    "What is a desert?",
    "How do vaccines work?",
    "What is the job of the heart?",
    "Give me a fun fact about space.",
)


@dataclass(frozen=True)
class RetentionItem:
    item_id: str
    kind: str
    prompt: str
    answers: tuple[str, ...]  # any one of them, as a whole word or phrase, counts

    def is_correct(self, response: str) -> bool:
        return any(_contains(response, a) for a in self.answers)


def _contains(response: str, answer: str) -> bool:
    if answer.isdigit():
        return re.search(rf"(?<![\d.]){re.escape(answer)}(?![\d])", response) is not None
    return answer_matches(response, answer)


def candidate_pool(seed: int = 0) -> list[RetentionItem]:
    """Every candidate item, deterministically; the fixture keeps those the base gets right."""
    rng = random.Random(seed)
    items: list[RetentionItem] = []
    for a in range(2, 10):
        for b in range(1, 10):
            items.append(_item("add", f"What is {a} + {b}?", str(a + b)))
    for a in range(2, 10):
        for b in range(2, 10):
            if rng.random() < 0.5:
                items.append(_item("mul", f"What is {a} times {b}?", str(a * b)))
    for a in range(10, 30):
        b = rng.randint(1, 9)
        items.append(_item("sub", f"What is {a} minus {b}?", str(a - b)))
    for a in range(10, 20):
        for b in range(1, 10):
            if rng.random() < 0.5:
                items.append(_item("add", f"What is {a} + {b}?", str(a + b)))
    for n in range(1, 40):
        items.append(_item("next", f"What number comes after {n}?", str(n + 1)))
    for word, count in _LETTER_COUNTS:
        items.append(_item("count", f"How many letters are in the word '{word}'?", str(count)))
    for country, capital in _CAPITALS.items():
        items.append(_item("capital", f"What is the capital of {country}?", capital))
    for prompt, answer in _FACTS:
        items.append(_item("fact", prompt, *answer.split("|")))
    for prompt, answer in _FORMATS:
        items.append(_item("format", prompt, answer))
    return items


def _item(kind: str, prompt: str, *answers: str) -> RetentionItem:
    slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:48]
    return RetentionItem(f"{kind}:{slug}", kind, prompt, tuple(answers))


def build_fixture(
    generate: Callable[[list[list[dict]]], list[str]],
    model_sha256: str,
    out: Path,
    *,
    seed: int = 0,
) -> dict:
    """Run the base model on the pool and freeze the items it answers correctly."""
    pool = candidate_pool(seed)
    outputs = generate([[{"role": "user", "content": it.prompt}] for it in pool])
    kept = [asdict(it) for it, o in zip(pool, outputs, strict=True) if it.is_correct(o)]
    payload = {
        "model_sha256": model_sha256,
        "pool_size": len(pool),
        "items": kept,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(payload, indent=1))
    return payload


def load_retention_set(
    path: Path | None = None, *, limit: int | None = None
) -> list[RetentionItem]:
    """The frozen set shipped with the package (or `path`), optionally the first `limit` items
    of a seeded shuffle so a quick run still samples every kind."""
    if path is None:
        text = resources.files("agent_cl.evals").joinpath("data", FIXTURE_NAME).read_text()
    else:
        text = Path(path).read_text()
    data = json.loads(text)
    items = [
        RetentionItem(d["item_id"], d["kind"], d["prompt"], tuple(d["answers"]))
        for d in data["items"]
    ]
    if limit is not None:
        random.Random(0).shuffle(items)
        items = items[:limit]
    return items


def fixture_model_sha256(path: Path | None = None) -> str:
    if path is None:
        text = resources.files("agent_cl.evals").joinpath("data", FIXTURE_NAME).read_text()
    else:
        text = Path(path).read_text()
    return json.loads(text)["model_sha256"]


def score(items: Sequence[RetentionItem], outputs: Sequence[str]) -> float:
    if not items:
        raise ValueError("no retention items to score")
    return sum(it.is_correct(o) for it, o in zip(items, outputs, strict=True)) / len(items)
