"""The figures the docs quote are the figures the committed results hold.

A number typed into a README drifts from the run that made it; these tests read the tables and
the quoted figures back out of the prose and recompute each from the committed JSON, so a
re-run that changes results.json without the prose (or a typo in the prose) fails here.
"""

from __future__ import annotations

import importlib.util
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


def test_the_eval_readme_tables_are_recomputed_from_results_json():
    from agent_cl.evals.intervals import cell
    from agent_cl.evals.report_comparisons import hits_by_seed

    units = json.loads((RESULTS / "eval" / "results.json").read_text())["units"]
    readme = (RESULTS / "eval" / "README.md").read_text()
    table = hits_by_seed(units)
    methods = ("none", "text-gated", "text", "default", "default+text", "sft", "sdft")

    def cells(suite: str, key: str) -> list[str]:
        return [cell([h[key] for h in table[(suite, m)].values()]).fraction() for m in methods]

    def size(suite: str, key: str) -> str:
        by_seed = table[(suite, "default")]
        return f"{len(by_seed)} × {min(len(h[key]) for h in by_seed.values())}"

    accuracy = _table_rows(readme, "| suite | seeds × questions | in-context teacher |")
    assert [r[0] for r in accuracy] == ["facts", "json", "tools"]
    for suite, n, teacher, *rest in accuracy:
        taught = [u["teacher_in"] for k, u in units.items() if k.startswith(f"teacher/{suite}/")]
        assert n == size(suite, "hits_in") and n.startswith("3 × ")
        assert float(teacher) == pytest.approx(sum(taught) / len(taught), abs=5e-4)
        assert rest == cells(suite, "hits_in")
    retention = _table_rows(readme, "| suite | seeds × prompts |")
    assert [r[0] for r in retention] == ["facts", "json", "tools"]
    for suite, n, *rest in retention:
        assert n == size(suite, "retention_hits") and rest == cells(suite, "retention_hits")


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


def _weakest_night(skills: dict) -> float:
    """The weakest night's held-out accuracy in one morning's scores, as `summarise` takes
    `skills_kept_min` from the last morning."""
    from agent_cl.evals.long_run import _night_accuracies

    return min(_night_accuracies(skills))


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


def test_the_readme_quotes_the_replay_run_as_measured():
    readme = " ".join((ROOT / "README.md").read_text().split())
    near, replay = _long_run("quick_near"), _long_run("quick_replay4")
    kept = re.search(r"night 1's skills ((?:\d\.\d\d(?: -> )?)+), facts after", readme)
    assert kept, "the README no longer quotes night 1's skills under replay"

    def night1(run: dict) -> list[float]:
        mornings = run["mornings"]
        return [round(mornings[m]["skills"]["by_night"]["1"]["acc"], 2) for m in sorted(mornings)]

    assert _numbers(kept.group(1)) == night1(replay)
    facts = re.search(r"facts after the last night (\d\.\d\d) against (\d\.\d\d)", readme)

    def last_facts(run: dict) -> float:
        last = run["mornings"][max(run["mornings"], key=int)]
        return round(last["skills"]["by_kind"]["facts"]["acc"], 2)

    assert facts and _numbers(" ".join(facts.groups())) == [
        last_facts(replay),
        last_facts(near),
    ]
    times = re.search(r"for nights of (\d+)-(\d+) s", readme)
    seconds = [round(n["seconds"]) for n in replay["nights"].values()]
    assert times and [int(x) for x in times.groups()] == [min(seconds), max(seconds)]
    assert all(n["replayed"] == 4 for k, n in replay["nights"].items() if k != "1")


def test_the_lever_table_is_recomputed_from_the_runs():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "long_run_levers", ROOT / "benchmarks" / "long_run_levers.py"
    )
    levers = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(levers)
    saved = json.loads((RESULTS / "long_run" / "levers.json").read_text())
    readme = (RESULTS / "long_run" / "README.md").read_text()
    rows = _table_rows(readme, "| run | published | drop vs base after each night")
    folders = {
        "sft_kl": "quick",
        "sft_kl_near": "quick_near",
        "sft_kl_near + replay 4": "quick_replay4",
    }
    assert [r[0].split("(")[-1].strip("`/) ") for r in rows] == list(folders.values())
    for (label, folder), row in zip(folders.items(), rows, strict=True):
        measured = levers.lever_row(_long_run(folder))
        assert measured == saved[label]
        published, drops, night1, facts, seconds = row[1:]
        assert published == f"{measured['published']}/{len(measured['statuses'])}"
        assert _numbers(drops) == measured["robust_drop_vs_base_pts"]
        assert _numbers(night1) == [round(x, 2) for x in measured["night1_skills_by_morning"]]
        assert _numbers(facts) == [round(measured["facts_after_last"], 2)]
        span = measured["night_seconds"]
        assert seconds == f"{min(span)}-{max(span)}"


def test_the_fresh_lora_comparison_is_quoted_as_its_runs_give_it():
    readme = (RESULTS / "long_run" / "README.md").read_text()
    rows = _table_rows(readme, "| night | continue | fresh |")
    runs = {arm: _long_run(f"fresh_vs_continue/{arm}") for arm in ("continue", "fresh")}
    assert [r[0] for r in rows] == sorted(runs["continue"]["nights"], key=int)
    for row in rows[1:]:  # night 1 is the same night in both
        for arm, cell in zip(("continue", "fresh"), row[1:], strict=True):
            night = runs[arm]["nights"][row[0]]
            after = night["gate"]["after"]
            assert cell.strip("*").startswith(night["status"]), (arm, row)
            numbers = [x for x in _numbers(cell)]
            assert round(after["retention"], 3) in numbers
            if night["status"] == "published":
                assert round(after["kl_from_base"], 4) in numbers
            else:
                assert round(night["gate"]["before"]["retention"], 3) in numbers
                assert round(after["retention_kinds"]["arithmetic"], 2) in numbers
    text = " ".join(readme.split())
    kept = re.search(
        r"skills scored ([\d. /]+) under `continue` and ([\d. /]+) under `fresh`", text
    )
    assert kept, "the skills after the last night are not quoted"
    for arm, quoted in zip(("continue", "fresh"), kept.groups(), strict=True):
        last = runs[arm]["mornings"][max(runs[arm]["mornings"], key=int)]["skills"]["by_night"]
        assert _numbers(quoted) == [round(last[k]["acc"], 2) for k in sorted(last, key=int)]
    saved = json.loads((RESULTS / "long_run" / "fresh_vs_continue" / "levers.json").read_text())
    assert saved["continue"]["statuses"] == [
        n["status"]
        for _, n in sorted(runs["continue"]["nights"].items(), key=lambda kv: int(kv[0]))
    ]


