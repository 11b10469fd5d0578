"""The retention set: what the base model already does right, re-checked after every night.

Candidates come from a pool of kinds (arithmetic, numbers, capitals, facts, words,
instructions, formats, short reasoning), each with a verifiable answer; the tables live in
`data/retention_pool.json`. A frozen fixture keeps the items the base model answers correctly
and marks the *robust* ones: those it also answers correctly in bf16 and under several seeded
random weight perturbations. Measured on SmolLM2-135M, a 1%-of-std perturbation alone drops a
plain base-correct set to 0.80-0.88, so a drop on non-robust items is mostly noise; the gate
decides on the robust items. No kind may exceed `MAX_KIND_SHARE` of either set, so one fragile
skill (sums, for this model) cannot dominate the score.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from agent_cl.scoring.matching import contains_answer

FIXTURE_NAME = "retention_smollm2_135m.json"
POOL_NAME = "retention_pool.json"
KL_PROMPTS_NAME = "kl_prompts.json"
FIXTURE_VERSION = 2
MAX_KIND_SHARE = 0.30
Subset = Literal["robust", "full"]


@dataclass(frozen=True)
class RetentionItem:
    item_id: str
    kind: str
    prompt: str
    answers: tuple[str, ...]  # any one of them, as a word, counts
    robust: bool = True  # survived bf16 and the fixture's weight perturbations

    def is_correct(self, response: str) -> bool:
        return any(contains_answer(response, a) for a in self.answers)


def _data_text(name: str, path: Path | None = None) -> str:
    if path is not None:
        return Path(path).read_text()
    return resources.files("agent_cl.scoring").joinpath("data", name).read_text()


@cache
def _pool_tables() -> dict[str, Any]:
    return json.loads(_data_text(POOL_NAME))


def candidate_pool(seed: int = 0) -> list[RetentionItem]:
    """Every candidate item, deterministically; the fixture keeps those the base gets right."""
    rng = random.Random(seed)
    t = _pool_tables()
    items: list[RetentionItem] = []
    for a in range(2, 20):
        for b in range(1, 10):
            if a < 10 or rng.random() < 0.5:
                items.append(_item("arithmetic", f"What is {a} + {b}?", str(a + b)))
    for a in range(2, 10):
        for b in range(2, 10):
            if rng.random() < 0.5:
                items.append(_item("arithmetic", f"What is {a} times {b}?", str(a * b)))
    for a in range(10, 30):
        b = rng.randint(1, 9)
        items.append(_item("arithmetic", f"What is {a} minus {b}?", str(a - b)))
    for n in range(1, 40):
        items.append(_item("numbers", f"What number comes after {n}?", str(n + 1)))
    items += [_item("numbers", q, a) for q, a in t["numbers"]]
    for country, capital in t["capitals"].items():
        items.append(_item("capitals", f"What is the capital of {country}?", *capital.split("|")))
    items += [_item("facts", q, *a.split("|")) for q, a in t["facts"]]
    items += [_item("formats", q, *a.split("|")) for q, a in t["formats"]]
    items += [_item("instructions", q, a) for q, a in t["instructions"]]
    items += [_item("reasoning", q, *a.split("|")) for q, a in t["reasoning"]]
    words = [
        *((f"What is the opposite of {w}?", a) for w, a in t["opposites"]),
        *((f"What is the plural of '{w}'?", a) for w, a in t["plurals"]),
        *((f"What is the past tense of '{w}'?", a) for w, a in t["past_tense"]),
        *((f"How many letters are in the word '{w}'?", str(n)) for w, n in t["letter_counts"]),
        *((f"Spell the word {w} backwards.", w[::-1]) for w in t["backwards"]),
    ]
    items += [_item("words", q, *a.split("|")) for q, a in words]
    return items


def _item(kind: str, prompt: str, *answers: str) -> RetentionItem:
    slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:56]
    return RetentionItem(f"{kind}:{slug}", kind, prompt, tuple(answers))


def cap_kinds(
    items: Sequence[RetentionItem], max_share: float = MAX_KIND_SHARE, seed: int = 0
) -> list[RetentionItem]:
    """Drop items (seeded) from any kind above `max_share` of the set, keeping pool order."""
    if not 0 < max_share <= 1:
        raise ValueError(f"max_share must be in (0, 1], got {max_share}")
    by_kind: dict[str, list[RetentionItem]] = defaultdict(list)
    for item in items:
        by_kind[item.kind].append(item)
    needed = math.ceil(1 / max_share - 1e-9)
    if items and len(by_kind) < needed:
        raise ValueError(
            f"{len(by_kind)} kinds cannot each stay within {max_share:.0%} of the set: "
            f"it needs at least {needed}"
        )
    sizes = {k: len(v) for k, v in by_kind.items()}
    # The largest kind may hold max_share of the final total: solve for its size against the
    # sum of the others (repeat, since capping one kind shrinks the total for the next).
    while True:
        total = sum(sizes.values())
        over = [k for k, n in sizes.items() if n > max_share * total + 1e-9]
        if not over or max_share == 1:
            break
        k = max(over, key=lambda name: sizes[name])
        capped = max(1, int(max_share * (total - sizes[k]) / (1 - max_share)))
        if capped == sizes[k]:
            break
        sizes[k] = capped
    keep: set[str] = set()
    rng = random.Random(seed)
    for kind, members in by_kind.items():
        chosen = members if sizes[kind] >= len(members) else rng.sample(members, sizes[kind])
        keep.update(m.item_id for m in chosen)
    return [item for item in items if item.item_id in keep]


def freeze_fixture(
    pool: Sequence[RetentionItem],
    checks: Mapping[str, Sequence[bool]],
    *,
    model_sha256: str,
    base_check: str = "fp32",
    max_share: float = MAX_KIND_SHARE,
    notes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The fixture payload from per-item correctness under several checks.

    `checks[base_check]` decides the full set (the base model's own answers); an item is robust
    when every check in `checks` found it correct. Both sets are capped per kind.
    """
    if base_check not in checks:
        raise ValueError(f"checks must include the base check {base_check!r}")
    for name, row in checks.items():
        if len(row) != len(pool):
            raise ValueError(f"check {name!r} has {len(row)} results for {len(pool)} items")
    full = cap_kinds([it for k, it in enumerate(pool) if checks[base_check][k]], max_share)
    robust_ids = {it.item_id for k, it in enumerate(pool) if all(row[k] for row in checks.values())}
    robust = {it.item_id for it in cap_kinds([it for it in full if it.item_id in robust_ids])}
    return {
        "version": FIXTURE_VERSION,
        "model_sha256": model_sha256,
        "pool_size": len(pool),
        "checks": sorted(checks),
        "max_kind_share": max_share,
        "notes": dict(notes or {}),
        "kinds_full": dict(Counter(it.kind for it in full)),
        "kinds_robust": dict(Counter(it.kind for it in full if it.item_id in robust)),
        "items": [asdict(replace(it, robust=it.item_id in robust)) for it in full],
    }


