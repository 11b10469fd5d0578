"""Teacher-written augmentation: the filter decides what a weak writer may add to training."""

from __future__ import annotations

import pytest

from agent_cl.consolidation.augment import extract_question, teacher_augment
from agent_cl.memory.schema import Demonstration

DEMO = Demonstration(
    query="Who leads the Nerost Lab?",
    context="At the Veyra Institute, the Nerost Lab is led by Lennart Thugalner.",
    answer="The Nerost Lab is led by Lennart Thugalner.",
    metadata={"expected": "Lennart Thugalner"},
)


def scripted(written: list[str], answers: dict[str, str]):
    """A generate callable: writer samples in order, then the teacher's answers by question."""
    calls = []

    def generate(conversations, temperature, max_new_tokens):
        calls.append((len(conversations), temperature))
        if temperature > 0:
            return written[: len(conversations)]
        return [answers.get(c[-1]["content"].split("Question: ")[-1], "") for c in conversations]

    return generate, calls


def test_keeps_only_verified_new_questions():
    written = [
        "Question: Who is the director of the Nerost Lab?\nAnswer: ...",  # kept
        "Who heads the Nerost Lab? Lennart Thugalner.",  # kept? answer wrong -> dropped
        "Is Lennart Thugalner the leader?",  # gives the answer away
        "Who is the head of the Nerost Lab?",  # a held-out paraphrase
        "Who leads the Nerost Lab?",  # the demonstration's own question
        "no question here at all",
    ]
    answers = {
        "Who is the director of the Nerost Lab?": "The director is Lennart Thugalner.",
        "Who heads the Nerost Lab?": "I do not know.",
    }
    generate, calls = scripted(written, answers)
    extra = teacher_augment(
        [DEMO],
        generate,
        per_demo=3,
        candidates_per_demo=6,
        exclude=["Who is the head of the Nerost Lab?"],
    )
    assert [d.query for d in extra] == ["Who is the director of the Nerost Lab?"]
    assert extra[0].answer == "The director is Lennart Thugalner."
    assert extra[0].context == DEMO.context and extra[0].metadata["augmented_from"] == DEMO.id
    assert calls == [(6, 0.8), (2, 0.0)]  # six drawn, two proposals answered


def test_per_demo_cap_and_demos_without_expected_answer():
    written = [f"Who runs the Nerost Lab, version {i}?" for i in range(4)]
    answers = {q: "Lennart Thugalner runs it." for q in written}
    generate, _ = scripted(written, answers)
    no_expected = Demonstration(query="Say hi", answer="Hi")
    extra = teacher_augment([DEMO, no_expected], generate, per_demo=2, candidates_per_demo=4)
    assert len(extra) == 2 and all(d.metadata["augmented_from"] == DEMO.id for d in extra)
    assert teacher_augment([no_expected], generate, per_demo=1, candidates_per_demo=1) == []
    with pytest.raises(ValueError):
        teacher_augment([DEMO], generate, per_demo=3, candidates_per_demo=2)


def test_extract_question():
    assert extract_question("Question: Where is it based?\nAnswer: x") == "Where is it based?"
    assert extract_question("Hmm. In which city is the Lab?") == "Hmm. In which city is the Lab?"
    assert extract_question("Nothing to ask.") is None
