"""The eval's intervals: a paired two-level bootstrap, and the report section built on it."""

from __future__ import annotations

import pytest

from agent_cl.evals.intervals import cell, paired, unpack
from agent_cl.evals.report_comparisons import comparisons_section


def test_a_cell_interval_covers_its_mean_and_is_deterministic():
    half = [[q % 2 == 0 for q in range(16)] for _ in range(3)]
    interval = cell(half)
    assert interval.mean == 0.5 and interval.seeds == 3 and interval.questions == 16
    assert 0.2 < interval.low < 0.5 < interval.high < 0.8
    assert cell(half) == interval
    assert cell([[True] * 8]).fraction() == "1.000 [1.000, 1.000]"


def test_pairing_cancels_what_both_methods_share():
    # b gets the same questions right as a except one: a one-question gain, on questions whose
    # difficulty varies a lot. Unpaired, the two cells' intervals overlap widely; paired, the
    # difference interval is the single question's.
    a = [[q < 9 for q in range(16)] for _ in range(2)]
    b = [[q < 8 for q in range(16)] for _ in range(2)]
    diff = paired(a, b)
    assert diff.mean == pytest.approx(1 / 16)
    assert diff.low >= 0 and diff.high <= 0.25
    assert cell(a).high - cell(a).low > 2 * (diff.high - diff.low)
    assert paired(a, a).points(sign=True) == "+0.0 [+0.0, +0.0]"
    clear = paired([[True] * 16] * 3, [[False] * 16] * 3)
    assert clear.excludes_zero() and clear.fraction() == "1.000 [1.000, 1.000]"


def test_intervals_refuse_unpaired_or_empty_hits():
    with pytest.raises(ValueError, match="same seeds"):
        paired([[True]], [[True], [False]])
    with pytest.raises(ValueError, match="not paired"):
        paired([[True, False]], [[True]])
    with pytest.raises(ValueError, match="at least one"):
        cell([])
    with pytest.raises(ValueError, match="0 and 1"):
        unpack("10x1")
    assert unpack("101") == [True, False, True]


def _unit(method: str, seed: int, hits_in: str | None, retention: str) -> tuple[str, dict]:
    row = {"suite": "facts", "method": method, "seed": seed, "retention_hits": retention}
    if hits_in is not None:
        row["hits_in"] = hits_in
    return f"one-night/facts/s{seed}/{method}", row


def test_the_report_bolds_only_what_the_interval_supports():
    units = dict(
        [
            _unit("none", 0, "0" * 16, "1" * 32),
            _unit("none", 1, "0" * 16, "1" * 32),
            _unit("default", 0, "1" * 14 + "00", "1" * 31 + "0"),
            _unit("default", 1, "1" * 13 + "000", "1" * 32),
            _unit("text", 0, "1" * 15 + "0", "1" * 20 + "0" * 12),
            _unit("text", 1, "1" * 12 + "0000", "1" * 24 + "0" * 8),
            _unit("text-gated", 0, None, "1" * 32),  # from before per-question answers
            _unit("sft", 0, "1" * 13 + "000", "1" * 8 + "0" * 24),
            _unit("sft", 1, "1" * 14 + "00", "1" * 10 + "0" * 22),
        ]
    )
    text = "\n".join(comparisons_section(units))
    learned = next(line for line in text.splitlines() if "default − none" in line)
    assert "**+84.4 [" in learned  # (14 + 13) / 32 learned, clearly above 0
    versus_text = next(line for line in text.splitlines() if "| default − text |" in line)
    acc_in, _, retention = versus_text.split("|")[3:6]
    assert "**" not in acc_in  # 27 against 27 questions: a tie
    assert retention.strip().startswith("**+29.7")  # text memory's retention cost is clear
    gated = next(line for line in text.splitlines() if "default − text-gated" in line)
    assert gated.split("|")[3].strip() == "–"  # no per-question answers: no accuracy interval
    assert "1 one-night units were measured before" in text
    # SFT learns as much but forgets: the anchor's retention gain is clear, accuracy a tie
    assert "| facts | sft | 2 × 16 |" in text
    versus_sft = next(line for line in text.splitlines() if "| default − sft |" in line)
    acc_in, _, retention = versus_sft.split("|")[3:6]
    assert "**" not in acc_in and retention.strip().startswith("**+70.3")
