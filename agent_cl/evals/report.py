"""From `results.json` to the tables a paper would print: mean and spread over seeds, the
in-context teacher beside every method, and where weights pay for themselves.

Tables are built from whatever units the results hold, so a partial or resumed run reports
what it has measured and says how many seeds each number rests on.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from agent_cl.evals.plan import METHODS
from agent_cl.evals.report_comparisons import comparisons_section
from agent_cl.evals.serving_cost import with_decode_cost

Units = dict[str, dict[str, Any]]


def spread(values: Iterable[float]) -> tuple[float, float, int]:
    """(mean, sample standard deviation, n); sd is 0 for a single value."""
    values = [v for v in values if v is not None]
    if not values:
        return float("nan"), 0.0, 0
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.mean(values), sd, len(values)


def fmt(values: Iterable[float], digits: int = 3) -> str:
    mean, sd, n = spread(values)
    if n == 0:
        return "–"
    return f"{mean:.{digits}f} ± {sd:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


def rows(units: Units, prefix: str) -> list[dict[str, Any]]:
    return [value for key, value in units.items() if key.startswith(prefix)]


def one_night(units: Units) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """suite -> method -> rows (one per seed)."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows(units, "one-night/"):
        out[row["suite"]][row["method"]].append(row)
    return out


def teachers(units: Units) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for key, value in units.items():
        if key.startswith("teacher/"):
            out[key.split("/")[1]].append(value)
    return out


def cost(units: Units) -> dict[str, dict[str, float]]:
    """Per suite: what text memory adds to every request against what a night costs once.

    Break-even is the requests per night above which the night's compute is smaller than the
    extra prefill text memory spends on every request (measured: single-token requests, so
    the answers' lengths, which differ between models, do not enter)."""
    out = {}
    for suite, methods in one_night(units).items():
        if "text" not in methods or "default" not in methods:
            continue
        text, weights = methods["text"], methods["default"]
        tokens_saved = (
            spread(r["prompt_tokens"] for r in text)[0]
            - spread(r["prompt_tokens"] for r in weights)[0]
        )
        saved_ms = (
            spread(r.get("prefill_ms") for r in text)[0]
            - spread(r.get("prefill_ms") for r in weights)[0]
        )
        train_s = spread(r.get("night_seconds", r["train_seconds"]) for r in weights)[0]
        out[suite] = {
            "tokens_saved_per_request": tokens_saved,
            "prefill_saved_ms": saved_ms,
            "train_seconds": train_s,
            "break_even_requests": train_s / (saved_ms / 1000.0) if saved_ms > 0 else None,
            "acc_text": spread(r["acc_in"] for r in text)[0],
            "acc_default": spread(r["acc_in"] for r in weights)[0],
        }
    return out


def build_report(data: dict[str, Any]) -> str:
    units: Units = data["units"]
    plan = data.get("plan", {})
    base = units.get("base")
    parts = ["# Weights versus text memory on the embedded model", ""]
    if data.get("commands"):
        parts += ["Produced by (in this folder, in order):", ""]
        parts += [f"    {command}" for command in data["commands"]] + [""]
    parts += [_sizes(plan, base), ""]
    parts += _one_night_section(units, base)
    parts += comparisons_section(units)
    parts += _kinds_section(units, base)
    parts += _sequential_section(units, plan)
    parts += _scaling_section(units, plan)
    parts += _cost_section(units, data.get("serving_cost"))
    return "\n".join(parts).rstrip() + "\n"


def _sizes(plan: dict[str, Any], base: dict[str, Any] | None) -> str:
    steps = (
        f"{plan.get('steps')} steps"
        if plan.get("steps")
        else f"{plan.get('steps_per_demo')} steps per demonstration"
    )
    retention = f"{base['n_retention']} retention prompts" if base else "retention not measured"
    return (
        f"Sizes: {plan.get('n_demos')} demonstrations per suite, nights of {steps} (batch 4, "
        f"the same LoRA for every method), text memory top-{plan.get('text_k')} at cosine ≥ "
        f"{plan.get('min_score')}, answers up to {plan.get('max_new_tokens')} tokens, "
        f"{retention}. Numbers are mean ± sample sd over seeds (n in each table)."
    )


