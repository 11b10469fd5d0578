"""The varied facts suite: many topics and note forms, deterministic, and verifiable."""

from __future__ import annotations

from collections import Counter

import pytest

from agent_cl.evals.plan import EvalPlan
from agent_cl.evals.suites import build_suite
from agent_cl.evals.varied_facts import TOPICS, build_varied_facts


def test_varied_facts_are_deterministic_and_span_topics_and_forms():
    a = build_varied_facts(48, seed=2)
    assert a == build_varied_facts(48, seed=2)
    assert a != build_varied_facts(48, seed=3)
    assert Counter(f.relation for f in a) == {t.name: 4 for t in TOPICS}
    # Several note forms per topic, not one sentence shape per topic.
    forms = {(f.relation, f.note.replace(f.unit, "").replace(f.answer, "")) for f in a}
    assert len(forms) >= 2 * len(TOPICS)
    assert sum(f.answer.isdigit() for f in a) >= len(a) // 3  # numbers are common in notes
    assert len({f.unit for f in a}) == len(a)
    closed = {t.name for t in TOPICS if t.closed}
    open_answers = [f.answer for f in a if f.relation not in closed and not f.answer.isdigit()]
    assert len(set(open_answers)) == len(open_answers)


def test_varied_facts_verify_their_answers():
    for fact in build_varied_facts(24, seed=0):
        assert fact.answer in fact.note and fact.answer in fact.answer_sentence
        assert fact.question not in fact.paraphrases and len(set(fact.paraphrases)) == 2
        assert fact.is_correct(fact.answer_sentence)
        assert not fact.is_correct("I do not know.")
        if fact.answer.isdigit():  # a number inside a longer number is a wrong answer
            assert not fact.is_correct(f"It is {fact.answer}7.")
            assert not fact.is_correct(f"It is 1{fact.answer}.")


def test_varied_facts_reject_bad_size():
    with pytest.raises(ValueError, match="n must be >= 1"):
        build_varied_facts(0)


def test_the_varied_suite_is_an_eval_suite():
    suite = build_suite("facts-varied", 8, seed=1)
    assert suite.name == "facts-varied" and len(suite.demonstrations) == 8
    assert len(suite.split("in")) == 16 and len(suite.split("out")) == 4
    facts = build_varied_facts(8, seed=1)
    # Only invented names count as leaks: numbers and weekdays turn up in general answers.
    assert all(not s.isdigit() for s in suite.invented)
    assert set(suite.invented) <= {f.answer for f in facts}
    for item, fact in zip(suite.split("in")[::2], facts, strict=True):
        assert fact.note in item.teacher[-1]["content"]
        assert fact.note not in item.conversation[-1]["content"]
    assert EvalPlan(suites=("facts-varied",)).suites == ("facts-varied",)
    with pytest.raises(ValueError, match="unknown suite"):
        build_suite("facts-variety", 8)
