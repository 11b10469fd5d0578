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
    model,
    tokenizer,
    prompts: list[list[int]],
    completions: list[list[int]],
    device,
    *,
    packed: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits predicting each completion token: ([B, Tc, V], mask [B, Tc]).

    Packed (the default): the rows [prompt][completion] run end to end as one sequence, each
    with its own position ids; transformers reads the restarts as packed sequences and keeps
    attention within each, so no padding is computed. A night mixes 46-token facts with
    206-token tool turns: padded, 0.55 of a batch's tokens were real, and the packed SFT term
    took 0.52 of the padded time (docs/results/padding_cost.json). The LM head runs only at the
    positions that predict a completion token (on a 135M model with a 49k vocabulary the head
    is most of the cost). `packed=False` pads instead, for the side-by-side check.
    """
    if any(not p for p in prompts):
        raise ValueError("every completion needs a prompt of at least one token")
    if not packed:
        return _padded_completion_logits(model, tokenizer, prompts, completions, device)
    ids: list[int] = []
    positions: list[int] = []
    keep: list[int] = []  # the positions whose logits predict a completion token
    for prompt, completion in zip(prompts, completions, strict=True):
        first = len(ids) + len(prompt) - 1
        ids += prompt + completion
        positions += range(len(prompt) + len(completion))
        keep += range(first, first + len(completion))
    logits = model(
        input_ids=torch.tensor([ids], device=device),
        position_ids=torch.tensor([positions], device=device),
        logits_to_keep=torch.tensor(keep, device=device),
        use_cache=False,  # with a cache, transformers does not look for packed sequences
    ).logits[0]
    t_c = max(len(c) for c in completions)
    rows = torch.tensor([i for i, c in enumerate(completions) for _ in c], device=device)
    cols = torch.tensor([j for c in completions for j in range(len(c))], device=device)
    laid_out = logits.new_zeros(len(completions), t_c, logits.shape[-1])
    laid_out = laid_out.index_put((rows, cols), logits)
    lengths = torch.tensor([len(c) for c in completions], device=device)
    mask = torch.arange(t_c, device=device)[None, :] < lengths[:, None]
    return laid_out, mask


def _padded_completion_logits(
    model, tokenizer, prompts: list[list[int]], completions: list[list[int]], device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows laid out as [left pad][prompt][completion][right pad to Tc], so every completion
    occupies the last Tc positions; position ids count real tokens only."""
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
