from __future__ import annotations

import math

import pytest
import torch

from agent_cl.consolidation.losses import (
    masked_sequence_loss,
    reverse_kl_per_token,
    token_cross_entropy,
)


def test_kl_is_zero_when_teacher_and_student_agree():
    logits = torch.randn(2, 5, 11)
    assert torch.allclose(
        reverse_kl_per_token(logits, logits.clone()), torch.zeros(2, 5), atol=1e-6
    )


def test_kl_matches_hand_computation():
    p = torch.tensor([0.7, 0.2, 0.1])
    q = torch.tensor([0.2, 0.5, 0.3])
    expected = sum(pi * math.log(pi / qi) for pi, qi in zip(p.tolist(), q.tolist(), strict=True))
    got = reverse_kl_per_token(p.log()[None, None], q.log()[None, None])
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_kl_is_reverse_not_forward():
    p = torch.tensor([0.9, 0.05, 0.05]).log()
    q = torch.tensor([0.4, 0.3, 0.3]).log()
    forward = reverse_kl_per_token(q[None], p[None])
    reverse = reverse_kl_per_token(p[None], q[None])
    assert reverse.item() != pytest.approx(forward.item())


def test_gradient_reaches_student_only():
    student = torch.randn(1, 3, 7, requires_grad=True)
    teacher = torch.randn(1, 3, 7, requires_grad=True)
    reverse_kl_per_token(student, teacher).sum().backward()
    assert student.grad is not None and student.grad.abs().sum() > 0
    assert teacher.grad is None


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="differ in shape"):
        reverse_kl_per_token(torch.zeros(1, 2, 3), torch.zeros(1, 3, 3))


def test_masked_reduction_sum_and_mean():
    per_token = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert masked_sequence_loss(per_token, mask, reduction="sum").item() == pytest.approx(3.5)
    assert masked_sequence_loss(per_token, mask, reduction="mean").item() == pytest.approx(2.75)
    with pytest.raises(ValueError):
        masked_sequence_loss(per_token, mask, reduction="max")


def test_cross_entropy_is_low_for_the_predicted_token():
    logits = torch.full((1, 1, 4), -10.0)
    logits[0, 0, 2] = 10.0
    ce = token_cross_entropy(logits, torch.tensor([[2]]))
    assert ce.item() < 1e-3
    assert token_cross_entropy(logits, torch.tensor([[1]])).item() > 10
