"""General prompts that anchor the student to the base model while it learns new skills.

The KL-to-base regulariser and self-replay need inputs that exercise what the model already
does (chat, explanations, small tasks). They are deliberately disjoint from the retention set
in `evals/retention.py`, so retention measures generalisation of the anchor, not memorisation.
"""

from __future__ import annotations

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


def default_anchor_prompts() -> list[str]:
    """About 80 general prompts, deterministic order."""
    prompts = [task.format(t=topic) for topic in _TOPICS for task in _TASKS[:4]]
    return prompts[::1] + _QUESTIONS
