"""Where the anchor looks: the prompts most like a night's questions, and each step's draw."""

from __future__ import annotations

import random

import pytest

from agent_cl.consolidation.anchors import nearest_anchor_indices, world_anchor_prompts
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
