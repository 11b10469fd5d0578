"""Which skills a long run's nights forgot, and whether those nights had replayed them.

Replay draws a few consolidated demonstrations into each night. If the skills a night forgets
are the ones it did not replay, the lever is replay coverage (more of the pool, each cheaper);
if it forgets replayed ones too, replay alone cannot hold them. This reads a finished (or
stopped) long run's folder, its `home/` included: every published adapter answers every
earlier skill's held-out questions, and each night's journal says what it replayed.

    python benchmarks/replay_forgetting.py [NAME=]RUN_DIR ... --out replay_forgetting.json

(`home/` is not committed with a run's results, so this reads runs where they were made.)

A skill counts as known by a version when it answers at least half of its held-out questions.
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import Counter
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "runs", nargs="+", help="long runs' --out folders (with home/), each as PATH or NAME=PATH"
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    named = dict(_named(arg) for arg in args.runs)
    runs = {name: transitions(path, threads=args.threads) for name, path in named.items()}
    pooled = summarise([row for rows in runs.values() for row in rows])
    for key, row in pooled.items():
        total = row["kept"] + row["lost"]
        share = f"{row['lost'] / total:.2f}" if total else "-"
        print(f"{key:<24} kept {row['kept']:>3} lost {row['lost']:>3} (lost share {share})")
    if args.out:
        data = {
            "pooled": pooled,
            "runs": {
                run: {"summary": summarise(rows), "transitions": rows} for run, rows in runs.items()
            },
        }
        args.out.write_text(json.dumps(data, indent=1))


def transitions(run: Path, *, threads: int = 1) -> list[dict]:
    """One row per (published night, skill known before it and not taught again that night):
    whether the night replayed it and whether the next version still knew it."""
    from agent_cl.config import Settings
    from agent_cl.evals.long_run import TENANT
    from agent_cl.evals.long_run_plan import Curriculum, LongRunPlan
    from agent_cl.memory.chroma import ChromaDemonstrationStore
    from agent_cl.models.provision import provisioned_model_dir
    from agent_cl.serving.local_backend import LocalBackend

    results = json.loads((run / "results.json").read_text())
    home = run / "home"
    plan = LongRunPlan(**results["plan"])
    curriculum = Curriculum.build(plan)
    history = home / "adapters" / TENANT / ".sleep" / "history"
    nights = sorted(
        (json.loads(p.read_text()) for p in history.glob("*.json")), key=lambda e: e["started_at"]
    )
    store = ChromaDemonstrationStore.open(home / "store")
    ids_by_query: dict[str, set[str]] = {}
    for demo in store.list(tenant=TENANT):
        ids_by_query.setdefault(demo.query, set()).add(demo.id)
    store.close()

    # every skill a day taught: its night, kind, held-out questions, demonstration ids
    skills = []
    for night, tasks in curriculum.days.items():
        taught = set((results["days"].get(str(night)) or {}).get("taught") or ())
        for task in tasks:
            if task.mode == "recur":
                continue
            ids = ids_by_query.get(_asked_question(curriculum, task), set())
            if not ids or (taught and task.key not in taught):
                continue  # lost by day: never a night's skill
            questions = curriculum.held_out(task)
            skills.append(
                {
                    "night": night,
                    "kind": task.kind,
                    "asked": _asked_question(curriculum, task),
                    "ids": ids,
                    "questions": questions,
                }
            )

    settings = Settings.load()
    model_dir = provisioned_model_dir(settings.model_dir, settings.models_dir)
    backend = LocalBackend(model_dir, torch_threads=threads)
    published = [e for e in nights if e.get("published_version")]
    known: dict[int, list[bool]] = {}
    questions = [q for s in skills for q in s["questions"]]
    for entry in published:
        version = entry["published_version"]
        backend.swap(version, home / "adapters" / TENANT / f"v{version:04d}")
        answers = backend.generate(
            [q.conversation for q in questions], max_new_tokens=plan.max_new_tokens
        ).texts
        hits = iter(q.is_correct(a) for q, a in zip(questions, answers, strict=True))
        known[version] = [
            sum(next(hits) for _ in s["questions"]) * 2 >= len(s["questions"]) for s in skills
        ]
        print(f"{run.name} v{version}: knows {sum(known[version])} of {len(skills)}", flush=True)

    rows = []
    for before, after in itertools.pairwise(published):
        v0, v1 = before["published_version"], after["published_version"]
        replayed, claimed = set(after["replay_ids"]), set(after["demonstration_ids"])
        for skill, was, now in zip(skills, known[v0], known[v1], strict=True):
            if not was or skill["ids"] & claimed:  # unknown, or taught again tonight
                continue
            rows.append(
                {
                    "from": v0,
                    "to": v1,
                    "night": skill["night"],
                    "kind": skill["kind"],
                    "asked": skill["asked"],
                    "replayed": bool(skill["ids"] & replayed),
                    "kept": now,
                }
            )
    return rows


def _named(arg: str) -> tuple[str, Path]:
    name, _, path = arg.rpartition("=")
    return (name or Path(path).name), Path(path)


def summarise(rows: list[dict]) -> dict[str, dict[str, int]]:
    counts = Counter(
        (r["kind"], "replayed" if r["replayed"] else "not replayed", r["kept"]) for r in rows
    )
    return {
        f"{kind}/{drawn}": {
            "kept": counts[(kind, drawn, True)],
            "lost": counts[(kind, drawn, False)],
        }
        for kind in sorted({r["kind"] for r in rows})
        for drawn in ("replayed", "not replayed")
    }


def _asked_question(curriculum, task) -> str:
    """The question the day asked (the demonstration's query)."""
    if task.kind == "facts":
        return curriculum.facts[task.index].question
    if task.kind == "json":
        return curriculum.json_tasks[task.index].question
    return curriculum.tools[task.index].question


if __name__ == "__main__":
    main()
