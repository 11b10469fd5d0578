"""Where the anchor looks: the prompts most like a night's questions, and each step's draw."""

from __future__ import annotations

import random

import pytest

from agent_cl.consolidation.anchors import (
    nearest_anchor_indices,
    nearest_exchange_indices,
    world_anchor_prompts,
)
from agent_cl.consolidation.objectives import ObjectiveTerms
from agent_cl.consolidation.training_config import ConsolidationConfig


def test_nearest_anchors_follow_the_form_of_the_nights_questions():
    prompts = world_anchor_prompts()
    where = [
        prompts[i]
        for i in nearest_anchor_indices(prompts, ["Where is the Galmun Office located?"], 5)
    ]
    who = [prompts[i] for i in nearest_anchor_indices(prompts, ["Who leads the Marrud Lab?"], 5)]
    assert all(p.startswith("Where") for p in where[:3])
    assert all(p.startswith("Who") for p in who[:3])
    assert nearest_anchor_indices(prompts, [], 5) == []
    assert nearest_anchor_indices(prompts, ["anything"], 0) == []


class _Draw(ObjectiveTerms):
    def __init__(self, share: float, near: list[int]) -> None:
        self.config = ConsolidationConfig(anchor_batch_size=4, anchor_near_share=share)
        self.anchor_prompts = [f"p{i}" for i in range(50)]
        self.near_anchors = near


def test_a_near_share_draws_that_part_of_each_batch_from_the_nearest_prompts():
    near = [7, 8, 9]
    for seed in range(20):
        drawn = _Draw(0.5, near)._draw_anchors(random.Random(seed))
        assert len(drawn) == len(set(drawn)) == 4
        assert sum(i in near for i in drawn[:2]) == 2  # half the batch from the neighbours
    # share 0 is the uniform draw the recipe was measured with, draw for draw
    assert _Draw(0.0, near)._draw_anchors(random.Random(3)) == random.Random(3).sample(range(50), 4)
    # fewer neighbours than the share asks for: the rest comes from the pool
    drawn = _Draw(1.0, [5])._draw_anchors(random.Random(0))
    assert drawn[0] == 5 and len(set(drawn)) == 4


def test_the_near_share_is_validated():
    with pytest.raises(ValueError, match="anchor_near_share"):
        ConsolidationConfig(anchor_near_share=1.5)
    with pytest.raises(ValueError, match="anchor_near_by"):
        ConsolidationConfig(anchor_near_by="answers")


def test_exchange_likeness_sees_a_numeric_answer_that_the_question_hides():
    prompts = ["What is 12 times 7?", "What is the capital of Chile?", "Who wrote 'Hamlet'?"]
    answers = ["12 times 7 is 84.", "The capital of Chile is Santiago.", "Shakespeare."]
    night = [("What is the door code of the Vell archive?", "The door code is 4471.")]
    by_question = nearest_anchor_indices(prompts, [q for q, _ in night], 1)
    by_exchange = nearest_exchange_indices(prompts, answers, night, 2)
    assert prompts[by_question[0]] == "What is the capital of Chile?"
    assert {prompts[i] for i in by_exchange} == {"What is the capital of Chile?", prompts[0]}
    # an answer in words does not pull in the sums
    words = [("Who guards the Vell archive?", "Mara Velin guards the Vell archive.")]
    assert 0 not in nearest_exchange_indices(prompts, answers, words, 2)


def test_each_exchange_gets_its_own_nearest_prompts_in_turn():
    prompts = [f"What is the name of thing {i}?" for i in range(10)] + [
        "Who painted the Mona Lisa?",
        "Who wrote 'Emma'?",
    ]
    answers = ["Thing."] * 10 + ["Leonardo da Vinci.", "Jane Austen."]
    night = [
        ("What is the name of the Galmun ship?", "The Galmun ship is named Orla."),
        ("What is the name of the Brim bridge?", "The Brim bridge is named Tessa."),
        ("Who painted the Zelthu mural?", "Mara Velin painted the Zelthu mural."),
    ]
    chosen = nearest_exchange_indices(prompts, answers, night, 3)
    assert len(chosen) == len(set(chosen)) == 3
    assert any(prompts[i].startswith("Who painted") for i in chosen)  # the third gets its turn
    assert nearest_exchange_indices(prompts, answers, [], 3) == []
    assert len(nearest_exchange_indices(prompts, answers, night, 50)) == len(prompts)
    with pytest.raises(ValueError, match="answers for"):
        nearest_exchange_indices(prompts, answers[:2], night, 3)
