"""The long run's smoke: two nights of an agent's life through the public agents, the product's
night and its served model; then resumed, and reported. It runs on the tiny random model (on the
embedded model a night's gate alone takes 2-4 minutes on 2 cores); the embedded model's run is
`agent-cl eval --experiment long-run --quick`, committed under docs/results/long_run/."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from langchain_core.messages import messages_from_dict
from typer.testing import CliRunner

from agent_cl.cli import app
from agent_cl.config import Settings
from agent_cl.evals.long_run import RESULTS, TENANT, LongRun, PlanMismatchError, final_line
from agent_cl.evals.long_run_plan import Curriculum, LongRunPlan
from agent_cl.evals.long_run_report import build_report, write_plots
from agent_cl.memory.chroma import ChromaDemonstrationStore
from agent_cl.memory.schema import DemoStatus

pytestmark = pytest.mark.slow

SMOKE = {"nights": 2, "demos_per_night": 4, "steps_per_demo": 1, "retention_limit": 8}


def test_the_curriculum_mixes_kinds_recurs_and_corrects():
    plan = LongRunPlan.quick(nights=3)
    curriculum = Curriculum.build(plan)
    first, later = curriculum.days[1], curriculum.days[3]
    assert {t.kind for t in first} == {"facts", "json", "tools"}
    assert {t.mode for t in first} == {"new", "correct"}  # nothing to recur on day 1
    assert "recur" in {t.mode for t in later}
    taught = {t.index for d in (1, 2) for t in curriculum.days[d] if t.kind == "facts"}
    assert all(t.index in taught for t in later if t.mode == "recur")
    # held-out questions are never the questions a day logs
    asked = {curriculum.facts[t.index].question for d in curriculum.days.values() for t in d
             if t.kind == "facts"}  # fmt: skip
    assert not asked & {q.text.split("\n")[-1] for q in curriculum.questions(1)}
    tools = [q for q in curriculum.questions(1) if q.kind == "tools"]
    assert tools and "lab_leader" in tools[0].conversation[0]["content"]
    assert Curriculum.build(plan).days == curriculum.days  # deterministic
    with pytest.raises(ValueError, match="kinds"):
        LongRunPlan(kinds=("poems",))
    with pytest.raises(ValueError, match="recurring"):
        LongRunPlan(recurring=0.6, corrections=0.5)


def test_the_full_run_has_a_distinct_lab_for_every_tool_task():
    """The default 20 nights need about 320 labs; two syllables give 132, and the build
    once looped forever looking for a 133rd."""
    curriculum = Curriculum.build(LongRunPlan())
    labs = [t.lab for t in curriculum.tools]
    assert len(labs) > 132 and len(set(labs)) == len(labs)
    assert labs[:6] == [t.lab for t in Curriculum.build(LongRunPlan.quick()).tools[:6]]


def test_two_nights_of_a_life_resume_and_report(tiny_model_dir, tmp_path, monkeypatch):
    settings = Settings(home=tmp_path / "unused", model_dir=tiny_model_dir)
    plan = LongRunPlan.quick(**SMOKE)
    out = tmp_path / "long-run"
    results = LongRun(settings, plan, out, say=lambda m: None).run()

    nights, mornings, days = results["nights"], results["mornings"], results["days"]
    assert sorted(nights) == sorted(mornings) == sorted(days) == ["1", "2"]
    for key, night in nights.items():
        assert night["status"] in ("published", "rejected"), night
        assert night["demonstrations"] >= 1 and night["steps"] == night["demonstrations"]
        # the night took the whole day; a rejected one hands it back for one more night
        assert night["pending_after_night"] == night["retried"]
        if key == "1" and night["status"] == "rejected":  # every one's first try
            assert night["retried"] == night["demonstrations"]
        assert night["retried"] == 0 or night["status"] == "rejected"
        assert night["trained_on"] == ["cuda" if torch.cuda.is_available() else "cpu", "float32"]
        assert days[key]["tasks"]["tools/new"]["logged"] == 1  # served, else the teacher's run
        # the morning after asks every night so far, retention read against the base
        assert sorted(mornings[key]["skills"]["by_night"]) == [
            str(n) for n in range(1, int(key) + 1)
        ]
        assert mornings[key]["base"]["robust"] is not None
        assert "text_memory" in mornings[key] and "agent_retrieval" in mornings[key]
    assert set(mornings["2"]["skills_all_tasks"]["by_kind"]) == {"facts", "json", "tools"}
    # (the tiny model answers facts wrongly by day: none is logged, so none is a night's skill)
    assert set(mornings["2"]["skills"]["by_kind"]) <= {"facts", "json", "tools"}
    # A night's skills are the ones its day logged; the tasks lost by day are scored apart.
    curriculum = Curriculum.build(plan)
    for key, day in days.items():
        new = sum(row["logged"] for mode, row in day["tasks"].items() if "/recur" not in mode)
        assert len(day["taught"]) == new
        tasks = [t for n in range(1, int(key) + 1) for t in curriculum.days[n]]
        taught = {k for n in range(1, int(key) + 1) for k in days[str(n)]["taught"]}
        every = sum(len(curriculum.held_out(t)) for t in tasks)
        assert mornings[key]["skills_all_tasks"]["n"] == every
        assert mornings[key]["skills"]["n"] == sum(
            len(curriculum.held_out(t)) for t in tasks if t.key in taught
        )

    store = ChromaDemonstrationStore.open(out / "home" / "store")
    demos = store.list(tenant=TENANT)
    # nothing stranded: every demonstration was consolidated, finally rejected (its second
    # rejected night), or waits for its retry
    final = {DemoStatus.CONSOLIDATED, DemoStatus.REJECTED}
    assert all(
        d.status in final or (d.status == DemoStatus.PENDING and d.attempts == 1) for d in demos
    )
    assert all(d.attempts == 2 for d in demos if d.status == DemoStatus.REJECTED)
    assert all(days[k]["tasks"]["facts/correct"]["asked"] for k in days)
    # a corrected episode teaches the correction (the tiny model may answer blank, which the
    # middleware does not log; the embedded model's quick run logs every correction)
    for demo in (d for d in demos if d.metadata.get("corrected")):
        assert messages_from_dict(demo.messages)[-1].content == demo.answer
    store.close()

    summary = results["summary"]
    assert summary["nights"] == 2 and summary["demonstrations"] == sum(
        n["demonstrations"] for n in nights.values()
    )
    assert final_line(summary).startswith("long_run nights=2 published=")
    # every stage is timed, so the whole life's wall time is known (the quick run's bar)
    stages = [*days.values(), *nights.values(), *mornings.values()]
    assert all(row["seconds"] > 0 for row in stages)
    assert summary["run_s"] == pytest.approx(sum(row["seconds"] for row in stages))
    assert summary["run_s"] > summary["max_night_s"]

    # Resumed: nothing runs again; another plan is refused, not mixed in.
    again = LongRun(settings, plan, out, say=lambda m: None).run()
    assert again["nights"] == nights
    with pytest.raises(PlanMismatchError):
        LongRun(settings, LongRunPlan.quick(**{**SMOKE, "nights": 3}), out)
    # ... and so are nights under another recipe, set where the command line does not show
    assert results["night_plan"]["lora_per_night"] == "continue"
    assert results["night_plan"]["gate_shrink"] == [0.75, 0.5]  # as JSON keeps it, and resumes
    fresh = dataclasses.replace(settings, sleep_lora_per_night="fresh", sleep_replay=1)
    told = (
        rf"lora_per_night='continue', replay={settings.sleep_replay}; "
        r".* give lora_per_night='fresh', replay=1"
    )
    with pytest.raises(PlanMismatchError, match=told):
        LongRun(fresh, plan, out)
    # a run recorded before a night setting existed resumes when that setting is its default
    stored = json.loads((out / "results.json").read_text())
    del stored["night_plan"]["replay_recent"]
    (out / "results.json").write_text(json.dumps(stored))
    LongRun(settings, plan, out)
    with pytest.raises(PlanMismatchError, match=r"replay_recent=0\.0; .* give replay_recent=0\.5"):
        LongRun(dataclasses.replace(settings, sleep_replay_recent=0.5), plan, out)

    report = build_report(results)
    assert "## Nights" in report and "## After the last night" in report
    # what the app's own agent solved by day, tools apart (where a prose few-shot once hid)
    day = results["days"]["1"]["tasks"]
    tools = [row for name, row in day.items() if name.startswith("tools/")]

    def share(rows: list[dict]) -> str:
        return f"{sum(r['served_solved'] for r in rows)}/{sum(r['asked'] for r in rows)}"

    assert tools and f" | {share(list(day.values()))} ({share(tools)}) | " in report
    assert f"took {summary['run_s'] / 60:.1f} minutes" in report
    assert "## The same questions with text memory" in report
    assert {p.name for p in write_plots(results, tmp_path)} == {
        "skills.png",
        "retention.png",
        "night_time.png",
    }

    # The CLI rebuilds the report from results.json and prints the final line.
    cli = CliRunner().invoke(
        app, ["eval", "--experiment", "long-run", "--quick", "--nights", "2", "--demos", "4",
              "--retention-limit", "8", "--report-only", "--out", str(out)],
    )  # fmt: skip
    assert cli.exit_code == 0, cli.output
    assert "long_run nights=2" in cli.output and (out / "report.md").exists()
    assert json.loads((out / RESULTS).read_text())["summary"] == summary

    # The morning report shows it beside the home's tenants; a wrong folder is listed.
    monkeypatch.setenv("AGENT_CL_HOME", str(out / "home"))
    page = tmp_path / "page.html"
    shown = CliRunner().invoke(app, ["report", "--out", str(page), "--long-run", str(out)])
    assert shown.exit_code == 0, shown.output
    html = page.read_text()
    assert 'data-section="long-run"' in html and "long_run nights=2" in html
    assert 'id="tenant-long-run"' in html and html.count("data:image/png") >= 3
    wrong = ["report", "--out", str(page), "--long-run", str(tmp_path)]
    shown = CliRunner().invoke(app, wrong)
    assert shown.exit_code == 0 and "no long-run results" in shown.output
    assert 'data-section="long-run"' not in page.read_text()


def test_long_run_options_are_checked():
    runner = CliRunner()
    both = runner.invoke(app, ["eval", "--experiment", "long-run,scaling", "--out", "x"])
    assert both.exit_code != 0 and "alone" in both.output
    nights = runner.invoke(app, ["eval", "--experiment", "scaling", "--nights", "3", "--out", "x"])
    assert nights.exit_code != 0 and "long-run only" in nights.output
    bad = runner.invoke(app, ["eval", "--experiment", "long-run", "--nights", "0", "--out", "x"])
    assert bad.exit_code != 0 and "nights" in bad.output
    # options of the other experiments were once ignored, starting hours of the wrong run
    for extra, told in (
        (["--suite", "poems"], "unknown kinds ['poems']"),
        (["--suite", ","], "at least one kind"),
        (["--methods", "sft", "--sizes", "8"], "--methods, --sizes do not apply"),
    ):
        shown = runner.invoke(app, ["eval", "--experiment", "long-run", *extra, "--out", "x"])
        assert shown.exit_code != 0 and told in shown.output, shown.output
        assert not (Path("x") / RESULTS).exists()


def test_the_report_names_the_share_a_shrunk_night_published():
    from agent_cl.evals.long_run_report import published_share

    tried = [{"share": 0.75, "passed": False}, {"share": 0.5, "passed": True}]
    assert published_share({"status": "published", "gate": {"shrink": tried}}) == 0.5
    older = {"reason": "at 0.75 of the night's update: new skill 0.600 -> 0.800"}
    assert published_share({"status": "published", "gate": older}) == 0.75  # reason only
    assert published_share({"status": "published", "gate": {"reason": "new skill"}}) is None
    assert published_share({"status": "rejected", "gate": {"shrink": tried}}) is None
