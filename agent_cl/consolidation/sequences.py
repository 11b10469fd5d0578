"""The token-level data path shared by training and by the checks on a candidate.

Student and teacher see different prompts for the same completion; every loss and every
KL-from-base compares their logits position by position along that completion. Keeping the
layout in one place is what makes those comparisons line up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from agent_cl.models.chat import ChatMessage, generate_ids, render_prompt

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def prompt_ids(
    tokenizer: PreTrainedTokenizerBase, conversations: Sequence[Sequence[ChatMessage]]
) -> list[list[int]]:
    return [
        tokenizer(render_prompt(tokenizer, c), add_special_tokens=False).input_ids
        for c in conversations
    ]


def completion_logits(
    model, tokenizer, prompts: list[list[int]], completions: list[list[int]], device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits predicting each completion token: ([B, Tc, V], mask [B, Tc]).

    Rows are laid out as [left pad][prompt][completion][right pad to Tc], so every completion
    occupies the last Tc positions and the LM head runs only there (`logits_to_keep`): on a
    135M model with a 49k vocabulary the head is most of the cost. Position ids count real
    tokens only, so padding never shifts positions.
    """
    pad = tokenizer.pad_token_id
    t_c = max(len(c) for c in completions)
    rows = [p + c + [pad] * (t_c - len(c)) for p, c in zip(prompts, completions, strict=True)]
    width = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (row, comp) in enumerate(zip(rows, completions, strict=True)):
        input_ids[i, width - len(row) :] = torch.tensor(row)
        attention[i, width - len(row) : width - (t_c - len(comp))] = 1
    position_ids = (attention.cumsum(-1) - 1).clamp_min(0)
    logits = model(
        input_ids=input_ids.to(device),
        attention_mask=attention.to(device),
        position_ids=position_ids.to(device),
        logits_to_keep=t_c + 1,
    ).logits[:, :-1]
    lengths = torch.tensor([len(c) for c in completions], device=device)
    mask = torch.arange(t_c, device=device)[None, :] < lengths[:, None]
    return logits, mask


def sample_completions(
    model, tokenizer, prompts_text: list[str], *, max_new_tokens: int, temperature: float
) -> list[list[int]]:
    """Completion token ids from `model` (greedy at temperature 0), each cut after eos.

    The model is put in eval mode for sampling and returned to the mode it was in.
    """
    was_training = model.training
    model.eval()
    ids = generate_ids(
        model, tokenizer, prompts_text, max_new_tokens=max_new_tokens, temperature=temperature
    )
    model.train(was_training)
    eos = tokenizer.eos_token_id
    completions = []
    for row in ids.tolist():
        cut = row.index(eos) + 1 if eos in row else len(row)
        completions.append(row[:cut] or [eos])
    return completions
