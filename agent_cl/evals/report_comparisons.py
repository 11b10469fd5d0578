"""The report's comparisons, each with its paired difference and 95% interval.

Every claim the eval README makes about weights against text memory is a difference between
two methods on the same questions of the same seeds; this section prints exactly those
differences, with the interval from `intervals.paired`, so a reader sees which ones the data
support (the interval excludes 0) and which are a tie within noise. The agent's own retrieval
(`text-gated`, its real 0.8 cut) is the main text-memory baseline; plain top-k (`text`)
stands beside it. Units measured before per-question hits were recorded are left out and
counted, never guessed.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from agent_cl.evals.intervals import Interval, cell, paired, unpack

Units = dict[str, dict[str, Any]]

# (measure label, hits key in a one-night unit)
MEASURES = (("acc in", "hits_in"), ("acc out", "hits_out"), ("robust retention", "retention_hits"))
# (a, b): the README's claims are a - b
COMPARISONS = (
    ("default", "none"),  # what the night put into the weights
    ("default", "text-gated"),  # weights against the agent's own retrieval
    ("default", "text"),  # weights against plain top-k text memory
    ("text-gated", "text"),  # what the agent's cut costs and saves
    ("default", "sft"),  # what the anchor buys over plain SFT on the same night
    ("default", "sdft"),  # the default recipe against the paper's objective at this size
)
CELL_METHODS = ("none", "text-gated", "text", "sft", "sdft", "default", "default+text")


def hits_by_seed(units: Units) -> dict[tuple[str, str], dict[int, dict[str, list[bool]]]]:
    """(suite, method) -> seed -> hits key -> per-question hits, for the keys a unit has (units
    from before per-question answers were kept have only retention's)."""
    out: dict[tuple[str, str], dict[int, dict[str, list[bool]]]] = defaultdict(dict)
    for key, row in units.items():
        if not key.startswith("one-night/"):
            continue
        hits = {k: unpack(row[k]) for _, k in MEASURES if row.get(k)}
        if hits:
            out[(row["suite"], row["method"])][row["seed"]] = hits
    return out


def comparison(
    table: dict[tuple[str, str], dict[int, dict[str, list[bool]]]],
    suite: str,
    a: str,
    b: str,
    measure: str,
) -> Interval | None:
    """a - b on the seeds both have, or None when there is nothing to pair."""
    left, right = table.get((suite, a), {}), table.get((suite, b), {})
    seeds = sorted(s for s in set(left) & set(right) if measure in left[s] and measure in right[s])
    if not seeds:
        return None
    return paired([left[s][measure] for s in seeds], [right[s][measure] for s in seeds])


def comparisons_section(units: Units) -> list[str]:
    table = hits_by_seed(units)
    if not table:
        return _unrecorded(units)
    suites = list(dict.fromkeys(suite for suite, _ in table))
    lines = [
        "## Comparisons with 95% intervals",
        "",
        "Each cell is the mean over seeds and its 95% interval from a two-level bootstrap "
        "(seeds, then questions within a seed; 2,000 resamples). A difference is paired: "
        "both methods on the same questions of the same seeds. In points; **bold** where the "
        "interval excludes 0. `text-gated` is the agent's own retrieval (its 0.8 cut), the "
        "main text-memory baseline; `text` is plain top-k.",
        "",
        "| suite | method | seeds × questions | acc in | acc out | robust retention |",
        "|---|---|---|---|---|---|",
    ]
    for suite in suites:
        for method in CELL_METHODS:
            by_seed = table.get((suite, method))
            if not by_seed:
                continue
            cells = []
            for _, key in MEASURES:
                groups = [h[key] for h in by_seed.values() if key in h]
                cells.append(cell(groups).fraction() if groups else "–")
            lines.append(f"| {suite} | {method} | {_size(by_seed)} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| suite | difference | acc in (pts) | acc out (pts) | robust retention (pts) |",
        "|---|---|---|---|---|",
    ]
    for suite in suites:
        for a, b in COMPARISONS:
            found = [comparison(table, suite, a, b, key) for _, key in MEASURES]
            if not any(found):
                continue
            lines.append(
                f"| {suite} | {a} − {b} | " + " | ".join(_difference(i) for i in found) + " |"
            )
    return [*lines, "", *_unrecorded(units)]


def _size(by_seed: dict[int, dict[str, list[bool]]]) -> str:
    asked = [len(h["hits_in"]) for h in by_seed.values() if "hits_in" in h]
    return f"{len(by_seed)} × {min(asked)}" if asked else f"{len(by_seed)} × –"


def _difference(interval: Interval | None) -> str:
    if interval is None:
        return "–"
    text = interval.points(sign=True)
    return f"**{text}**" if interval.excludes_zero() else text


def _unrecorded(units: Units) -> list[str]:
    missing = [
        k for k, row in units.items() if k.startswith("one-night/") and not row.get("hits_in")
    ]
    if not missing:
        return []
    return [
        f"{len(missing)} one-night units were measured before per-question answers were "
        "recorded: their accuracy has no interval (`–`); their retention, recorded per "
        "prompt, has one.",
        "",
    ]
