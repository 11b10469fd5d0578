"""Pure loss functions on tensors: no models, no config objects, testable with toy inputs."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def reverse_kl_per_token(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, temperature: float = 1.0
) -> torch.Tensor:
    """KL(student || teacher) over the full vocabulary at each position: [..., V] -> [...].

    Reverse KL is mode-seeking: it pushes down what the student says and the teacher would not,
    weighted by the student's own probability. Gradients flow into the student only.
    """
    log_p, log_q = _log_probs(student_logits, teacher_logits, temperature)
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1)


def _log_probs(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Student and (detached) teacher log-probabilities, after checking they line up."""
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student and teacher logits differ in shape: "
            f"{tuple(student_logits.shape)} vs {tuple(teacher_logits.shape)}"
        )
    log_p = F.log_softmax(student_logits.float() / temperature, dim=-1)
    log_q = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    return log_p, log_q


def token_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-position negative log-likelihood of `targets`: [B, T, V], [B, T] -> [B, T]."""
    return F.cross_entropy(logits.float().transpose(1, 2), targets.clamp_min(0), reduction="none")


def masked_sequence_loss(
    per_token: torch.Tensor, mask: torch.Tensor, *, reduction: str = "sum"
) -> torch.Tensor:
    """Reduce a [B, T] per-token loss over each sequence's valid tokens, then mean over B.

    "sum" weighs every token of a sample equally (the paper's sequence-level KL); "mean"
    normalises by sample length, so long samples do not dominate.
    """
    mask = mask.to(per_token.dtype)
    per_sequence = (per_token * mask).sum(dim=-1)
    if reduction == "mean":
        per_sequence = per_sequence / mask.sum(dim=-1).clamp_min(1.0)
    elif reduction != "sum":
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    return per_sequence.mean()


def forward_kl_per_token(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, temperature: float = 1.0
) -> torch.Tensor:
    """KL(teacher || student) per position: mass-covering, the soft-target distillation loss.

    Used on teacher-written sequences, where the student must learn tokens it would not say.
    """
    log_p, log_q = _log_probs(student_logits, teacher_logits, temperature)
    return (log_q.exp() * (log_q - log_p)).sum(dim=-1)