def _one_night_section(units: Units, base: dict[str, Any] | None) -> list[str]:
    table = one_night(units)
    if not table:
        return []
    teacher = teachers(units)
    base_ret = base["retention"] if base else None
    lines = [
        "## One skill, one night",
        "",
        "Accuracy with nothing in context unless the method retrieves (`text`); `in`: held-out "
        "phrasings of trained items, `out`: a step away (two facts at once; a tool question "
        "phrased anew). Retention: the robust set (base = 1.000 by construction); Δ in points. "
        "Latency: one request at a time on the in-process served model (answer included; "
        "prefill alone is in results.json and the cost table).",
        "",
        "| suite | method | n | acc in | acc out | robust retention | Δ pts | KL from base "
        "| prompt tokens | latency ms | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for suite, methods in table.items():
        bound = teacher.get(suite, [])
        if bound:
            lines.append(
                f"| {suite} | in-context teacher (bound) | {len(bound)} "
                f"| {fmt(r.get('teacher_in') for r in bound)} "
                f"| {fmt(r.get('teacher_out') for r in bound)} | | | | | | |"
            )
        for method in METHODS:
            group = methods.get(method)
            if not group:
                continue
            drop = (
                fmt(((r["retention"] - base_ret) * 100 for r in group), 1)
                if base_ret is not None
                else "–"
            )
            lines.append(
                f"| {suite} | {method} | {len(group)} | {fmt(r.get('acc_in') for r in group)} "
                f"| {fmt(r.get('acc_out') for r in group)} | {fmt(r['retention'] for r in group)} "
                f"| {drop} | {fmt((r['kl_from_base'] for r in group), 4)} "
                f"| {fmt((r['prompt_tokens'] for r in group), 0)} "
                f"| {fmt((r['latency_ms'] for r in group), 0)} "
                f"| {fmt((r['train_seconds'] for r in group), 0)} |"
            )
    return [*lines, ""]


def kinds_by_method(units: Units) -> dict[str, dict[str, list[float]]]:
    """method -> kind -> robust retention per (suite, seed) run."""
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows(units, "one-night/"):
        for kind, value in row.get("retention_kinds", {}).items():
            out[row["method"]][kind].append(value)
    return out


def _kinds_section(units: Units, base: dict[str, Any] | None) -> list[str]:
    by_method = kinds_by_method(units)
    if not by_method:
        return []
    kinds = sorted({k for m in by_method.values() for k in m})
    lines = [
        "## Forgetting per kind",
        "",
        "Robust retention per kind of general skill after one night, over every suite and seed.",
        "",
        "| method | " + " | ".join(kinds) + " |",
        "|---|" + "---|" * len(kinds),
    ]
    if base:
        base_kinds = base.get("retention_kinds", {})
        lines.append("| base | " + " | ".join(fmt([base_kinds.get(k)]) for k in kinds) + " |")
    for method in METHODS:
        if method in by_method:
            cells = [fmt(by_method[method].get(k, [])) for k in kinds]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def sequential(units: Units) -> dict[str, dict[int, list[dict[str, Any]]]]:
    out: dict[str, dict[int, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows(units, "sequential/"):
        out[row["method"]][row["night"]].append(row)
    return out


def sequential_skills(units: Units) -> list[str]:
    """The skills in the order the nights taught them (as the sequential rows recorded)."""
    for row in rows(units, "sequential/"):
        return list(row.get("skills", []))
    return []


def _sequential_section(units: Units, plan: dict[str, Any]) -> list[str]:
    table = sequential(units)
    if not table:
        return []
    skills = sequential_skills(units)
    lines = [
        "## Sequential skills",
        "",
        f"One skill per night in the order {', '.join(skills)}; night N+1 trains on from night "
        "N's adapter. Accuracy on every skill (`in` split, nothing in context) after every "
        "night: accumulation keeps earlier skills, oscillation loses them.",
        "",
        "| method | night | trained on | n | " + " | ".join(skills) + " | robust retention |",
        "|---|---|---|---|" + "---|" * (len(skills) + 1),
    ]
    for method, nights in table.items():
        for night in sorted(nights):
            group = nights[night]
            cells = [fmt(r.get(f"acc_{s}") for r in group) for s in skills]
            trained = group[0].get("trained_on") or "(base)"
            lines.append(
                f"| {method} | {night} | {trained} | {len(group)} | "
                + " | ".join(cells)
                + f" | {fmt(r['retention'] for r in group)} |"
            )
    return [*lines, ""]


def scaling(units: Units) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows(units, "scaling/"):
        out[row["n_demos"]].append(row)
    return dict(sorted(out.items()))


def _scaling_section(units: Units, plan: dict[str, Any]) -> list[str]:
    table = scaling(units)
    if not table:
        return []
    suite = next(iter(table.values()))[0].get("suite", plan.get("scaling_suite"))
    lines = [
        "## Scaling with the number of demonstrations",
        "",
        f"The {suite} suite, the default recipe, a fixed night of "
        f"{plan.get('scaling_steps')} steps: how many demonstrations one night absorbs. Text "
        "memory over the same demonstrations beside it.",
        "",
        "| demonstrations | n | weights acc in | weights acc out | text acc in | text acc out "
        "| robust retention | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for n_demos, group in table.items():
        lines.append(
            f"| {n_demos} | {len(group)} | {fmt(r.get('acc_in') for r in group)} "
            f"| {fmt(r.get('acc_out') for r in group)} "
            f"| {fmt(r.get('text_acc_in') for r in group)} "
            f"| {fmt(r.get('text_acc_out') for r in group)} "
            f"| {fmt(r['retention'] for r in group)} "
            f"| {fmt((r['train_seconds'] for r in group), 0)} |"
        )
    return [*lines, ""]


def _cost_section(units: Units, serving: dict[str, Any] | None = None) -> list[str]:
    table = cost(units)
    if not table:
        return []
    lines = [
        "## Cost: where weights beat text",
        "",
        "Text memory makes every request longer; a night costs its training once. Break-even: "
        "requests per night above which the night is cheaper than the extra prefill (night "
        "seconds ÷ prefill saved per request, both measured on this machine, one request at a "
        "time). A night's seconds are its whole compute: loading, one-off targets, training "
        "and the KL check. Accuracy columns: the `in` split.",
        "",
        "| suite | tokens saved / request | prefill saved ms / request | night s "
        "| break-even requests / night | acc text | acc default |",
        "|---|---|---|---|---|---|---|",
    ]
    for suite, row in table.items():
        even = row["break_even_requests"]
        lines.append(
            f"| {suite} | {row['tokens_saved_per_request']:.0f} | {row['prefill_saved_ms']:.1f} "
            f"| {row['train_seconds']:.0f} | {f'{even:,.0f}' if even else 'never'} "
            f"| {row['acc_text']:.3f} | {row['acc_default']:.3f} |"
        )
    if serving:
        lines += ["", *_serving_lines(table, serving)]
    return [*lines, ""]


def _serving_lines(table: dict[str, dict[str, float]], serving: dict[str, Any]) -> list[str]:
    """The break-even again, with what the adapter adds to decoding on each serving path."""
    tokens = int(serving["answer_tokens"])
    lines = [
        f"With the serving cost: an adapter's added decode time per {tokens}-token answer on "
        f"each path, measured one request at a time by `{serving['source']}` on this machine "
        "class, taken off the prefill text memory costs. `never`: on that path the weights "
        "never pay back per request.",
        "",
        "| suite | path | decode added ms / answer | net saved ms / request "
        "| break-even requests / night |",
        "|---|---|---|---|---|",
    ]
    for suite, row in table.items():
        for path, cell in with_decode_cost(row, serving["per_token_ms"], tokens).items():
            even = cell["break_even_requests"]
            lines.append(
                f"| {suite} | {path} | {cell['decode_added_ms']:.0f} | {cell['net_saved_ms']:.0f} "
                f"| {f'{even:,.0f}' if even else 'never'} |"
            )
    return lines