@pytest.mark.parametrize(
    ("folder", "heading"),
    [
        ("quick_replay16", "## The quick run on today's defaults"),
        ("quick_defaults", "## The quick run on replay 4, the default until"),
    ],
)
def test_the_quick_run_on_the_defaults_is_quoted_as_it_ran(folder: str, heading: str):
    from agent_cl.evals.long_run import final_line

    readme = (RESULTS / "long_run" / "README.md").read_text()
    run = _long_run(folder)
    section = readme[readme.index(heading) :]
    assert f"`{final_line(run['summary'])}`" in section
    rows = _table_rows(section, "| night | claimed | steps | seconds (train) |")
    assert [r[0] for r in rows] == sorted(run["nights"], key=int)
    for key, claimed, steps, seconds, gate, _, robust, kl in rows:
        night = run["nights"][key]
        assert [int(claimed), int(steps)] == [night["demonstrations"], night["steps"]]
        assert seconds == f"{round(night['seconds'])} ({round(night['train_seconds'])})"
        assert gate.startswith(night["status"])
        after = night["gate"]["after"]
        assert [float(robust), float(kl)] == [
            round(after["retention"], 3),
            round(after["kl_from_base"], 4),
        ]
    text = " ".join(section.split())
    last = run["mornings"][max(run["mornings"], key=int)]["skills"]["by_night"]
    kept = re.search(r"After the last night: ([\d. /*]+) for nights", text)
    assert kept and _numbers(kept.group(1)) == [
        round(last[k]["acc"], 2) for k in sorted(last, key=int)
    ]


def test_the_replay16_quick_run_is_compared_with_replay_4_as_they_ran():
    readme = (RESULTS / "long_run" / "README.md").read_text()
    start = readme.index("## The quick run on today's defaults")
    text = " ".join(readme[start : readme.index("\n## ", start + 5)].split())
    new, old = _long_run("quick_replay16"), _long_run("quick_defaults")
    assert (new["night_plan"]["replay"], old["night_plan"]["replay"]) == (16, 4)

    def every_task(run: dict) -> dict:  # quick_defaults ran before `taught`: it has no split
        last = run["mornings"][max(run["mornings"], key=int)]
        return last.get("skills_all_tasks") or last["skills"]

    nights = [
        " / ".join(f"{v['acc']:.2f}" for _, v in sorted(every_task(r)["by_night"].items()))
        for r in (new, old)
    ]
    assert f"every task asked: {nights[0]} against replay 4's {nights[1]}" in text
    facts = [every_task(r)["by_kind"]["facts"] for r in (new, old)]
    assert f"facts {facts[0]['acc']:.2f} of {facts[0]['n']} held-out phrasings" in text
    assert f"against {facts[1]['acc']:.2f}, robust" in text
    assert f"took {new['summary']['run_s'] / 60:.1f} minutes (`run_s`)" in text
    assert [n["status"] for n in new["nights"].values()].count("rejected") == 1


def _replay_comparison_is_quoted(section: str, header: str, runs: list[dict]) -> None:
    """A long-run README section comparing two runs night by night (replayed, steps, gate,
    robust retention), then each night's skills after the last night ("nights 1-4 scored A
    (label: B)", the second run first)."""
    readme = (RESULTS / "long_run" / "README.md").read_text()
    rows = _table_rows(readme, header)
    assert [r[0] for r in rows] == sorted(runs[0]["nights"], key=int)
    for key, *cells in rows:
        for run, cell in zip(runs, cells, strict=True):
            night = run["nights"][key]
            replayed, steps, gate, robust = (c.strip().strip("*") for c in cell.split(","))
            assert [int(replayed), int(steps), gate] == [
                night["replayed"],
                night["steps"],
                night["status"],
            ]
            assert float(robust) == round(night["gate"]["after"]["retention"], 3)
    text = " ".join(readme[readme.index(section) :].split())
    kept = re.search(r"nights 1-4 scored ([\d. /]+) \([^:]+: ([\d. /]+)\)", text)
    assert kept, "the skills after the last night are not quoted"
    for run, quoted in zip(reversed(runs), kept.groups(), strict=True):
        last = run["mornings"][max(run["mornings"], key=int)]["skills"]["by_night"]
        assert _numbers(quoted) == [round(last[k]["acc"], 2) for k in sorted(last, key=int)]


def test_the_replay_budget_comparison_is_quoted_as_its_runs_give_it():
    runs = [_long_run("quick_defaults"), _long_run("quick_replay8")]
    assert [r["night_plan"]["replay"] for r in runs] == [4, 8]
    _replay_comparison_is_quoted(
        "## Replay 8 against replay 4",
        "| night | replay 4 (default): replayed, steps, gate, robust |",
        runs,
    )


def test_the_newest_night_replay_comparison_is_quoted_as_its_runs_give_it():
    runs = [_long_run("quick_defaults"), _long_run("quick_replay_recent")]
    assert [r["night_plan"].get("replay_recent", 0.0) for r in runs] == [0.0, 0.5]
    _replay_comparison_is_quoted(
        "## Replay half from the newest night",
        "| night | uniform (default): replayed, steps, gate, robust |",
        runs,
    )
    summary = runs[1]["summary"]
    readme = " ".join((RESULTS / "long_run" / "README.md").read_text().split())
    assert f"took {summary['run_s'] / 60:.1f} minutes (`run_s`" in readme
    assert f"`skills_kept_min` {summary['skills_kept_min']:.2f} against" in readme


def test_the_night_sizes_are_quoted_as_measured():
    readme = (RESULTS / "long_run" / "README.md").read_text()
    rows = json.loads((RESULTS / "night_size.json").read_text())["rows"]
    table = _table_rows(readme, "| demonstrations | steps | night s (training) |")
    assert [int(r[0]) for r in table] == [row["size"] for row in rows]
    for cells, row in zip(table, rows, strict=True):
        assert row["claimed"] == row["size"]  # nothing left pending at these sizes
        assert cells[1:] == [
            str(row["steps"]),
            f"{round(row['night_seconds'])} ({round(row['train_seconds'])})",
            f"{row['night_seconds_per_claimed']:.1f}",
            f"{row['heldout_acc']:.3f}",
            f"{row['robust_drop_points']:.2f}",
            f"{row['full_drop_points']:.2f}",
            row["status"],
        ]


