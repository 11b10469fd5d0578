"""The figures the docs quote are the figures the committed results hold.

A number typed into a README drifts from the run that made it; these tests read the tables and
the quoted figures back out of the prose and recompute each from the committed JSON, so a
re-run that changes results.json without the prose (or a typo in the prose) fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results"


def _numbers(cell: str) -> list[float]:
    return [float(x) for x in re.findall(r"\d+\.\d+", cell)]


def _table_rows(markdown: str, header_start: str) -> list[list[str]]:
    lines = markdown[markdown.index(header_start) :].splitlines()
    rows = []
    for line in lines[2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_eval_readme_table_is_recomputed_from_results_json():
    units = json.loads((RESULTS / "eval" / "results.json").read_text())["units"]
    readme = (RESULTS / "eval" / "README.md").read_text()
    rows = _table_rows(readme, "| skill (in split) |")
    assert [r[0] for r in rows] == ["facts", "json", "tools"]
    for suite, teacher, text, gated, default, retention, sft, sdft in rows:
        unit = {m: units[f"one-night/{suite}/s0/{m}"] for m in ("text", "text-gated", "default")}
        assert _numbers(teacher) == [
            pytest.approx(units[f"teacher/{suite}/s0"]["teacher_in"], abs=5e-4)
        ]
        assert _numbers(text) == [pytest.approx(unit["text"]["acc_in"], abs=5e-4)]
        assert _numbers(gated) == [pytest.approx(unit["text-gated"]["acc_in"], abs=5e-4)]
        assert _numbers(default) == [pytest.approx(unit["default"]["acc_in"], abs=5e-4)]
        assert _numbers(retention) == [
            pytest.approx(unit["text"]["retention"], abs=5e-4),
            pytest.approx(unit["default"]["retention"], abs=5e-4),
        ]
        for cell, method in ((sft, "sft"), (sdft, "sdft")):
            measured = units[f"one-night/{suite}/s0/{method}"]
            assert _numbers(cell) == [
                pytest.approx(measured["acc_in"], abs=5e-4),
                pytest.approx(measured["retention"], abs=5e-4),
            ]


def test_the_readme_quotes_the_night_kinds_run_as_measured():
    results = json.loads((RESULTS / "long_run" / "night_kinds_forgetting.json").read_text())
    drops = {kind: r["drop_points"] for kind, r in results["results"].items()}
    readme = (ROOT / "README.md").read_text()
    quoted = re.search(r"facts -(\d+\.\d) points, JSON\s+-(\d+\.\d), tools -(\d+\.\d)", readme)
    assert quoted, "the README no longer quotes the one-night-per-kind drops"
    assert [float(x) for x in quoted.groups()] == [
        round(drops[k], 1) for k in ("facts", "json", "tools")
    ]


def _long_run(name: str) -> dict:
    return json.loads((RESULTS / "long_run" / name / "results.json").read_text())


def _items_lost(night: dict) -> int:
    after = night["gate"]["after"]
    base = night["gate"]["base"] or night["gate"]["before"]
    return round((base["retention"] - after["retention"]) * after["n_retention"])


def test_the_readme_quotes_the_quick_long_runs_as_measured():
    readme = " ".join((ROOT / "README.md").read_text().split())
    old, near = _long_run("quick"), _long_run("quick_near")
    lost = re.search(r"the same first night lost (\d+) robust item of (\d+), not (\d+)", readme)
    assert lost, "the README no longer compares the first nights"
    assert [int(x) for x in lost.groups()] == [
        _items_lost(near["nights"]["1"]),
        near["nights"]["1"]["gate"]["after"]["n_retention"],
        _items_lost(old["nights"]["1"]),
    ]
    published = re.search(r"(\d) of (\d) nights published \(at most (\d\.\d) points", readme)
    summary = near["summary"]
    assert published and published.groups()[:2] == (
        str(summary["published"]),
        str(summary["nights"]),
    )
    drops = [
        100 * (n["gate"]["base"]["retention"] - n["gate"]["after"]["retention"])
        for n in near["nights"].values()
        if n["status"] == "published"
    ]
    assert float(published.group(3)) == round(max(drops), 1)
    times = re.search(r"nights 2-4: (\d+)-(\d+) s, not (\d+)-(\d+)", readme)
    assert times, "the README no longer quotes the night times"

    def span(run: dict) -> list[int]:
        seconds = [round(run["nights"][k]["seconds"]) for k in ("2", "3", "4")]
        return [min(seconds), max(seconds)]

    assert [int(x) for x in times.groups()] == span(near) + span(old)
