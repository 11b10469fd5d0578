"""`agent-cl eval`: the suites and verifiers, the plan's validation, the report's arithmetic,
resuming a killed run (tiny model, real LoRA and Chroma), and the quick run on the embedded
model through the CLI (slow: it is the CI smoke test of the whole harness)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import pytest

from agent_cl.consolidation.training_config import DEFAULT_METHOD
from agent_cl.evals.plan import EvalPlan
from agent_cl.evals.report import build_report, cost, fmt, spread
from agent_cl.evals.suites import build_suite, with_demonstrations


def test_suites_are_deterministic_and_split():
    for name in ("facts", "json", "tools"):
        a, b = build_suite(name, 4, seed=3), build_suite(name, 4, seed=3)
        assert [d.answer for d in a.demonstrations] == [d.answer for d in b.demonstrations]
        assert [i.question for i in a.items] == [i.question for i in b.items]
        other = build_suite(name, 4, seed=4)
        assert [d.answer for d in other.demonstrations] != [d.answer for d in a.demonstrations]
        trained = {d.query for d in a.demonstrations}
        assert not trained & {i.question for i in a.items}, "held-out questions were trained"
    facts = build_suite("facts", 4, seed=0)
    assert len(facts.split("in")) == 8 and len(facts.split("out")) == 2


def test_two_fact_questions_need_both_answers():
    suite = build_suite("facts", 4, seed=0)
    item = suite.split("out")[0]
    first, second = suite.invented[0], suite.invented[1]
    assert item.is_correct(f"{first}, and {second}.")
    assert not item.is_correct(f"{first}.")
    assert first in item.teacher[-1]["content"] or "Context" in item.teacher[-1]["content"]


def test_tool_verifier_reads_the_call_and_its_arguments():
    suite = build_suite("tools", 2, seed=0)
    item = suite.split("in")[0]
    lab = item.question.split("the ")[1].split(" Lab")[0]
    good = f'<tool_call>{{"name": "lab_leader", "arguments": {{"lab": "{lab}"}}}}</tool_call>'
    nested = f'<tool_call>{{"name": "lab_leader", "arguments": {{"lab": {{"lab": "{lab}"}}}}}}'
    assert item.is_correct(good)
    assert not item.is_correct(nested + "</tool_call>")
    assert not item.is_correct(good.replace("lab_leader", "other_tool"))
    assert not item.is_correct(f"{lab} is led by someone.")
    assert "lab_leader" in item.conversation[0]["content"]  # the tools prompt, as served
    turns = with_demonstrations(item.conversation, suite.demonstrations[:1])
    assert [t["role"] for t in turns] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
        "user",
    ]


def test_plan_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown suite"):
        EvalPlan(suites=("facts", "poems"))
    with pytest.raises(ValueError, match="unknown method"):
        EvalPlan(methods=("sft", "magic"))
    with pytest.raises(ValueError, match="seeds"):
        EvalPlan(seeds=0)
    with pytest.raises(ValueError, match="at least 2"):
        EvalPlan(scaling_sizes=(1, 8))
    with pytest.raises(ValueError, match="sequential method"):
        EvalPlan(sequential_methods=("text",))
    assert EvalPlan.quick().seeds == 1


def test_spread_and_cost_arithmetic():
    assert spread([0.5, 0.7]) == pytest.approx((0.6, 0.1414, 2), abs=1e-4)
    assert fmt([0.5]) == "0.500" and fmt([]) == "–"
    units = {
        "one-night/facts/s0/text": _row("text", acc=0.8, tokens=200, ms=500, train=0),
        "one-night/facts/s0/default": _row("default", acc=0.7, tokens=60, ms=300, train=100),
    }
    row = cost(units)["facts"]
    assert row["tokens_saved_per_request"] == 140
    assert row["break_even_requests"] == pytest.approx(500)  # 100 s / 0.2 s
    report = build_report({"units": units, "plan": EvalPlan.quick().to_dict()})
    assert "| facts | 140 | 200.0 | 100 | 500 |" in report


def _row(method, *, acc, tokens, ms, train):
    return {
        "method": method,
        "suite": "facts",
        "seed": 0,
        "acc_in": acc,
        "acc_out": 0.0,
        "retention": 1.0,
        "retention_kinds": {},
        "kl_from_base": 0.0,
        "prompt_tokens": tokens,
        "latency_ms": ms + 400,
        "prefill_ms": ms,
        "train_seconds": train,
    }


def test_a_killed_run_resumes_without_training_again(tiny_model_dir, tmp_path):
    """Real LoRA training (tiny model), real Chroma retrieval: a unit lost to a kill is
    measured again, finished units and trained adapters are reused."""
    from agent_cl.config import Settings
    from agent_cl.durable import LockedError, exclusive_lock
    from agent_cl.evals.progress import EvalProgress
    from agent_cl.evals.runner import RESULTS, EvalRunner, PlanMismatchError

    settings = Settings(home=tmp_path / "home", model_dir=tiny_model_dir, torch_threads=1)
    plan = EvalPlan.quick(
        suites=("facts",),
        methods=("none", "text", "text-gated", "default", "default+text"),
        experiments=("one-night", "scaling"),
        steps=2,
        scaling_steps=2,
        retention_limit=8,
        max_new_tokens=4,
    )
    out = tmp_path / "eval"
    first = EvalRunner(settings, plan, out).run()
    keys = set(first["units"])
    assert {"base", "teacher/facts/s0", "one-night/facts/s0/default+text"} <= keys
    assert {"scaling/facts/n2/s0", "scaling/facts/n4/s0"} <= keys
    adapter = out / "adapters" / f"one-night-facts-s0-{DEFAULT_METHOD}" / "train.json"
    trained_at = adapter.stat().st_mtime_ns

    data = json.loads((out / RESULTS).read_text())  # as if killed before the last two units
    del data["units"]["one-night/facts/s0/default+text"], data["units"]["scaling/facts/n4/s0"]
    (out / RESULTS).write_text(json.dumps(data))
    seen = []

    class Spy(EvalProgress):
        def unit(self, label):
            seen.append(label)

    again = EvalRunner(settings, plan, out, progress=Spy()).run()
    assert seen == ["one night, facts/s0: default+text", "scaling, 4 demonstrations s0"]
    assert set(again["units"]) == keys
    assert adapter.stat().st_mtime_ns == trained_at, "a finished adapter was trained again"
    for row in again["units"].values():
        for key in ("acc_in", "retention", "teacher_in"):
            assert 0.0 <= row.get(key, 0.0) <= 1.0
    with pytest.raises(PlanMismatchError, match="n_demos"):
        EvalRunner(settings, EvalPlan.quick(n_demos=6), out)
    held = exclusive_lock(out / ".eval.lock", busy="held")  # a run already writing there
    with held, pytest.raises(LockedError, match="another agent-cl eval"):
        EvalRunner(settings, plan, out).run()


@pytest.mark.slow
def test_quick_eval_on_the_embedded_model(tmp_path):
    """The CI smoke test: `agent-cl eval --quick` end to end on SmolLM2-135M (every suite and
    experiment at tiny sizes, the methods whose comparisons it asserts), then the report, the
    plots and the numbers.

    `sft`, `sdft` and `default+text` are left to the committed full run (docs/results/eval/):
    they took 266 of the quick run's 605 s of units (10.5 min in all, alone on 2 cores). The
    SDFT objective on the embedded model is tested in test_integration, and the tiny-model
    resume test covers a `+text` method."""
    out = tmp_path / "eval"
    env = {**os.environ, "AGENT_CL_HOME": str(tmp_path / "home")}
    methods = "none,text-gated,text,default"
    cmd = [sys.executable, "-m", "agent_cl.cli", "eval", "--quick", "--methods", methods,
           "--out", str(out)]  # fmt: skip
    # the bound stays far above the few minutes it takes: it only stops a hung run
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3000)
    assert done.returncode == 0, done.stderr[-3000:]
    report = (out / "report.md").read_text()
    for section in (
        "## One skill, one night",
        "## Forgetting per kind",
        "## Sequential skills",
        "## Scaling",
        "## Cost",
        "## Comparisons with 95% intervals",
    ):
        assert section in report
    assert "| facts | default − text |" in report  # a paired difference, per question
    for picture in ("accuracy", "forgetting", "sequential", "scaling"):
        data = (out / f"{picture}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = struct.unpack(">II", data[16:24])
        assert width > 300 and height > 200
    units = json.loads((out / "results.json").read_text())["units"]
    assert units["base"]["retention"] == 1.0  # the robust set is what the base gets right
    assert units["teacher/facts/s0"]["teacher_in"] >= 0.5  # the in-context teacher knows
    for key, row in units.items():
        for name in ("acc_in", "acc_out", "retention", "retention_full", "teacher_in"):
            if name in row:
                assert 0.0 <= row[name] <= 1.0, (key, name, row[name])
        if key.startswith("one-night/"):
            assert row["prompt_tokens"] > 10 and row["latency_ms"] > 0
            # per-question answers, for the intervals: as many as the split has, and agreeing
            assert row["hits_in"].count("1") / len(row["hits_in"]) == row["acc_in"], key
    text, none = units["one-night/facts/s0/text"], units["one-night/facts/s0/none"]
    assert text["prompt_tokens"] > none["prompt_tokens"]  # retrieval put demonstrations in
    # the comparisons the eval exists for, at the resolution of its tiny sets
    for suite in ("facts", "json", "tools"):
        text, default = units[f"one-night/{suite}/s0/text"], units[f"one-night/{suite}/s0/default"]
        assert text["prompt_tokens"] > default["prompt_tokens"], suite  # memory costs tokens
        assert text["retention_prompts_with_memory"] > 0  # top-k memory reaches every prompt
        assert default["retention_prompts_with_memory"] == 0
        # the default recipe stays within the gate: 3 points, or one item of a 16-item set
        floor = units["base"]["retention"] - max(0.03, 1 / len(default["retention_hits"]))
        assert default["retention"] >= floor - 1e-9, (suite, default["retention"])
        assert default["kl_from_base"] < 0.05, (suite, default["kl_from_base"])
        gated = units[f"one-night/{suite}/s0/text-gated"]  # the agent's own cut keeps memory
        assert gated["retention_prompts_with_memory"] < text["retention_prompts_with_memory"]
    assert units["one-night/facts/s0/default"]["train_seconds"] > 0
    assert "resuming" in _rerun(cmd, env)  # nothing left to do: it resumes and rewrites


def _rerun(cmd, env) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_cli_rejects_bad_input_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from agent_cl.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["eval", "--suite", "poems", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "unknown suite poems" in result.output
    result = runner.invoke(app, ["eval", "--sizes", "8,x", "--out", str(tmp_path)])
    assert result.exit_code == 2
    result = runner.invoke(app, ["eval", "--report-only", "--out", str(tmp_path)])
    assert result.exit_code == 2 and "no results.json" in result.output
    assert not (tmp_path / "results.json").exists()


def test_break_even_counts_what_the_adapter_adds_to_decoding(tmp_path):
    """The serving benchmark's decode cost enters the break-even per path: on a path where the
    adapter's extra decode outweighs the prefill saved, the weights never pay back."""
    import shutil
    from pathlib import Path

    from typer.testing import CliRunner

    from agent_cl.cli import app
    from agent_cl.evals.serving_cost import decode_cost_per_token, with_decode_cost

    docs = Path(__file__).resolve().parents[1] / "docs" / "results"
    bench = json.loads((docs / "serving_cost_quick.json").read_text())
    per_token = decode_cost_per_token(bench)
    assert set(per_token) == {"vllm LoRA", "vllm merged", "in process"}
    assert per_token["vllm LoRA"] > 50 > abs(per_token["vllm merged"])  # 0.36 vs 1.04 of base
    row = {"prefill_saved_ms": 200.0, "train_seconds": 100.0}
    cells = with_decode_cost(row, {"slow": 10.0, "free": 0.0, "noise": -3.0}, answer_tokens=32)
    assert cells["noise"] == cells["free"]  # faster than the base is noise, not a saving
    assert cells["slow"] == {"decode_added_ms": 320.0, "net_saved_ms": -120.0,
                             "break_even_requests": None}  # fmt: skip
    assert cells["free"]["break_even_requests"] == pytest.approx(500)
    with pytest.raises(ValueError, match=r"serving_cost\.py"):
        decode_cost_per_token({"quick": True})

    out = tmp_path / "eval"
    out.mkdir()
    shutil.copy(docs / "eval" / "results.json", out / "results.json")
    runner = CliRunner()
    args = ["eval", "--report-only", "--out", str(out), "--serving-cost"]
    result = runner.invoke(app, [*args, str(docs / "serving_cost_quick.json")])
    assert result.exit_code == 0, result.output
    report = (out / "report.md").read_text()
    assert "| facts | vllm LoRA |" in report and "never" in report
    kept = json.loads((out / "results.json").read_text())["serving_cost"]
    assert kept["answer_tokens"] == 32 and kept["per_token_ms"] == pytest.approx(per_token)
    result = runner.invoke(app, [*args, str(out / "report.md")])
    assert result.exit_code == 2  # not JSON: one line, results.json untouched
    result = runner.invoke(app, [*args, str(docs / "frontier.json")])
    assert result.exit_code == 2 and "serving_cost.py" in result.output
