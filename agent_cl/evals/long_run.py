"""`agent-cl eval --experiment long-run`: an agent's life of days and nights, through the
product's own path, measured every morning.

By day the tasks (long_run_plan) go through the public agents on the served model: facts through
`build_agent` (the note in context; the verifier logs what succeeds, a failure is lost as in an
app), JSON through `build_agent` and tools through `create_agent(..., tools=[lab_leader])` with
`DemonstrationMiddleware` (when the served model fails, a stronger model's run is logged
instead, the way a team seeds a skill the model cannot do yet; the report counts which), and
corrections through `record_outcome`. By night `Night(settings, store).job(tenant).run()` runs
exactly as `agent-cl sleep` does with the Settings defaults and swaps the served model. Each
morning asks every night's held-out questions with nothing in context, and reads retention and
KL against the base from the night's gate (the gate scored the very candidate now served, or
the version it kept). Every few mornings the same questions are answered by text memory: the
base with plain top-k retrieval, and the served model with the agent's own retrieval.

The run lives in `--out`: `home/` (store, registry, journals) and `results.json`, written after
each day, night and morning, so a killed run resumes where it stopped (a day re-run logs the
same content-addressed episodes, which the store keeps once; a night resumes from its journal).
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage

from agent_cl.config import Settings
from agent_cl.durable import atomic_write_json, read_json
from agent_cl.evals.long_run_plan import KINDS, Curriculum, LongRunPlan, Question, Task
from agent_cl.evals.suites import with_demonstrations
from agent_cl.evals.tools_skill import Demonstrator, ideal_run
from agent_cl.graphs.agent import build_agent
from agent_cl.graphs.middleware import DEFAULT_MIN_SCORE, message_text
from agent_cl.memory.schema import DemoStatus
from agent_cl.models.provision import provisioned_model_dir
from agent_cl.night.plan import NightPlan

RESULTS = "results.json"
# the parts of each simulated day, in the order they run; each keeps a row per night in results.json
STAGES = ("days", "nights", "mornings")
TENANT = "long-run"
_NIGHT_PLAN_DEFAULTS = {
    f.name: list(f.default) if isinstance(f.default, tuple) else f.default
    for f in dataclasses.fields(NightPlan)
    if f.default is not dataclasses.MISSING
}
TEXT_K = 2  # demonstrations a text memory retrieves (the eval's and the agent's default)
Say = Callable[[str], None]


class PlanMismatchError(ValueError):
    """results.json in --out was measured with another plan."""


class LongRun:
    """The world of one long run (served model, store, agents, nights) and its phases."""

    def __init__(
        self,
        settings: Settings,
        plan: LongRunPlan,
        out: Path,
        *,
        say: Say = print,
        on_step: Callable[[Any], None] | None = None,
        command: str | None = None,
    ) -> None:
        self.plan, self.out, self.say, self.on_step = plan, Path(out), say, on_step
        self.curriculum = Curriculum.build(plan)
        model_dir = provisioned_model_dir(settings.model_dir, settings.models_dir)
        overrides: dict[str, Any] = {"home": self.out / "home", "tenant": TENANT}
        if plan.steps_per_demo is not None:
            overrides["sleep_steps_per_demo"] = plan.steps_per_demo
        # The night is the product's: every other setting is the caller's (the defaults).
        self.settings = dataclasses.replace(settings, model_dir=model_dir, **overrides)
        self.results = self._load(command)
        self._world: _World | None = None

    # -- results ----------------------------------------------------------------------------
    def _load(self, command: str | None) -> dict[str, Any]:
        path = self.out / RESULTS
        if path.exists():
            data = read_json(path, fix=f"move {path} aside to start the long run again")
            if data.get("sizing") != self.plan.sizing():
                raise PlanMismatchError(
                    f"{path} was measured with {data.get('sizing')}; this run asks for "
                    f"{self.plan.sizing()}: use another --out, or the same options"
                )
            # (a run from before the field was recorded takes today's settings as its own)
            recorded = data.setdefault("night_plan", self._night_plan())
            # a field added since the run was recorded had its default then
            recorded = {**_NIGHT_PLAN_DEFAULTS, **recorded}
            changed = sorted(k for k, v in self._night_plan().items() if recorded.get(k) != v)
            if changed:  # one life under one product: nights of two recipes measure neither
                raise PlanMismatchError(
                    f"{path}'s nights ran with "
                    + ", ".join(f"{k}={recorded.get(k)!r}" for k in changed)
                    + "; these settings now give "
                    + ", ".join(f"{k}={self._night_plan()[k]!r}" for k in changed)
                    + ": use another --out, or the same agent-cl.toml / AGENT_CL_SLEEP_* settings"
                )
            return data
        return {
            "experiment": "long-run",
            "sizing": self.plan.sizing(),
            "plan": self.plan.to_dict(),
            "command": command,
            "night_plan": self._night_plan(),  # the settings the command line does not show
            "model": self.settings.model_dir.name,
            "days": {},
            "nights": {},
            "mornings": {},
        }

    def _night_plan(self) -> dict[str, Any]:
        """What each night does under these settings (recipe, replay, budget, gate, LoRA)."""
        plan = dataclasses.asdict(NightPlan.from_settings(self.settings))
        return {k: list(v) if isinstance(v, tuple) else v for k, v in plan.items()}  # as JSON

    def _save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.out / RESULTS, self.results)

    @property
    def world(self) -> _World:
        if self._world is None:
            self._world = _World(self.settings, self.plan, self.say)
        return self._world

    # -- the life ---------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Every day, night and morning not yet in results.json; returns the results."""
        self._save()
        try:
            for night in range(1, self.plan.nights + 1):
                key = str(night)
                for stage, live in zip(STAGES, (self.day, self.night, self.morning), strict=True):
                    if key in self.results[stage]:
                        continue
                    started = time.perf_counter()
                    row = live(night)
                    # wall time of the stage, model loading included (a night keeps its own:
                    # the sleep job alone)
                    row.setdefault("seconds", time.perf_counter() - started)
                    self.results[stage][key] = row
                    self._save()
        finally:
            if self._world is not None:
                self._world.close()
        self.results["summary"] = summarise(self.results)
        self._save()
        return self.results

    def day(self, night: int) -> dict[str, Any]:
        tasks = self.curriculum.days[night]
        self.say(f"day {night}: {len(tasks)} tasks through the agent")
        world = self.world
        done: dict[str, dict[str, int]] = {}
        taught: list[str] = []  # the skills that reached the night (a recurring fact re-teaches)
        for task in tasks:
            logged, by_served = world.work(self.curriculum, task)
            row = done.setdefault(f"{task.kind}/{task.mode}", {"asked": 0, "logged": 0})
            row["asked"] += 1
            row["logged"] += int(logged)
            row["served_solved"] = row.get("served_solved", 0) + int(by_served)
            if logged and task.mode != "recur":
                taught.append(task.key)
        pending = world.store.count(tenant=TENANT, status=DemoStatus.PENDING)
        self.say(f"day {night}: {pending} demonstrations pending")
        return {"tasks": done, "taught": taught, "pending_after_day": pending}

    def night(self, night: int) -> dict[str, Any]:
        world = self.world
        self.say(f"night {night}: sleep ({world.night.plan.method}, the product's defaults)")
        overrides: dict[str, Any] = {"on_publish": world.swap, "on_step": self.on_step}
        if world.retention is not None:
            overrides["retention"] = world.retention
        started = time.perf_counter()
        report = world.night.job(TENANT, **overrides).run()
        seconds = time.perf_counter() - started
        gate = report.gate or {}
        self.say(f"night {night}: {report.status} in {seconds:.0f} s ({gate.get('reason', '')})")
        return {
            "status": report.status,
            "demonstrations": report.demonstrations,
            "replayed": report.replayed,
            "retried": report.retried,
            "steps": report.train.get("steps"),
            "seconds": seconds,
            "train_seconds": report.train.get("seconds"),
            "fold": report.train.get("fold"),
            "trained_on": [report.train.get("device"), report.train.get("dtype")],
            "version": report.adapter_version,
            "gate": {
                k: gate.get(k) for k in ("passed", "reason", "before", "after", "base", "shrink")
            },
            "error": report.error,
            "pending_after_night": world.store.count(tenant=TENANT, status=DemoStatus.PENDING),
        }

    def morning(self, night: int) -> dict[str, Any]:
        """Every night's held-out questions on the served model; retention and KL against the
        base as the gate measured the served candidate; text memory every few mornings."""
        world = self.world
        # A night's skills are what its day taught it; the tasks the agent failed by day (lost,
        # as in an app) are scored apart, so that a night is not marked down for them.
        every: list[Question] = []
        is_taught: list[bool] = []
        for n in range(1, night + 1):
            taught = self.results["days"][str(n)].get("taught")  # None: recorded before it was
            for task in self.curriculum.days[n]:
                questions = self.curriculum.held_out(task)
                every += questions
                is_taught += [taught is None or task.key in taught] * len(questions)
        answers = world.answers([q.conversation for q in every])
        hits = [q.is_correct(a) for q, a in zip(every, answers, strict=True)]
        asked = [q for q, t in zip(every, is_taught, strict=True) if t]
        record: dict[str, Any] = {
            "served_version": world.backend.adapter_version,
            "skills": skill_scores(asked, [h for h, t in zip(hits, is_taught, strict=True) if t]),
            "skills_all_tasks": skill_scores(every, hits),
            **self._served_scores(night),
        }
        if night % self.plan.memory_every == 0 or night == self.plan.nights:
            self.say(f"morning {night}: text memory on {len(asked)} questions")
            record["text_memory"] = skill_scores(asked, world.with_memory(asked, base=True))
            record["agent_retrieval"] = skill_scores(asked, world.with_memory(asked, base=False))
        skills = record["skills"]["by_night"]
        self.say(
            f"morning {night}: v{record['served_version']} answers this night's skills "
            f"{skills.get(str(night), {}).get('acc', float('nan')):.2f}, robust retention "
            f"{record['retention']['robust']:.3f} (base {record['base']['robust']:.3f})"
        )
        return record

    def _served_scores(self, night: int) -> dict[str, Any]:
        """Retention (robust, full, per kind) and KL of the served model, as the gate scored
        it: after a publish the candidate's scores, after a rejection the kept version's."""
        report = self.results["nights"][str(night)]
        gate = report["gate"]
        served = gate.get("after") if report["status"] == "published" else gate.get("before")
        previous = self.results["mornings"].get(str(night - 1), {})
        if not served:  # nothing to do tonight: the served model is yesterday's
            return {k: previous.get(k) for k in ("retention", "base", "kl_from_base")}
        base = gate.get("base") or served
        kl = served.get("kl_from_base")
        if report["status"] != "published":
            kl = previous.get("kl_from_base")
        return {
            "retention": _retention(served),
            "base": _retention(base),
            "kl_from_base": kl,
        }


