from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from agent_cl.evals.facts import build_facts
from agent_cl.models.provision import read_manifest
from agent_cl.scoring.retention import (
    MAX_KIND_SHARE,
    candidate_pool,
    cap_kinds,
    fixture_model_sha256,
    freeze_fixture,
    kind_scores,
    load_retention_set,
    score,
)


def test_facts_are_deterministic_and_unique():
    a, b = build_facts(40, seed=3), build_facts(40, seed=3)
    assert a == b
    assert build_facts(40, seed=4) != a
    assert len({f.unit for f in a}) == 40
    assert len({f.answer for f in a}) == 40
    for fact in a:
        assert fact.answer in fact.note and fact.answer in fact.answer_sentence
        assert fact.question not in fact.paraphrases
        assert fact.is_correct(fact.answer_sentence)
        assert not fact.is_correct("I do not know.")
        demo = fact.demonstration()
        assert (demo.query, demo.context, demo.answer) == (
            fact.question,
            fact.note,
            fact.answer_sentence,
        )
        assert demo.metadata == {"expected": fact.answer} and demo.skill == "facts"


def test_facts_reject_bad_size():
    with pytest.raises(ValueError):
        build_facts(0)


def test_retention_items_verify_answers():
    pool = {item.prompt: item for item in candidate_pool()}
    add = pool["What is 7 + 5?"]
    assert add.is_correct("7 + 5 = 12") and not add.is_correct("The answer is 122")
    assert pool["What is the capital of France?"].is_correct("Paris is the capital.")


def test_fixture_is_frozen_for_the_embedded_model(embedded_model_dir):
    robust, full = load_retention_set(), load_retention_set(subset="full")
    assert len(robust) >= 200  # the design's bar for the gate's set
    assert {i.item_id for i in robust} <= {i.item_id for i in full}
    assert all(i.robust for i in robust) and not all(i.robust for i in full)
    for items in (robust, full):
        assert len({i.item_id for i in items}) == len(items)
        shares = Counter(i.kind for i in items)
        assert max(shares.values()) <= MAX_KIND_SHARE * len(items) + 1
        assert len(shares) >= 6
    assert fixture_model_sha256() == read_manifest(embedded_model_dir)["weights_sha256"]
    subset = load_retention_set(limit=20)
    assert len(subset) == 20 and len({i.kind for i in subset}) >= 3
    assert score(subset, [i.answers[0] for i in subset]) == 1.0
    with pytest.raises(ValueError):
        score([], [])
    with pytest.raises(ValueError, match="subset"):
        load_retention_set(subset="most")


def test_fixture_keeps_robust_items_and_caps_kinds():
    by_kind = Counter()
    pool = []
    for item in candidate_pool():  # 40 sums, then 20 of each of five other kinds
        cap = 40 if item.kind == "arithmetic" else 20
        if by_kind[item.kind] < cap:
            by_kind[item.kind] += 1
            pool.append(item)
    base = [True] * len(pool)
    shaky = [k % 3 != 0 for k in range(len(pool))]
    payload = freeze_fixture(pool, {"fp32": base, "noise": shaky}, model_sha256="x")
    kept = payload["items"]
    robust = [d for d in kept if d["robust"]]
    assert all(shaky[[i.item_id for i in pool].index(d["item_id"])] for d in robust)
    for items in (kept, robust):
        top = Counter(d["kind"] for d in items).most_common(1)[0][1]
        assert top <= MAX_KIND_SHARE * len(items) + 1
    with pytest.raises(ValueError, match="base check"):
        freeze_fixture(pool, {"noise": shaky}, model_sha256="x")
    with pytest.raises(ValueError, match="results"):
        freeze_fixture(pool, {"fp32": base[:-1]}, model_sha256="x")
    assert len(cap_kinds(pool, 1.0)) == len(pool)
    with pytest.raises(ValueError, match="at least 4"):
        cap_kinds([i for i in pool if i.kind in ("arithmetic", "words")], 0.3)


def test_kind_scores_and_strict_retention_matching():
    items = [
        i
        for i in candidate_pool()
        if i.prompt
        in (
            "What is 7 + 5?",
            "Write the word 'apple' in capital letters.",
            "What is the chemical symbol for oxygen?",
        )
    ]
    by_prompt = {i.prompt: i for i in items}
    assert not by_prompt["Write the word 'apple' in capital letters."].is_correct("apple")
    assert by_prompt["Write the word 'apple' in capital letters."].is_correct("APPLE")
    oxygen = by_prompt["What is the chemical symbol for oxygen?"]
    assert oxygen.is_correct("It is O.") and not oxygen.is_correct("It is Oxygen gas")
    answers = {"What is 7 + 5?": "7 + 5 = 12", "What is the chemical symbol for oxygen?": "O"}
    scores = kind_scores(items, [answers.get(i.prompt, "apple") for i in items])
    assert scores == {"arithmetic": 1.0, "facts": 1.0, "formats": 0.0}


def test_json_skill_tasks_and_verifier():
    from agent_cl.evals.json_skill import EXAMPLE, build_json_tasks, parse_record

    tasks = build_json_tasks(12, seed=1)
    assert tasks == build_json_tasks(12, seed=1)
    task = tasks[0]
    assert task.record["NAME"] in task.sentence and str(task.record["AGE"]) in task.sentence
    assert task.is_correct("Sure: " + task.answer + " done")
    wrong_keys = json.dumps({k.lower(): v for k, v in task.record.items()})
    assert not task.is_correct(wrong_keys)  # the exact format is the skill
    assert parse_record("no json here") is None and parse_record("{broken") is None
    demo = task.demonstration()
    assert demo.answer == task.answer and demo.metadata["expected"] == task.answer
    assert EXAMPLE.is_correct(EXAMPLE.answer)


def test_training_anchors_are_disjoint_from_retention_and_kl_prompts():
    from agent_cl.consolidation.anchors import ANCHOR_POOLS
    from agent_cl.scoring.retention import load_kl_prompts

    pool = {item.prompt for item in candidate_pool()}
    kl_prompts = set(load_kl_prompts())
    for anchors in (set(make()) for make in ANCHOR_POOLS.values()):
        assert len(anchors) >= 100
        assert not anchors & pool
        assert not anchors & kl_prompts
    assert not kl_prompts & pool


def test_demo_plot_is_written_from_a_report(tmp_path):
    import json

    from agent_cl.evals.demo_plot import plot_demo

    root = Path(__file__).resolve().parents[1]
    report = json.loads((root / "docs" / "results" / "demo-quick.json").read_text())
    path = plot_demo(report, tmp_path / "demo.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_tools_suite_is_seeded_and_its_verifier_reads_the_call():
    from langchain_core.messages import AIMessage, HumanMessage

    from agent_cl.evals.tools_skill import build_tool_tasks, called_lab_leader, lab_leader

    tasks = build_tool_tasks(5, seed=3)
    assert tasks == build_tool_tasks(5, seed=3) and len({t.lab for t in tasks}) == 5
    task = tasks[0]
    assert lab_leader.invoke({"lab": task.lab}) == task.leader

    def run(args):
        call = {"name": "lab_leader", "args": args, "id": "1"}
        return [HumanMessage(task.question), AIMessage("", tool_calls=[call]), AIMessage("ok")]

    assert called_lab_leader(run({"lab": task.lab})) is True
    assert called_lab_leader(run({"lab": tasks[1].lab})) is False  # the wrong lab
    assert called_lab_leader([HumanMessage(task.question), AIMessage(task.leader)]) is False
    assert called_lab_leader([HumanMessage("Hello?"), AIMessage("hi")]) is None  # not this skill
