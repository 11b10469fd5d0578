from __future__ import annotations

import json

import pytest
from agent_cl.evals.retention import (
    candidate_pool,
    fixture_model_sha256,
    load_retention_set,
    score,
)

from agent_cl.evals.facts import build_facts
from agent_cl.models.provision import read_manifest


def test_facts_are_deterministic_and_unique():
    a, b = build_facts(40, seed=3), build_facts(40, seed=3)
    assert a == b
    assert build_facts(40, seed=4) != a
    assert len({f.unit for f in a}) == 40
    assert len({f.answer for f in a}) == 40
    for fact in a:
        assert fact.answer in fact.note and fact.answer in fact.answer_sentence
        assert fact.question not in fact.paraphrases
        assert fact.is_correct(fact.answer_sentence)
        assert not fact.is_correct("I do not know.")
        demo = fact.demonstration()
        assert (demo.query, demo.context, demo.answer) == (
            fact.question,
            fact.note,
            fact.answer_sentence,
        )
        assert demo.metadata == {"expected": fact.answer} and demo.skill == "facts"


def test_facts_reject_bad_size():
    with pytest.raises(ValueError):
        build_facts(0)


def test_retention_items_verify_answers():
    pool = {item.prompt: item for item in candidate_pool()}
    add = pool["What is 7 + 5?"]
    assert add.is_correct("7 + 5 = 12") and not add.is_correct("The answer is 122")
    assert pool["What is the capital of France?"].is_correct("Paris is the capital.")


def test_fixture_is_frozen_for_the_embedded_model(embedded_model_dir):
    items = load_retention_set()
    assert len(items) >= 150
    assert len({i.item_id for i in items}) == len(items)
    assert fixture_model_sha256() == read_manifest(embedded_model_dir)["weights_sha256"]
    subset = load_retention_set(limit=20)
    assert len(subset) == 20 and len({i.kind for i in subset}) >= 3
    assert score(subset, [i.answers[0] for i in subset]) == 1.0
    with pytest.raises(ValueError):
        score([], [])


def test_json_skill_tasks_and_verifier():
    from agent_cl.evals.json_skill import EXAMPLE, build_json_tasks, parse_record

    tasks = build_json_tasks(12, seed=1)
    assert tasks == build_json_tasks(12, seed=1)
    task = tasks[0]
    assert task.record["NAME"] in task.sentence and str(task.record["AGE"]) in task.sentence
    assert task.is_correct("Sure: " + task.answer + " done")
    wrong_keys = json.dumps({k.lower(): v for k, v in task.record.items()})
    assert not task.is_correct(wrong_keys)  # the exact format is the skill
    assert parse_record("no json here") is None and parse_record("{broken") is None
    demo = task.demonstration()
    assert demo.answer == task.answer and demo.metadata["expected"] == task.answer
    assert EXAMPLE.is_correct(EXAMPLE.answer)


def test_training_anchors_are_disjoint_from_retention_and_kl_prompts():
    from agent_cl.evals.retention import KL_PROMPTS

    from agent_cl.consolidation.anchors import default_anchor_prompts

    anchors = set(default_anchor_prompts())
    assert len(anchors) >= 100
    assert not anchors & {item.prompt for item in candidate_pool()}
    assert not anchors & set(KL_PROMPTS)