class _World:
    """What the run needs loaded: the served model, the store, the agents, the night."""

    def __init__(self, settings: Settings, plan: LongRunPlan, say: Say) -> None:
        from langchain.agents import create_agent

        from agent_cl.evals.tools_skill import called_lab_leader, lab_leader
        from agent_cl.graphs.middleware import DemonstrationMiddleware
        from agent_cl.memory.chroma import ChromaDemonstrationStore
        from agent_cl.night.gate import retention_items
        from agent_cl.night.night import Night
        from agent_cl.serving.chat_model import BackendChatModel
        from agent_cl.serving.local_backend import LocalBackend

        self.plan = plan
        say(f"loading {settings.model_dir.name} (in-process backend) and the Chroma store")
        self.store = ChromaDemonstrationStore.open(settings.store_dir)
        self.night = Night(settings, self.store)
        self.backend = LocalBackend(settings.model_dir, torch_threads=settings.torch_threads)
        current = self.night.registry(TENANT).current()
        if current is not None:  # a resumed run serves what the registry serves
            self.backend.swap(current.version, current.path)
        self._base: LocalBackend | None = None
        self._settings = settings
        self.retention = retention_items(plan.retention_limit) if plan.retention_limit else None
        self.chat = BackendChatModel(backend=self.backend, max_new_tokens=plan.max_new_tokens)
        self._checks: dict[str, Callable[[str], bool]] = {}
        self.agent = build_agent(
            self.chat, self.store, tenant=TENANT, verifier=self._verified, k=TEXT_K
        )
        self.tool_memory = DemonstrationMiddleware(
            self.store, verifier=called_lab_leader, skill="tools", tenant=TENANT, k=TEXT_K
        )
        self.feedback_memory = DemonstrationMiddleware(
            self.store, verifier=_undecided, skill="facts", tenant=TENANT, k=TEXT_K
        )
        self._create_agent, self._lab_leader = create_agent, lab_leader

    def _verified(self, state) -> bool:
        check = self._checks.get(state.get("question", ""))
        return bool(check and check(state.get("answer", "")))

    # -- the day ----------------------------------------------------------------------------
    def work(self, curriculum: Curriculum, task: Task) -> tuple[bool, bool]:
        """One task through the agent; (logged, solved by the served model itself)."""
        if task.kind == "tools":
            return self._tool_task(curriculum, task)
        if task.mode == "correct":
            return self._corrected_task(curriculum, task)
        if task.kind == "json":
            return self._json_task(curriculum, task)
        fact = curriculum.facts[task.index]
        question = fact.question  # a recurring fact comes back as it was asked first
        self._checks[question] = fact.is_correct
        task_input = {"question": question, "skill": "facts", "expected": fact.answer}
        if task.mode == "new":
            task_input["context"] = fact.note
        logged = bool(self.agent.invoke(task_input).get("demonstration_id"))
        return logged, logged

    def _json_task(self, curriculum: Curriculum, task: Task) -> tuple[bool, bool]:
        """The served model tries the format with nothing but its memory; when it fails, a
        stronger model's answer is logged (the format is never stated, only shown: the base
        answers 0/30 without an example)."""
        item = curriculum.json_tasks[task.index]
        self._checks[item.question] = item.is_correct
        task_input = {"question": item.question, "skill": "json", "expected": item.answer}
        if self.agent.invoke(task_input).get("demonstration_id"):
            return True, True
        teacher = Demonstrator(messages=iter([AIMessage(item.answer)]))
        agent = build_agent(teacher, self.store, tenant=TENANT, verifier=self._verified, k=0)
        return bool(agent.invoke(task_input).get("demonstration_id")), False

    def _tool_task(self, curriculum: Curriculum, task: Task) -> tuple[bool, bool]:
        from langchain_core.messages import HumanMessage

        item = curriculum.tools[task.index]
        question = {"messages": [HumanMessage(item.question)]}
        served = self._create_agent(
            self.chat, tools=[self._lab_leader], middleware=[self.tool_memory]
        )
        try:
            state = served.invoke(question, {"recursion_limit": 6})
            solved = bool(state.get("agent_cl_demonstration_id"))
        except Exception:  # a run that loops or breaks is a failed run, as in an app
            solved = False
        if solved:
            return True, True
        teacher = self._create_agent(
            Demonstrator(messages=iter(ideal_run(item))),
            tools=[self._lab_leader],
            middleware=[self.tool_memory],
        )
        state = teacher.invoke(question)
        return bool(state.get("agent_cl_demonstration_id")), False

    def _corrected_task(self, curriculum: Curriculum, task: Task) -> tuple[bool, bool]:
        """A fact asked with no note; the user's feedback confirms or corrects the answer."""
        from langchain_core.messages import HumanMessage

        fact = curriculum.facts[task.index]
        agent = self._create_agent(self.chat, middleware=[self.feedback_memory])
        state = agent.invoke({"messages": [HumanMessage(fact.question)]})
        if not state.get("agent_cl_demonstration_id"):
            return False, False  # a blank answer: the middleware logs nothing to correct
        answer = message_text(state["messages"][-1])
        right = fact.is_correct(answer)
        correction = None if right else fact.answer_sentence
        kept = self.feedback_memory.record_outcome(
            state["agent_cl_run_id"], success=right, correction=correction
        )
        return bool(kept), right

    # -- the night and the morning ------------------------------------------------------------
    def swap(self, version) -> None:
        self.backend.swap(version.version, version.path)

    def answers(self, conversations: Sequence[list[dict]], *, base: bool = False) -> list[str]:
        if not conversations:
            return []
        backend = self.base_backend() if base else self.backend
        return backend.generate(list(conversations), max_new_tokens=self.plan.max_new_tokens).texts

    def base_backend(self):
        """The base model alone, for text memory without weights (loaded once, on demand)."""
        from agent_cl.serving.local_backend import LocalBackend

        if self._base is None:
            self._base = LocalBackend(
                self._settings.model_dir, torch_threads=self._settings.torch_threads
            )
        return self._base

    def with_memory(self, questions: Sequence[Question], *, base: bool) -> list[bool]:
        """Right answers with text memory: the base with plain top-k (the LangMem-style
        baseline), or the served model with the agent's own cut (cosine >= 0.8)."""
        cut = 0.0 if base else DEFAULT_MIN_SCORE
        convs = []
        for q in questions:
            hits = self.store.search(q.text, k=TEXT_K, tenant=TENANT)
            retrieved = [h.demonstration for h in hits if h.score >= cut]
            convs.append(with_demonstrations(q.conversation, retrieved))
        answers = self.answers(convs, base=base)
        return [q.is_correct(a) for q, a in zip(questions, answers, strict=True)]

    def close(self) -> None:
        self.store.close()