def test_the_eval_readme_sequential_table_is_the_reports():
    from agent_cl.evals.report import _sequential_section

    data = json.loads((RESULTS / "eval" / "results.json").read_text())
    readme = (RESULTS / "eval" / "README.md").read_text()
    header = "| method | night | trained on |"
    quoted = [" | ".join(r) for r in _table_rows(readme, header)]
    computed = _table_rows("\n".join(_sequential_section(data["units"], data["plan"])), header)
    assert quoted and quoted == [" | ".join(r) for r in computed]


def test_the_eval_readme_scaling_table_is_the_reports():
    from agent_cl.evals.report import _scaling_section

    data = json.loads((RESULTS / "eval" / "results.json").read_text())
    readme = (RESULTS / "eval" / "README.md").read_text()
    header = "| demonstrations | n | weights acc in |"
    quoted = _table_rows(readme, header)
    computed = _table_rows("\n".join(_scaling_section(data["units"], data["plan"])), header)
    assert quoted and quoted == computed
    assert [row[1] for row in quoted] == ["3", "3", "3"]  # three seeds at every size
    assert (RESULTS / "eval" / "scaling.png").is_file()


def test_the_eval_readme_quotes_the_paired_intervals_as_computed():
    from agent_cl.evals.report_comparisons import comparison, hits_by_seed

    units = json.loads((RESULTS / "eval" / "results.json").read_text())["units"]
    readme = " ".join((RESULTS / "eval" / "README.md").read_text().split())
    table = hits_by_seed(units)
    number = r"([+-]\d+\.\d)"
    one = rf"{number} \[{number}, {number}\]"
    quotes = re.findall(
        rf"(Accuracy|Retention): (\S+) − (\S+) {one} \(facts\), {one} \(json\),? "
        rf"(?:and )?{one} \(tools\)",
        readme,
    )
    quoted = {(measure, a, b) for measure, a, b, *_ in quotes}
    assert quoted >= {
        ("Accuracy", "default", "none"),
        ("Accuracy", "default", "text-gated"),
        ("Accuracy", "default", "text"),
        ("Retention", "default", "text-gated"),
        ("Retention", "default", "text"),
        ("Retention", "default", "sft"),
        ("Accuracy", "default", "sdft"),
        ("Retention", "default", "sdft"),
    }, "the README no longer quotes the comparisons it rests on"
    keys = {"Accuracy": "hits_in", "Retention": "retention_hits"}

    def in_points(interval) -> list[float]:
        return [round(v * 100, 1) for v in (interval.mean, interval.low, interval.high)]

    for measure, a, b, *figures in quotes:
        for i, suite in enumerate(("facts", "json", "tools")):
            interval = comparison(table, suite, a, b, keys[measure])
            assert [float(x) for x in figures[3 * i : 3 * i + 3]] == in_points(interval), (
                measure,
                a,
                b,
                suite,
            )
    # the top README's one-line summary quotes the facts retention cost against the cut
    cost = comparison(table, "facts", "default", "text-gated", "retention_hits")
    assert f"that the cut does not ({cost.points(sign=True)})" in " ".join(
        (ROOT / "README.md").read_text().split()
    )
    # SDFT against plain SFT, retention, in the order facts, json, tools
    gained = [
        comparison(table, x, "sdft", "sft", "retention_hits") for x in ("facts", "json", "tools")
    ]
    assert (
        "sdft − sft "
        + ", ".join(f"{i.mean * 100:+.1f}" for i in gained[:2])
        + (f" and {gained[2].mean * 100:+.1f} points of retention")
        in readme
    )
    kl = [
        u["kl_from_base"]
        for k, u in units.items()
        if k.startswith("one-night/") and k.endswith("/sdft")
    ]
    assert f"KL from base {min(kl):.3f}-{max(kl):.3f}" in readme
    two_facts = re.search(rf"facts out of distribution: default − sft {one}", readme)
    assert two_facts, "the README no longer quotes the two-fact questions against SFT"
    interval = comparison(table, "facts", "default", "sft", "hits_out")
    assert [float(x) for x in two_facts.groups()] == in_points(interval)


def test_the_gate_threshold_is_quoted_as_its_runs_give_it():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "gate_threshold", ROOT / "benchmarks" / "gate_threshold.py"
    )
    gate_threshold = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gate_threshold)
    saved = json.loads((RESULTS / "gate_threshold.json").read_text())
    runs = gate_threshold.drops(
        json.loads((RESULTS / "frontier_varied.json").read_text()), saved["label"]
    )
    assert runs == saved["per_run"]
    summary = gate_threshold.summary(runs)
    assert {k: saved[k] for k in summary} == summary
    text = " ".join((RESULTS / "consolidation.md").read_text().split())
    quoted = re.search(
        r"Robust drops ([\d., ]+) points: mean (\d\.\d\d), sample sd (\d\.\d\d), "
        r"mean \+ 2 sd = \*\*(\d\.\d\d) points, (within|above) the 3-point gate\*\*; "
        r"worst (\d\.\d\d)",
        text,
    )
    assert quoted, "consolidation.md no longer quotes the re-derived threshold"
    assert _numbers(quoted.group(1)) == [round(r["drop_points"], 2) for r in runs]
    assert [float(quoted.group(i)) for i in (2, 3, 4, 6)] == [
        round(summary[k], 2) for k in ("mean_drop", "sd_drop", "mean_plus_2sd", "worst_drop")
    ]
    assert quoted.group(5) == ("within" if summary["mean_plus_2sd"] <= 3 else "above")
    assert f"{summary['runs']} of the 6 runs so far" in text or summary["runs"] >= 6


