"""A fresh LoRA per night on top of the earlier nights, frozen, folded into one adapter.

Why: continuing one rank-8 adapter night after night lets every night rewrite the weights that
hold earlier skills, and keeps the capacity of all nights at rank 8. Stacking trains only the
night's own LoRA while the earlier ones stay exactly as published. LoRAs add exactly: the sum
of the B_i A_i is one adapter of rank sum r_i (peft's "cat"), so the served adapter is the
stack itself until it passes the served rank ceiling; past it, the summed update is compressed
to the ceiling by SVD (peft's "svd"), and the gate scores that compressed adapter, the one that
is served.
"""

from __future__ import annotations

from typing import Any

EARLIER = "earlier"  # the published adapter the night starts from, frozen
NIGHT = "night"  # the night's own LoRA, the only weights that train
FOLDED = "default"  # peft saves the adapter named "default" at the directory's root


def stack_night_adapter(base: Any, earlier_dir: Any, lora_config: Any) -> Any:
    """`base` with the adapter in `earlier_dir` frozen and a new trainable LoRA beside it.

    The night's LoRA adapts the same modules and layers as the earlier one (its rank and alpha
    are `lora_config`'s), so the two can be concatenated when the night ends."""
    import dataclasses

    from peft import PeftModel

    model = PeftModel.from_pretrained(base, earlier_dir, adapter_name=EARLIER, is_trainable=False)
    earlier = model.peft_config[EARLIER]
    night = dataclasses.replace(
        lora_config,
        target_modules=earlier.target_modules,
        layers_to_transform=earlier.layers_to_transform,
        inference_mode=False,
    )
    model.add_adapter(NIGHT, night)
    model.base_model.set_adapter([EARLIER, NIGHT])
    for name, param in model.named_parameters():
        param.requires_grad_(f".{NIGHT}." in name)
    return model


def fold_night_adapter(model: Any, max_rank: int | None) -> dict[str, Any]:
    """Replace the stack in `model` by one adapter (named `FOLDED`, active) and say how.

    Exact concatenation while the summed rank fits `max_rank` (None: always); otherwise the
    rank-`max_rank` SVD of the summed update. Returns the ranks and the method used."""
    ranks = [model.peft_config[name].r for name in (EARLIER, NIGHT)]
    total = sum(ranks)
    exact = max_rank is None or total <= max_rank
    model.add_weighted_adapter(
        [EARLIER, NIGHT],
        [1.0, 1.0],
        FOLDED,
        combination_type="cat" if exact else "svd",
        svd_rank=None if exact else max_rank,
    )
    model.set_adapter(FOLDED)
    model.delete_adapter(EARLIER)
    model.delete_adapter(NIGHT)
    for param in model.parameters():
        param.requires_grad_(False)
    return {
        "earlier_rank": ranks[0],
        "night_rank": ranks[1],
        "rank": total if exact else max_rank,
        "fold": "concatenated" if exact else "svd",
    }
