"""95% intervals over questions and seeds, for one cell and for a paired comparison.

An eval cell rests on 8-16 questions per seed and a few seeds, so a one-question difference
is 6-12 points: a mean alone invites reading noise as a result. The bootstrap here resamples
at both levels the result could vary at: the seeds (another seed is another suite and
another training run) and, within each drawn seed, the questions. A comparison is *paired*:
both methods were asked the same questions of the same seed, so each resample draws one set
of question indices and takes both methods' hits on it. Differences that come from the
questions themselves (an easy suite) then cancel, and the interval is narrower than two
unpaired intervals would suggest, as it should be.

Pure Python and seeded: the same hits always give the same interval, so a report and the
test that recomputes it agree to the digit.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

RESAMPLES = 2000
LEVEL = 0.95

Hits = Sequence[bool]


@dataclass(frozen=True)
class Interval:
    mean: float
    low: float
    high: float
    seeds: int
    questions: int  # per seed (the smallest, if seeds differ)

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def points(self, sign: bool = False) -> str:
        """In points (x100): `+5.0 [-1.2, +11.3]`."""
        f = "+.1f" if sign else ".1f"
        return f"{self.mean * 100:{f}} [{self.low * 100:{f}}, {self.high * 100:{f}}]"

    def fraction(self) -> str:
        return f"{self.mean:.3f} [{self.low:.3f}, {self.high:.3f}]"


def unpack(hits: str) -> list[bool]:
    """results.json keeps hits as a string of 0/1 (one character per question)."""
    if set(hits) - {"0", "1"}:
        raise ValueError(f"hits must be a string of 0 and 1, got {hits[:20]!r}")
    return [c == "1" for c in hits]


def cell(groups: Sequence[Hits], *, resamples: int = RESAMPLES, seed: int = 0) -> Interval:
    """Mean accuracy over seeds (each seed's questions weigh equally within it) and its 95%
    interval; `groups` holds one list of per-question hits per seed."""
    return paired([list(g) for g in groups], None, resamples=resamples, seed=seed)


def paired(
    a: Sequence[Hits],
    b: Sequence[Hits] | None,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Interval:
    """Mean of a - b (b None: of a alone) over seeds and questions, with a 95% interval from
    the two-level paired bootstrap. `a[i]` and `b[i]` are the same seed's hits on the same
    questions in the same order."""
    _check(a, b)
    rng = random.Random(seed)
    # Per seed, the per-question differences: resampling questions resamples them in pairs.
    diffs = [
        [int(x) - (int(y[q]) if y is not None else 0) for q, x in enumerate(g)]
        for g, y in zip(a, b if b is not None else [None] * len(a), strict=True)
    ]
    observed = sum(sum(d) / len(d) for d in diffs) / len(diffs)
    draws = []
    for _ in range(resamples):
        seeds = rng.choices(diffs, k=len(diffs))
        draws.append(sum(sum(rng.choices(d, k=len(d))) / len(d) for d in seeds) / len(seeds))
    draws.sort()
    tail = (1 - LEVEL) / 2
    low = draws[int(tail * (resamples - 1))]
    high = draws[int((1 - tail) * (resamples - 1) + 0.5)]
    return Interval(observed, low, high, len(a), min(len(g) for g in a))


def _check(a: Sequence[Hits], b: Sequence[Hits] | None) -> None:
    if not a or any(len(g) == 0 for g in a):
        raise ValueError("an interval needs at least one seed with at least one question")
    if b is None:
        return
    if len(a) != len(b):
        raise ValueError(f"paired hits need the same seeds: {len(a)} against {len(b)}")
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if len(x) != len(y):
            raise ValueError(f"seed {i}: {len(x)} questions against {len(y)}; not paired")