def _benchmark(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_exchange_anchor_comparison_is_quoted_as_its_runs_give_it():
    frontier = json.loads((RESULTS / "frontier_varied.json").read_text())
    a, b = "sft_kl_near + exchange anchor", "sft_kl_near (default)"
    compared = _benchmark("paired_runs").compare(frontier, a, b)
    assert compared == json.loads((RESULTS / "anchor_exchange.json").read_text())
    thresholds = _benchmark("gate_threshold")
    summary = thresholds.summary(thresholds.drops(frontier, a))
    text = " ".join((RESULTS / "consolidation.md").read_text().split())
    quoted = re.search(
        r"Exchange drops ([\d., ]+) points \(mean (\d\.\d\d), sd (\d\.\d\d), mean \+ 2 sd "
        r"(\d\.\d\d), worst (\d\.\d\d); (\d) of 6 over 3 points\); learned ([\d., ]+)\. .*?"
        r"exchange - default \*\*([+-]\d\.\d\d) points \[([+-]\d\.\d\d), ([+-]\d\.\d\d)\]\*\*, "
        r"learned ([+-]\d\.\d\d\d) \(lower in (\d) of 6\)",
        text,
    )
    assert quoted, "consolidation.md no longer quotes the exchange anchor comparison"
    runs = thresholds.drops(frontier, a)
    assert _numbers(quoted.group(1)) == [round(r["drop_points"], 2) for r in runs]
    assert [float(quoted.group(i)) for i in (2, 3, 4, 5)] == [
        round(summary[k], 2) for k in ("mean_drop", "sd_drop", "mean_plus_2sd", "worst_drop")
    ]
    assert int(quoted.group(6)) == sum(r["drop_points"] > 3 for r in runs)
    assert _numbers(quoted.group(7)) == [round(r["new_skill_acc"], 3) for r in runs]
    assert [float(quoted.group(i)) for i in (8, 9, 10)] == compared["retention_a_minus_b_points"]
    assert float(quoted.group(11)) == round(compared["learned_a_minus_b"], 3)
    assert int(quoted.group(12)) == compared["learned_lower_in"]

    def failures(label: str, kind: str) -> int:
        return sum(
            key.startswith(f"{kind}:")
            for r in frontier["runs"]
            if r["label"] == label
            for key in r["retention_failures"]
        )

    moved = re.search(
        r"arithmetic failures over the six runs (\d+) -> (\d+), capitals (\d+) -> (\d+)", text
    )
    assert moved and [int(g) for g in moved.groups()] == [
        failures(b, "arithmetic"),
        failures(a, "arithmetic"),
        failures(b, "capitals"),
        failures(a, "capitals"),
    ]


def _lever_table_runs(markdown: str, folder: str) -> dict[str, dict]:
    """Checks the first lever table in `markdown` against `folder`'s levers.json and the
    runs' results.json (recomputed); returns the runs by name."""
    levers = _benchmark("long_run_levers")
    saved = json.loads((RESULTS / "long_run" / folder / "levers.json").read_text())
    rows = _table_rows(markdown, "| run | lever | published | robust drop vs base after each")
    assert [r[0] for r in rows] == list(saved)
    runs = {name: _long_run(f"{folder}/{name}") for name in saved}
    for row in rows:
        measured = levers.lever_row(runs[row[0]])
        assert measured == saved[row[0]]
        published, drops, night1, kept, facts = row[2:]
        assert published == f"{measured['published']}/{len(measured['statuses'])}"
        assert _numbers(drops) == measured["robust_drop_vs_base_pts"]
        assert _numbers(night1) == [round(x, 2) for x in measured["night1_skills_by_morning"]]
        assert _numbers(kept) == [round(measured["skills_kept_min"], 2)]
        assert _numbers(facts) == [round(measured["facts_after_last"], 2)]
    return runs


def test_the_gpu_lever_table_is_recomputed_from_its_runs():
    readme = (RESULTS / "long_run" / "README.md").read_text()
    runs = _lever_table_runs(readme, "gpu_levers")
    # the levers each run says it ran (adapter_max_rank is not in night_plan)
    plans = {name: run["night_plan"] for name, run in runs.items()}
    assert plans["fresh16"]["lora_per_night"] == plans["fresh32"]["lora_per_night"] == "fresh"
    assert (plans["replay0"]["replay"], plans["replay8"]["replay"]) == (0, 8)
    assert plans["recent05"]["replay_recent"] == 0.5 and plans["sft_kl"]["method"] == "sft_kl"
    assert (plans["continue"]["seed"], plans["continue_seed1"]["seed"]) == (0, 1)
    # night 1 is one computation in six runs: the spread quoted is the GPU's alone
    same = ("continue", "fresh16", "fresh32", "replay0", "replay8", "recent05")
    first = [runs[name]["nights"]["1"] for name in same]
    assert {n["demonstrations"] for n in first} == {5} and {n["replayed"] for n in first} == {0}
    quoted = " ".join(readme.split())
    after = ", ".join(f"{n['gate']['after']['retention']:.3f}" for n in first)
    assert f"the gate measured {after} for those six" in quoted
    lost = sorted(_items_lost(n) for n in first)
    assert f"({lost[0]}-{lost[-1]} items lost" in quoted
    assert sum(n["status"] == "rejected" for n in first) == 4  # "rejected four of them"
    nights = [n for run in runs.values() for n in run["nights"].values()]
    published = sum(n["status"] == "published" for n in nights)
    assert f"published {published} of {len(nights)} nights" in quoted
    cpu_first = {
        _long_run(name)["nights"]["1"]["gate"]["after"]["retention"]
        for name in (
            "quick_defaults",
            "quick_near",
            "quick_replay4",
            "quick_replay8",
            "quick_replay_recent",
            "fresh_vs_continue/continue",
            "fresh_vs_continue/fresh",
        )
    }
    assert cpu_first == {1 - 1 / 128}  # "0.992 (1 item lost) ... in all seven CPU runs"
    main = " ".join((ROOT / "README.md").read_text().split())
    assert f"lose {lost[0]}-{lost[-1]} robust items of 128" in main
    assert f"gate published {published} of {len(nights)} nights" in main


def test_the_fp32_gpu_levers_are_quoted_as_their_runs_give_them():
    readme = (RESULTS / "long_run" / "README.md").read_text()
    section = readme[readme.index("## fp32 on the GPU") :]
    runs = _lever_table_runs(section, "gpu_levers_fp32")
    nights = [n for run in runs.values() for n in run["nights"].values()]
    assert {tuple(n["trained_on"]) for n in nights} == {("cuda", "float32")}
    text = " ".join(section[: section.index("\n## ", 3)].split())
    # night 1 of the three seed-0 runs: the CPU's retention and KL, in fp32 on the GPU
    first = [
        runs[name]["nights"]["1"]["gate"]["after"] for name in ("continue", "replay8", "fresh32")
    ]
    assert {round(a["retention"], 3) for a in first} == {0.992}
    assert {round(a["kl_from_base"], 4) for a in first} == {0.0061}
    assert "scored 0.992 robust retention with KL 0.0061 in fp32" in text
    for name in ("replay8", "fresh32"):
        second = runs[name]["nights"]["2"]
        assert second["status"] == "rejected"
        assert round(second["gate"]["after"]["retention"], 3) == 0.922
    published = sum(n["status"] == "published" for n in nights)
    assert f"The gate published {published} of {len(nights)} fp32 nights" in text
    # the one SVD fold
    folds = [
        (k, n)
        for k, n in runs["fresh32"]["nights"].items()
        if (n["fold"] or {}).get("fold") == "svd"
    ]
    assert [k for k, _ in folds] == ["6"] and folds[0][1]["status"] == "published"
    assert f"KL from base {folds[0][1]['gate']['after']['kl_from_base']:.4f}" in text

    # the weakest night after the fourth and after the last morning
    def kept_after(run: dict, morning: str) -> float:
        return _weakest_night(run["mornings"][morning]["skills"])

    fourth = " ".join(
        f"{kept_after(runs[n], '4'):.2f} ({label})"
        for n, label in (("continue", "`continue`"), ("continue_seed1", "seed 1"))
    )
    assert f"kept {fourth}" in text.replace(", ", " ")
    last = sorted(round(kept_after(r, max(r["mornings"], key=int)), 2) for r in runs.values())
    assert f"({' / '.join(f'{x:.2f}' for x in last)})" in text
    main = " ".join((ROOT / "README.md").read_text().split())
    assert (
        f"gate published {published} of {len(nights)} nights, so training now runs in fp32" in main
    )


def test_the_replay_coverage_arms_are_quoted_as_their_runs_give_them():
    readme = (RESULTS / "long_run" / "README.md").read_text()
    section = readme[readme.index("## Replay coverage on the GPU") :]
    runs = _lever_table_runs(section, "gpu_replay_coverage")
    plans = {name: run["night_plan"] for name, run in runs.items()}
    assert [plans[n]["replay"] for n in ("replay16", "replay16_seed1", "replay64")] == [16, 16, 64]
    assert (plans["recent10"]["replay"], plans["recent10"]["replay_recent"]) == (8, 1.0)
    assert plans["replay16_seed1"]["seed"] == 1
    nights = [n for run in runs.values() for n in run["nights"].values()]
    assert {tuple(n["trained_on"]) for n in nights} == {("cuda", "float32")}
    assert [n["replayed"] for n in runs["replay64"]["nights"].values()][3:] == [16, 21, 26]
    text = " ".join(section[: section.index("\n## ", 3)].split())
    # replay 16 against the default (replay 4) of the fp32 runs, seed by seed
    fp32 = json.loads((RESULTS / "long_run" / "gpu_levers_fp32" / "levers.json").read_text())
    ours = json.loads((RESULTS / "long_run" / "gpu_replay_coverage" / "levers.json").read_text())
    for new, old, label in (("replay16", "continue", "seed 0"), ("replay16_seed1",
                            "continue_seed1", "seed 1")):  # fmt: skip
        kept = f"{ours[new]['skills_kept_min']:.2f} against {fp32[old]['skills_kept_min']:.2f}"
        assert f"{kept} ({label})" in text
        facts = f"{ours[new]['facts_after_last']:.2f} against {fp32[old]['facts_after_last']:.2f}"
        assert facts in text
    assert ours["replay64"]["skills_kept_min"] > max(
        ours[n]["skills_kept_min"] for n in ("replay16", "replay16_seed1", "recent10")
    )


def test_the_rank_16_arms_are_quoted_against_their_rank_8_twins():
    readme = (RESULTS / "long_run" / "README.md").read_text()
    section = readme[readme.index("## LoRA rank 16 on the GPU") :]
    runs = _lever_table_runs(section, "gpu_rank16")
    twins = {"rank16": "replay16", "rank16_seed1": "replay16_seed1", "rank16_replay64": "replay64"}
    rank8 = {name: _long_run(f"gpu_replay_coverage/{twin}") for name, twin in twins.items()}
    for name, run in runs.items():  # the same plan but the rank
        plan, twin_plan = run["night_plan"], rank8[name]["night_plan"]
        assert plan["lora_rank"] == 16 and twin_plan.get("lora_rank", 8) == 8
        assert {k: v for k, v in plan.items() if k != "lora_rank"} == twin_plan
    text = " ".join(section[: section.index("\n## ", 3)].split())

    def rejected(arms: dict) -> list[float]:
        return sorted(
            n["gate"]["after"]["retention"]
            for run in arms.values()
            for n in run["nights"].values()
            if n["status"] == "rejected"
        )

    def published(arms: dict) -> str:
        nights = [n for run in arms.values() for n in run["nights"].values()]
        return f"{sum(n['status'] == 'published' for n in nights)} of {len(nights)}"

    r16, r8 = rejected(runs), rejected(rank8)
    assert f"fell to {r16[0]:.3f}-{r16[-1]:.3f} robust" in text
    assert f"(rank 8: {r8[0]:.3f}-{r8[-1]:.3f})" in text
    assert f"published {published(runs)} rank-16 nights" in text
    assert f"against {published(rank8)} for the same three arms at rank 8" in text

    levers = _benchmark("long_run_levers")

    def sixth(arms: dict, key: str) -> str:
        names = ("rank16", "rank16_seed1", "rank16_replay64")
        return " / ".join(f"{levers.lever_row(arms[n])[key]:.2f}" for n in names)

    for key, label in (("skills_kept_min", "weakest night stood at"), ("facts_after_last",
                       "facts at")):  # fmt: skip
        assert f"{label} {sixth(runs, key)} (rank 8: {sixth(rank8, key)})" in text
    morning_after = [
        run["mornings"]["1"]["skills"]["by_night"]["1"]["acc"]
        for run in (runs["rank16"], rank8["rank16"])
    ]
    assert f"{morning_after[0]:.2f} of night 1's skills the morning after, against " in text
    assert f"against {morning_after[1]:.2f} at rank 8" in text
    night_file = RESULTS / "long_run" / "gpu_rank16" / "night_size_128_r16.json"
    (night,) = json.loads(night_file.read_text())["rows"]
    assert night["status"] == "rejected" and night["claimed"] == 128
    assert "robust retention 1.000 -> 0.968" in night["gate_reason"]
    assert "robust retention 1.000 -> 0.968, 3.2 points" in text


def test_the_128_demonstration_night_is_quoted_as_measured():
    readme = (RESULTS / "long_run" / "README.md").read_text()
    section = readme[readme.index("## One night of 128 demonstrations") :]
    runs = [
        json.loads((RESULTS / "long_run" / path).read_text())["rows"]
        for path in ("gpu_replay_coverage/night_size_128.json", "night_size_128_cpu.json")
    ]
    table = _table_rows(section, "| machine | demonstrations | steps |")
    assert [r[0] for r in table] == ["H200, shared", "2 CPU cores"]
    for cells, (row,) in zip(table, runs, strict=True):
        kl = row["gate_reason"].rsplit("KL from base ", 1)[1]
        assert cells[1:] == [
            str(row["size"]),
            str(row["steps"]),
            f"{round(row['night_seconds'])} ({round(row['train_seconds'])})",
            f"{row['heldout_acc']:.3f}",
            f"{row['robust_drop_points']:.2f}",
            f"{row['full_drop_points']:.2f}",
            kl,
            row["status"],
        ]
        assert row["claimed"] == 128 and row["heldout_acc"] < 0.7  # the bar it misses, quoted
    learned = sorted(f"{row['heldout_acc']:.3f}" for (row,) in runs)
    text = " ".join(section.split())
    assert f"the night learned {learned[0]}-{learned[1]}**" in text
    (cpu,) = runs[1]
    assert (
        f"took {cpu['night_seconds'] / 60:.0f} minutes** ({cpu['seconds_per_step']:.2f} s a step"
        in text
    )


def test_the_replay_forgetting_table_is_its_transitions():
    """The table is the pooled count of the committed transitions; the quotes follow them."""
    data = json.loads((RESULTS / "long_run" / "replay_forgetting.json").read_text())
    rows = [row for run in data["runs"].values() for row in run["transitions"]]
    assert _benchmark("replay_forgetting").summarise(rows) == data["pooled"]
    readme = (RESULTS / "long_run" / "README.md").read_text()
    table = _table_rows(readme, "| kind | replayed that night: kept / lost |")
    for kind, replayed, not_replayed in table:
        for cell, drawn in ((replayed, "replayed"), (not_replayed, "not replayed")):
            counts = data["pooled"][f"{kind}/{drawn}"]
            assert cell == f"{counts['kept']} / {counts['lost']}"
    lost = [r for r in rows if not r["kept"]]
    assert {r["kind"] for r in lost} == {"facts"} and not any(r["replayed"] for r in lost)
    assert sorted(data["runs"]) == ["quick_defaults", "quick_replay8", "quick_replay_recent"]


def test_the_full_run_so_far_is_quoted_as_it_ran():
    """The 20-night run is committed night by night as it goes: the README's table and line are
    recomputed from its results.json."""
    from agent_cl.evals.long_run import final_line, summarise

    run = _long_run("full")
    nights, mornings = run["nights"], run["mornings"]
    assert run["sizing"]["nights"] == 20 and run["sizing"]["demos_per_night"] == 24
    readme = (RESULTS / "long_run" / "README.md").read_text()
    rows = _table_rows(readme, "| night | claimed | replayed | steps | night s | gate |")
    assert [r[0] for r in rows] == sorted(mornings, key=int)
    for key, claimed, replayed, steps, seconds, gate, own, first, facts, drop, kl in rows:
        night, morning = nights[key], mornings[key]
        skills = morning["skills"]
        assert [int(claimed), int(replayed), int(steps)] == [
            night["demonstrations"],
            night["replayed"],
            night["steps"],
        ]
        assert int(seconds) == round(night["seconds"]) and gate == night["status"]
        assert float(own) == round(skills["by_night"][key]["acc"], 2)
        assert float(first) == round(skills["by_night"]["1"]["acc"], 2)
        assert float(facts) == round(skills["by_kind"]["facts"]["acc"], 2)
        robust = morning["base"]["robust"] - morning["retention"]["robust"]
        assert float(drop) == round(100 * robust, 1)
        assert float(kl) == round(morning["kl_from_base"], 4)
    assert f"`{final_line(summarise(run))}`" in readme


def test_the_readme_quotes_the_full_run_at_its_sixth_morning():
    run = _long_run("full")
    sixth = run["mornings"]["6"]
    kinds = sixth["skills"]["by_kind"]
    main = " ".join((ROOT / "README.md").read_text().split())
    drop = 100 * (sixth["base"]["robust"] - sixth["retention"]["robust"])
    published = sum(run["nights"][str(n)]["status"] == "published" for n in range(1, 7))
    assert (
        f"after 6 nights, {published} published, robust retention {drop:.1f} points under the "
        f"base, tool calls {kinds['tools']['acc']:.2f} and JSON formats "
        f"{kinds['json']['acc']:.2f}" in main
    )
    first = run["mornings"]["1"]["skills"]["by_kind"]["facts"]["acc"]
    assert f"facts {kinds['facts']['acc']:.2f} ({first:.2f} after night 1)" in main
    kept = _weakest_night(sixth["skills"])
    assert f"the weakest night's skills {kept:.2f}" in main
    memory = run["mornings"]["4"]["agent_retrieval"]["by_kind"]["facts"]["acc"]
    assert f"retrieval answered {memory:.2f} of the facts there (morning 4)" in main


def test_the_full_runs_last_morning_is_quoted_as_measured():
    run = _long_run("full")
    last = run["mornings"]["20"]
    text = " ".join((RESULTS / "long_run" / "README.md").read_text().split())

    def kinds(scores: dict) -> str:
        by_kind = scores["by_kind"]
        return (
            f"{scores['acc']:.2f} (facts {by_kind['facts']['acc']:.2f}, JSON "
            f"{by_kind['json']['acc']:.2f}, tools {by_kind['tools']['acc']:.2f})"
        )

    assert (
        f"the agent's retrieval {kinds(last['agent_retrieval'])}, the base with top-2 retrieval "
        f"{kinds(last['text_memory'])}" in text
    )
    weights = last["skills"]
    assert f"the weights {weights['acc']:.2f} of everything (facts" in text
    first = [run["mornings"][str(k)]["skills"]["by_night"]["1"]["acc"] for k in range(2, 21)]
    assert f"Night 1's skills held {min(first):.2f}-{max(first):.2f} from morning 2" in text
    after = [run["mornings"][k]["skills"]["by_night"][k]["acc"] for k in run["nights"]]
    reached = sum(a >= 0.8 - 1e-9 for a in after)
    assert f"{reached} of 20 nights reached it" in text
    assert f"and {_weakest_night(weights):.2f} after morning 20" in text
    assert f"{run['summary']['run_s'] / 3600:.1f} hours of run time" in text


def test_the_full_runs_eighth_morning_is_quoted_as_measured():
    mornings = _long_run("full")["mornings"]
    eighth = mornings["8"]
    text = " ".join((RESULTS / "long_run" / "README.md").read_text().split())

    def kinds(scores: dict) -> str:
        return ", ".join(f"{scores['by_kind'][k]['acc']:.2f}" for k in ("json", "tools", "facts"))

    weights = eighth["skills"]["by_kind"]
    assert (
        f"weights JSON {weights['json']['acc']:.2f}, tools {weights['tools']['acc']:.2f}, "
        f"facts {weights['facts']['acc']:.2f}; the agent's retrieval "
        f"{kinds(eighth['agent_retrieval'])}; the base with top-2 retrieval "
        f"{kinds(eighth['text_memory'])}" in text
    )
    kept = _weakest_night(eighth["skills"])
    assert "0.37 after morning 8" in text and round(kept, 2) == 0.37
    eleventh = mornings["11"]["skills"]
    kept = _weakest_night(eleventh)
    facts = eleventh["by_kind"]["facts"]["acc"]
    assert (
        f"{kept:.2f} after morning 11, when the weights answered {facts:.2f} of the facts" in text
    )


def test_the_full_runs_rejections_are_quoted_as_the_gate_gave_them():
    run = _long_run("full")
    text = " ".join((RESULTS / "long_run" / "README.md").read_text().split())
    rejected = [k for k, n in run["nights"].items() if n["status"] == "rejected"]
    assert rejected == ["3", "9", "12", "14"]  # a new rejection is quoted before it is committed
    for key in ("12", "14"):
        gate = run["nights"][key]["gate"]
        points = 100 * (gate["base"]["retention"] - gate["after"]["retention"])
        under_replaced = 100 * (gate["before"]["retention"] - gate["after"]["retention"])
        assert (
            f"rejected at {points:.1f} points, {under_replaced:.1f} under the version it would "
            "have replaced" in text
        )
    for key in rejected:
        night = run["nights"][key]
        gate = night["gate"]
        points = 100 * (gate["base"]["retention"] - gate["after"]["retention"])
        assert f"ight {key} was rejected at {points:.1f} points" in text
    kls = [m["kl_from_base"] for m in run["mornings"].values()]
    assert f"KL from the base stayed {min(kls):.3f}-{max(kls):.3f}" in text


def test_the_fewshot_formats_are_quoted_as_measured():
    doc = (RESULTS / "tools.md").read_text()
    section = doc[doc.index("## Through the app's own memory") :]
    section = section[: section.index("\n## ", 3)]
    runs = [
        json.loads((RESULTS / name).read_text())
        for name in ("fewshot_tools.json", "fewshot_tools_long_run.json")
    ]
    table = _table_rows(section, "| served weights and store | none |")
    assert len(table) == len(runs) == 2
    for cells, run in zip(table, runs, strict=True):
        rows = run["rows"]
        for cell, fmt in zip(cells[1:], ("none", "prose", "run"), strict=True):
            row = rows[fmt]
            assert cell.strip("*") == f"{row['called']} / {row['n']}"
            assert sum(row["per_lab"]) == row["called"] and len(row["per_lab"]) == row["n"]
        # the three formats asked the same labs and retrieved alike
        assert rows["prose"]["shots"] == rows["run"]["shots"] and set(rows["none"]["shots"]) == {0}
    text = " ".join(section.split())
    base = runs[0]["rows"]["run"]
    by_shots = {
        n: (
            sum(c for c, s in zip(base["per_lab"], base["shots"], strict=True) if s == n),
            base["shots"].count(n),
        )
        for n in (2, 1, 0)
    }
    assert (
        f"{by_shots[2][0]} of {by_shots[2][1]} such labs called the tool, "
        f"{by_shots[1][0]} of {by_shots[1][1]} with one episode" in text
    )
    assert f"{by_shots[0][0]} of {by_shots[0][1]} with none" in text
    # what the 20-night run's days and mornings measured, quoted in the section's first lines
    full = _long_run("full")
    days = [full["days"][str(d)]["tasks"]["tools/new"] for d in range(8, 15)]
    assert {d["served_solved"] for d in days} == {0} and {d["asked"] for d in days} == {6}
    tools = [full["mornings"][str(m)]["skills"]["by_kind"]["tools"]["acc"] for m in range(8, 15)]
    assert f"measured {min(tools):.2f}-{max(tools):.2f}" in text


def test_the_readme_quotes_the_full_run_at_its_last_committed_morning():
    run = _long_run("full")
    last = max(run["mornings"], key=int)
    morning = run["mornings"][last]
    kinds = morning["skills"]["by_kind"]
    published = sum(n["status"] == "published" for n in run["nights"].values())
    drop = 100 * (morning["base"]["robust"] - morning["retention"]["robust"])
    rejected = [k for k, n in run["nights"].items() if n["status"] == "rejected"]
    gate = run["nights"][rejected[-1]]["gate"]
    worst = 100 * (gate["base"]["retention"] - gate["after"]["retention"])
    main = " ".join((ROOT / "README.md").read_text().split())
    assert (
        f"After {last} nights, {published} published, robust retention {drop:.1f} points under "
        f"the base, tool calls {kinds['tools']['acc']:.2f} and JSON formats "
        f"{kinds['json']['acc']:.2f} from the weights, facts {kinds['facts']['acc']:.2f}, the "
        f"weakest night {_weakest_night(morning['skills']):.2f}; the gate rejected nights "
        f"{', '.join(rejected[:-1])} and {rejected[-1]} (the last at {worst:.1f} points" in main
    )


def test_the_quick_run_on_todays_code_reproduces_the_replay16_line():
    before, now = _long_run("quick_replay16"), _long_run("quick_fewshot")
    text = " ".join((RESULTS / "long_run" / "README.md").read_text().split())
    timing = {"max_night_s", "run_s", "kl_from_base"}
    assert {k: v for k, v in now["summary"].items() if k not in timing} == {
        k: v for k, v in before["summary"].items() if k not in timing
    }
    assert f"`max_night_s` ({now['summary']['max_night_s']:.0f})" in text
    assert f"KL {now['summary']['kl_from_base']:.4f}" in text
    assert f"took {now['summary']['run_s'] / 60:.1f} minutes" in text
    for run in (before, now):
        assert [n["status"] for n in run["nights"].values()] == [
            "published",
            "rejected",
            "published",
            "published",
        ]
    solved = [r["days"]["3"]["tasks"]["tools/new"] for r in (now, before)]
    assert (
        f"solved {solved[0]['served_solved']} of {solved[0]['asked']} tool tasks on day 3" in text
    )
    assert f"where it had solved {solved[1]['served_solved']}" in text
    gate = now["nights"]["2"]["gate"]
    assert (
        f"rejected at {100 * (gate['base']['retention'] - gate['after']['retention']):.1f}" in text
    )
    for key in now["mornings"]:
        assert now["mornings"][key]["skills"] == before["mornings"][key]["skills"]


def test_the_light_replay_run_is_quoted_as_measured():
    from agent_cl.evals.long_run import final_line

    light, default = _long_run("quick_light64"), _long_run("quick_fewshot")
    text = " ".join((RESULTS / "long_run" / "README.md").read_text().split())
    assert light["night_plan"]["replay"] == 64 and light["night_plan"]["replay_steps_per_demo"] == 2
    assert {
        k: v for k, v in light["night_plan"].items() if k not in ("replay", "replay_steps_per_demo")
    } == {k: v for k, v in default["night_plan"].items() if k != "replay"}
    assert f"`{final_line(light['summary'])}`" in text
    for key, night in light["nights"].items():
        morning = light["mornings"][key]["skills"]
        after = night["gate"]["after"]["retention"]
        row = (
            f"| {key} | {night['demonstrations']} | {night['replayed']} | {night['steps']} | "
            f"{night['seconds']:.0f} | "
        )
        assert row in text
        assert (
            f"| {after:.3f} | {morning['by_night'][key]['acc']:.2f} | "
            f"{morning['by_kind']['facts']['acc']:.2f} |" in text
        )
    # night 1 trained as the default's did; night 2's candidates, in robust items under the base
    assert light["nights"]["1"]["gate"]["after"] == default["nights"]["1"]["gate"]["after"]
    items = {
        name: round(128 * (1 - run["nights"]["2"]["gate"]["after"]["retention"]))
        for name, run in (("light", light), ("default", default))
    }
    assert items == {"light": 3, "default": 10}
    assert (light["summary"]["published"], default["summary"]["published"]) == (2, 3)
    assert f"took {light['summary']['run_s'] / 60:.1f} minutes" in text


def _shrink_section() -> str:
    """The long-run README's shrink section, whitespace folded, up to the next heading."""
    text = " ".join((RESULTS / "long_run" / "README.md").read_text().split())
    return text.split("## Shrinking a rejected night")[1].split("## ")[0]


def test_the_shrink_run_is_quoted_as_measured():
    from agent_cl.evals.long_run import final_line
    from agent_cl.evals.long_run_report import published_share

    shrink, default = _long_run("quick_shrink"), _long_run("quick_fewshot")
    section = _shrink_section()
    added = ("gate_shrink", "replay_steps_per_demo")  # settings newer than quick_fewshot/
    assert shrink["night_plan"]["gate_shrink"] == [0.75, 0.5]
    assert shrink["night_plan"]["replay_steps_per_demo"] is None  # a replay costs a new one's
    assert {k: v for k, v in shrink["night_plan"].items() if k not in added} == {
        k: v for k, v in default["night_plan"].items() if k not in added
    }
    assert f"`{final_line(shrink['summary'])}`" in section
    for key, night in shrink["nights"].items():
        morning = shrink["mornings"][key]["skills"]
        row = (
            f"| {key} | {night['demonstrations']} | {night['replayed']} | {night['steps']} | "
            f"{night['seconds']:.0f} | "
        )
        assert row in section
        assert (
            f"| {night['gate']['after']['retention']:.3f} | "
            f"{morning['by_night'][key]['acc']:.2f} | {morning['by_kind']['facts']['acc']:.2f} |"
            in section
        )
    shares = {key: published_share(night) for key, night in shrink["nights"].items()}
    assert shares == {"1": None, "2": 0.75, "3": 0.75, "4": None}
    assert "| 2 | 5 | 5 | 80 | 537 | published v2 at 0.75 |" in section
    # night 2's skills the morning after, published on its night here and rejected by the default
    assert (
        shrink["mornings"]["2"]["skills"]["by_night"]["2"]["acc"],
        default["mornings"]["2"]["skills"]["by_night"]["2"]["acc"],
    ) == (1.0, pytest.approx(3 / 7))
    assert [t["passed"] for t in shrink["nights"]["4"]["gate"]["shrink"]] == [False, False]
    assert (shrink["summary"]["published"], default["summary"]["published"]) == (3, 3)
    for run in (shrink, default):
        assert f"{run['summary']['skills_kept_min']:.2f}" in section
    minutes = [f"{run['summary']['run_s'] / 60:.1f}" for run in (shrink, default)]
    assert f"took {minutes[0]} minutes against {minutes[1]}" in section


def test_the_shrink_measurement_is_quoted_as_its_benchmark_gives_it():
    rows = json.loads((RESULTS / "long_run" / "shrink_night2.json").read_text())
    section = _shrink_section()
    assert [row["share"] for row in rows] == [1.0, 0.75, 0.5, 0.25]
    for row in rows:
        assert (
            f"| {row['share']} | {row['robust']:.3f} | {row['new_skill_own_questions']} | "
            f"{row['held_out']['night2']:.2f} | {row['kl_from_base']:.4f} |" in section
        )
    whole, three_quarters, half = rows[:3]
    assert three_quarters["held_out"]["night1"] == 0.857
    assert (whole["held_out"]["night2/facts"], half["held_out"]["night2/facts"]) == (1.0, 0.0)
    kinds = three_quarters["retention_kinds"]
    assert f"facts {kinds['facts']:.1f}, arithmetic {kinds['arithmetic']:.2f}" in section
    assert f"reasoning {kinds['reasoning']:.2f}" in section


def test_the_shrink_on_the_whole_retention_set_is_quoted_as_measured():
    rows = json.loads((RESULTS / "long_run" / "shrink_night2_whole_set.json").read_text())
    section = _shrink_section()
    by_share = {row["share"]: row for row in rows}
    assert sorted(by_share) == [0.0, 0.5, 0.75, 1.0]
    assert {row["n_retention"] for row in rows} == {248}
    for share, row in by_share.items():
        label = "0 (v1)" if share == 0 else str(share)
        assert (
            f"| {label} | {row['robust']:.3f} | {row['new_skill_own_questions']} | "
            f"{row['held_out']['night1']:.2f} | {row['held_out']['night2']:.2f} |" in section
        )

    def points(a: float, b: float) -> str:
        return f"{100 * (a - b):.1f} points"

    served, whole, kept = by_share[0.0]["robust"], by_share[1.0]["robust"], by_share[0.75]["robust"]
    assert f"rejected ({points(served, whole)} under v1)" in section
    assert f"passes ({points(served, kept)} under v1, {100 * (1 - kept):.1f} under the base)" in (
        section
    )
    assert f"v1 stood {points(1, served)} under the base on all 248" in section
    sampled = _long_run("quick_fewshot")["nights"]["1"]["gate"]["after"]  # v1 on the 128
    assert sampled["n_retention"] == 128
    assert f"and {100 * (1 - sampled['retention']):.1f} on the 128" in section
