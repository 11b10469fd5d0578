"""A rejected night's candidate at shares of its update: what each share learned and kept.

The premise of the gate's shrink (`gate_shrink`, agent_cl/adapters/shrink.py), measured before
it was built: runs the quick long run with the shrink off, keeping every night's candidate
adapter (the sleep job deletes it once the night is archived), then scores each rejected
night's candidate at every share of its update on the gate's own items (robust retention on the
run's retention set, the night's own questions, KL from the base) and on the morning's held-out
questions of every night so far (the skills each day taught).

    python benchmarks/shrink_rejected.py --out DIR [--nights 2] [--shares 1,0.75,0.5,0.25,0]
        [--whole-retention-set]

Writes DIR/shrink_rejected.json (one row per rejected night and share) beside the run's own
results.json. Share 0 is the served version the night started from. `--whole-retention-set`
scores retention on every robust item of the frozen set, as the product's gate does, instead of
the run's seeded sample (the quick run's 128), and writes DIR/shrink_rejected_whole_set.json.
A run already in DIR is reused (the long run resumes), but only candidates saved by this script
can be measured.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the long run's --out folder")
    parser.add_argument("--nights", type=int, default=2)
    parser.add_argument("--shares", default="1,0.75,0.5,0.25")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--whole-retention-set",
        action="store_true",
        help="gate on every robust item, as the product does, not the run's sample",
    )
    args = parser.parse_args()
    shares = [float(s) for s in args.shares.split(",")]
    candidates = args.out / "candidates"
    run_keeping_candidates(args.out, candidates, args.nights)
    rows = []
    results = json.loads((args.out / "results.json").read_text())
    for night, report in sorted(results["nights"].items(), key=lambda kv: int(kv[0])):
        if report["status"] != "rejected":
            continue
        for share in shares:
            row = measure(
                args.out,
                candidates,
                int(night),
                share,
                threads=args.threads,
                whole_set=args.whole_retention_set,
            )
            print(json.dumps(row), flush=True)
            rows.append(row)
    name = "shrink_rejected_whole_set" if args.whole_retention_set else "shrink_rejected"
    (args.out / f"{name}.json").write_text(json.dumps(rows, indent=1))


def run_keeping_candidates(out: Path, keep: Path, nights: int) -> None:
    """The quick long run with the shrink off, each night's candidate copied to `keep`."""
    from agent_cl.cli import app
    from agent_cl.night import journal

    archive = journal.Journal.archive

    def keeping(self, entry):
        candidate = self.run_dir(entry.run_id) / "candidate"
        if candidate.exists():
            shutil.copytree(candidate, keep / entry.run_id, dirs_exist_ok=True)
        return archive(self, entry)

    os.environ["AGENT_CL_GATE_SHRINK"] = ""  # the nights as they were before the shrink
    journal.Journal.archive = keeping
    argv = ["eval", "--experiment", "long-run", "--quick", "--nights", str(nights)]
    try:
        app([*argv, "--out", str(out)], standalone_mode=False)
    finally:
        journal.Journal.archive = archive


def measure(
    out: Path, candidates: Path, night: int, share: float, *, threads: int, whole_set: bool
) -> dict:
    from agent_cl.adapters.shrink import write_shrunk_adapter
    from agent_cl.config import Settings
    from agent_cl.consolidation.candidate import CandidateModel
    from agent_cl.evals.long_run import TENANT
    from agent_cl.evals.long_run_plan import Curriculum, LongRunPlan
    from agent_cl.memory.chroma import ChromaDemonstrationStore
    from agent_cl.models.provision import provisioned_model_dir
    from agent_cl.night.gate import Gate, GateConfig, demonstration_items, retention_items
    from agent_cl.night.night import Night
    from agent_cl.scoring.retention import load_kl_prompts

    results = json.loads((out / "results.json").read_text())
    settings = Settings.load(home=out / "home")
    model_dir = provisioned_model_dir(settings.model_dir, settings.models_dir)
    history = out / "home" / "adapters" / TENANT / ".sleep" / "history"
    runs = sorted(history.glob("*.json"), key=lambda p: json.loads(p.read_text())["stages"][0][1])
    journal = json.loads(runs[night - 1].read_text())  # one run per night, in order
    store = ChromaDemonstrationStore.open(settings.store_dir)
    demos = store.get(journal["demonstration_ids"], tenant=TENANT)
    served = journal["init_version"]
    served_dir = Night(settings, store).registry(TENANT).get(served).path if served else None
    store.close()
    limit = None if whole_set else results["plan"].get("retention_limit")
    items = [item for item in retention_items(limit) if item.robust]  # the gate's robust score
    gate = Gate(GateConfig(), demonstration_items(demos), items)
    plan = LongRunPlan.quick(nights=results["plan"]["nights"])
    curriculum = Curriculum.build(plan)
    questions = [
        (n, task.kind, q)
        for n in range(1, night + 1)
        for task in curriculum.days[n]
        if task.key in results["days"][str(n)]["taught"]
        for q in curriculum.held_out(task)
    ]
    with tempfile.TemporaryDirectory() as work:
        started = time.perf_counter()
        if share == 1:
            adapter = candidates / journal["run_id"]
        elif share == 0:  # the served version the night started from, for the per-night drop
            if served_dir is None:
                raise SystemExit("share 0 needs a night that started from a served version")
            adapter = served_dir
        else:
            adapter = Path(work)
            write_shrunk_adapter(candidates / journal["run_id"], served_dir, share, adapter)
        model = CandidateModel.load(model_dir, adapter, torch_threads=threads)
        tokens = gate.config.max_new_tokens
        scores = gate.score(
            lambda convs: model.generate(convs, max_new_tokens=tokens),
            lambda: model.kl_from_base(list(load_kl_prompts())),
        )
        answers = model.generate(
            [q.conversation for _, _, q in questions], max_new_tokens=plan.max_new_tokens
        )
    base = 1.0  # the robust items are those the base model answers
    held_out: dict[str, list[bool]] = {}
    for (n, kind, q), answer in zip(questions, answers, strict=True):
        for key in (f"night{n}", f"night{n}/{kind}"):
            held_out.setdefault(key, []).append(q.is_correct(answer))
    return {
        "night": night,
        "share": share,
        "n_retention": scores.n_retention,
        "robust": scores.retention,
        "robust_drop_vs_base_pts": round(100 * (base - scores.retention), 2),
        "new_skill_own_questions": scores.new_skill,
        "kl_from_base": scores.kl_from_base,
        "retention_kinds": scores.retention_kinds,
        "held_out": {k: round(sum(v) / len(v), 3) for k, v in sorted(held_out.items())},
        "seconds": round(time.perf_counter() - started, 1),
    }


if __name__ == "__main__":
    main()