def load_retention_set(
    path: Path | None = None, *, subset: Subset = "robust", limit: int | None = None
) -> list[RetentionItem]:
    """The frozen set shipped with the package (or `path`).

    `subset="robust"` (the gate's set) or `"full"` (every item the base answers correctly);
    `limit` takes the first items of a seeded shuffle so a small sample still spans the kinds.
    """
    if subset not in ("robust", "full"):
        raise ValueError(f"subset must be 'robust' or 'full', got {subset!r}")
    data = json.loads(_data_text(FIXTURE_NAME, path))
    items = [
        RetentionItem(d["item_id"], d["kind"], d["prompt"], tuple(d["answers"]), d["robust"])
        for d in data["items"]
        if subset == "full" or d["robust"]
    ]
    if limit is not None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        random.Random(0).shuffle(items)
        items = items[:limit]
    return items


def fixture_model_sha256(path: Path | None = None) -> str:
    return json.loads(_data_text(FIXTURE_NAME, path))["model_sha256"]


def load_kl_prompts() -> tuple[str, ...]:
    """Open prompts for KL-from-base: disjoint from the retention pool and the training anchors."""
    return tuple(json.loads(_data_text(KL_PROMPTS_NAME)))


def score(items: Sequence[RetentionItem], outputs: Sequence[str]) -> float:
    if not items:
        raise ValueError("no retention items to score")
    return sum(it.is_correct(o) for it, o in zip(items, outputs, strict=True)) / len(items)


def retention_breakdown(items: Sequence[Any], hits: Sequence[bool]) -> dict[str, Any]:
    """Robust and full accuracy and robust per-kind accuracy from per-item results.

    `items` carry `.robust` and `.kind` (RetentionItem, or the gate's GateItem); the keys match
    the gate's GateScores fields, so the gate, the demo, the nights benchmark and the frontier
    all report retention the same way.
    """
    if not items or len(items) != len(hits):
        raise ValueError(f"need one result per item, got {len(hits)} for {len(items)}")
    robust = [ok for item, ok in zip(items, hits, strict=True) if item.robust]
    if not robust:
        raise ValueError("no robust retention item among the results")
    kinds: dict[str, list[bool]] = defaultdict(list)
    for item, ok in zip(items, hits, strict=True):
        if item.robust:
            kinds[item.kind or "retention"].append(ok)
    return {
        "retention": sum(robust) / len(robust),
        "n_retention": len(robust),
        "retention_full": sum(hits) / len(hits),
        "n_retention_full": len(hits),
        "retention_kinds": {k: sum(v) / len(v) for k, v in sorted(kinds.items())},
    }


def kind_scores(items: Sequence[RetentionItem], outputs: Sequence[str]) -> dict[str, float]:
    """Accuracy per kind: where forgetting happens, not only how much."""
    hits: dict[str, list[bool]] = defaultdict(list)
    for item, output in zip(items, outputs, strict=True):
        hits[item.kind].append(item.is_correct(output))
    return {kind: sum(v) / len(v) for kind, v in sorted(hits.items())}