def _undecided(messages) -> None:
    """No verifier can tell a fact asked without its note: the user's feedback decides."""
    return None


def _retention(scores: dict[str, Any]) -> dict[str, Any]:
    return {
        "robust": scores.get("retention"),
        "full": scores.get("retention_full"),
        "kinds": scores.get("retention_kinds") or {},
    }


def skill_scores(questions: Sequence[Question], hits: Sequence[bool]) -> dict[str, Any]:
    """Accuracy over everything, per night that taught it, and per kind."""

    def acc(selected: list[bool]) -> dict[str, Any]:
        return {"acc": sum(selected) / len(selected) if selected else None, "n": len(selected)}

    by_night: dict[str, list[bool]] = {}
    by_kind: dict[str, list[bool]] = {}
    for q, hit in zip(questions, hits, strict=True):
        by_night.setdefault(str(q.night), []).append(bool(hit))
        by_kind.setdefault(q.kind, []).append(bool(hit))
    return {
        **acc([bool(h) for h in hits]),
        "by_night": {n: acc(v) for n, v in by_night.items()},
        "by_kind": {k: acc(by_kind[k]) for k in KINDS if k in by_kind},
    }


def summarise(results: dict[str, Any]) -> dict[str, Any]:
    """The run's headline: what the last morning shows, and the worst night."""
    mornings = results["mornings"]
    nights = results["nights"]
    if not mornings:
        return {}
    last_key = max(mornings, key=int)
    last = mornings[last_key]
    kept = _night_accuracies(last["skills"])
    # the same over every task asked, the ones lost by day included (runs from before the
    # split scored only these)
    kept_all = _night_accuracies(last.get("skills_all_tasks") or last["skills"])
    # the morning after each night, on that night's own skills
    fresh = [
        m["skills"]["by_night"].get(n, {}).get("acc")
        for n, m in mornings.items()
        if m["skills"]["by_night"].get(n, {}).get("acc") is not None
    ]
    retention = last.get("retention") or {}
    base = last.get("base") or {}
    drop = (
        base["robust"] - retention["robust"]
        if retention.get("robust") is not None and base.get("robust") is not None
        else None
    )
    tools = last["skills"]["by_kind"].get("tools", {}).get("acc")
    return {
        "nights": len(nights),
        "published": sum(n["status"] == "published" for n in nights.values()),
        "rejected": sum(n["status"] == "rejected" for n in nights.values()),
        "skills_kept_min": min(kept) if kept else None,
        "skills_kept_mean": statistics.mean(kept) if kept else None,
        "all_tasks_kept_min": min(kept_all) if kept_all else None,
        "fresh_min": min(fresh) if fresh else None,
        "robust_drop_vs_base": drop,
        "kl_from_base": last.get("kl_from_base"),
        "tools_heldout": tools,
        "max_night_s": max((n["seconds"] for n in nights.values()), default=None),
        # the whole life's wall time; None for runs made before days and mornings were timed
        "run_s": _total_seconds(results),
        "demonstrations": sum(n["demonstrations"] for n in nights.values()),
    }


def _night_accuracies(scores: dict[str, Any]) -> list[float]:
    return [v["acc"] for v in scores["by_night"].values() if v["acc"] is not None and v["n"]]


def _total_seconds(results: dict[str, Any]) -> float | None:
    rows = [row for stage in STAGES for row in results[stage].values()]
    if not rows or any("seconds" not in row for row in rows):
        return None
    return sum(row["seconds"] for row in rows)


def final_line(summary: dict[str, Any]) -> str:
    def fmt(value: Any) -> str:
        if value is None:
            return "n/a"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    keys = (
        "nights",
        "published",
        "skills_kept_min",
        "robust_drop_vs_base",
        "tools_heldout",
        "max_night_s",
    )
    return "long_run " + " ".join(f"{k}={fmt(summary.get(k))}" for k in keys)
