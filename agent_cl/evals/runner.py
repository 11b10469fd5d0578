"""`agent-cl eval`: weights versus text memory, measured unit by unit and resumable.

A run is a list of *units* (the base model's retention, a suite's teacher, one method on one
suite and seed, one night of a sequence, one scaling size). Each finished unit is written to
`results.json` at once (atomically), and trained adapters are kept under `adapters/`, so a
killed run resumes where it stopped and repeats no training. The report is built from whatever
`results.json` holds.
"""

from __future__ import annotations

import gc
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

from agent_cl.config import Settings
from agent_cl.durable import (
    atomic_directory,
    atomic_write_json,
    exclusive_lock,
    read_json,
    remove_partial_directories,
)
from agent_cl.evals import measure
from agent_cl.evals.intervals import unpack
from agent_cl.evals.plan import METHODS, EvalPlan
from agent_cl.evals.progress import EvalProgress
from agent_cl.evals.suites import Suite, build_suite
from agent_cl.models.provision import provisioned_model_dir

RESULTS = "results.json"
RESULTS_VERSION = 1


class PlanMismatchError(ValueError):
    """The output folder holds results measured at other sizes."""


@dataclass
class Unit:
    key: str
    label: str
    measure: Callable[[], dict[str, Any]]


class Results:
    """`results.json`: the plan's sizes and one entry per finished unit."""

    def __init__(self, out: Path, plan: EvalPlan) -> None:
        self.path = out / RESULTS
        if self.path.exists():
            data = read_json(self.path, fix=f"move {self.path} aside to start the run afresh")
            stored = data.get("sizing", {})
            differs = {
                k: (stored.get(k), v) for k, v in plan.sizing().items() if stored.get(k) != v
            }
            if differs:
                shown = ", ".join(
                    f"{k} {old} (stored) vs {new}" for k, (old, new) in differs.items()
                )
                raise PlanMismatchError(
                    f"{self.path} was measured with other sizes ({shown}); "
                    "use another --out, or the same sizes to resume it"
                )
            self.data = data
        else:
            self.data = {"version": RESULTS_VERSION, "sizing": plan.sizing(), "units": {}}
        self.data["plan"] = plan.to_dict()

    def __contains__(self, key: str) -> bool:
        return key in self.data["units"]

    def __getitem__(self, key: str) -> dict[str, Any]:
        return self.data["units"][key]

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.data["units"][key] = value
        self.data["updated"] = time.time()
        atomic_write_json(self.path, self.data)


class EvalRunner:
    def __init__(
        self,
        settings: Settings,
        plan: EvalPlan,
        out: Path,
        progress: EvalProgress | None = None,
        command: str | None = None,
    ) -> None:
        self.settings, self.plan, self.out = settings, plan, Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.results = Results(self.out, plan)
        commands = self.results.data.setdefault("commands", [])
        if command and command not in commands:  # the report names every run that fed it
            commands.append(command)
        self.progress = progress or EvalProgress()
        self.model_dir = provisioned_model_dir(settings.model_dir, settings.models_dir)
        self._model: measure.ServedModel | None = None
        self._retention: measure.Retention | None = None
        self._memories: dict[str, measure.TextMemory] = {}

    # -- the run ------------------------------------------------------------------------------
    def units(self) -> list[Unit]:
        plan, seeds = self.plan, range(self.plan.seeds)
        specs = [("base", "base model: retention", self._base)]
        if "one-night" in plan.experiments:
            for suite, seed in product(plan.suites, seeds):
                where = f"{suite}/s{seed}"
                specs.append(
                    (f"teacher/{where}", f"{where}: in-context teacher", self._teacher(suite, seed))
                )
                specs += [
                    (
                        f"one-night/{where}/{m}",
                        f"one night, {where}: {m}",
                        self._one_night(suite, seed, m),
                    )
                    for m in plan.methods
                ]
        if "sequential" in plan.experiments:
            nights = range(len(plan.suites) + 1)
            specs += [
                (
                    f"sequential/{m}/s{seed}/night{night}",
                    f"sequential, {m} s{seed}: night {night}",
                    self._sequential(m, seed, night),
                )
                for m, seed, night in product(plan.sequential_methods, seeds, nights)
            ]
        if "scaling" in plan.experiments:
            specs += [
                (
                    f"scaling/{plan.scaling_suite}/n{n}/s{seed}",
                    f"scaling, {n} demonstrations s{seed}",
                    self._scaling(n, seed),
                )
                for n, seed in product(plan.scaling_sizes, seeds)
            ]
        return [Unit(*spec) for spec in specs]

    def run(self) -> dict[str, Any]:
        """Measure every unit not in results.json yet. One run per folder at a time: a second
        one would write the same results and adapters (LockedError names the folder)."""
        units = self.units()
        done = sum(u.key in self.results for u in units)
        busy = f"another agent-cl eval is writing {self.out}; wait for it or use another --out"
        with exclusive_lock(self.out / ".eval.lock", busy=busy):
            shutil.rmtree(self.out / "work", ignore_errors=True)  # scratch of a killed run
            if (self.out / "adapters").exists():  # half-written by a killed training
                remove_partial_directories(self.out / "adapters")
            self.progress.begin(len(units), done)
            self._measure(units)
        return self.results.data

    def _measure(self, units: list[Unit]) -> None:
        try:
            for unit in units:
                if unit.key in self.results:
                    continue
                self.progress.unit(unit.label)
                started = time.perf_counter()
                value = unit.measure()
                value["seconds"] = time.perf_counter() - started
                self.results.put(unit.key, value)
                self.progress.advance()
        finally:
            self.close()

    def close(self) -> None:
        for memory in self._memories.values():
            memory.close()
        self._memories.clear()
        shutil.rmtree(self.out / "work", ignore_errors=True)

    # -- shared parts ---------------------------------------------------------------------------
    @property
    def model(self) -> measure.ServedModel:
        if self._model is None:
            self._model = measure.ServedModel(
                self.model_dir,
                torch_threads=self.settings.torch_threads,
                max_new_tokens=self.plan.max_new_tokens,
            )
        return self._model

    @property
    def retention(self) -> measure.Retention:
        if self._retention is None:
            self._retention = measure.Retention(self.plan.retention_limit)
        return self._retention

    def memory(self, suite: Suite, n: int) -> measure.TextMemory:
        name = f"{suite.name}-s{suite.seed}-n{n}"
        if name not in self._memories:
            # Rebuilt from the suite each run, in a fresh folder: Chroma cannot reopen, in the
            # same process, a path whose files were deleted under its cached client.
            path = self.out / "work" / "stores" / f"{name}-{uuid.uuid4().hex[:8]}"
            self._memories[name] = measure.TextMemory(
                path, suite, k=self.plan.text_k, min_score=self.plan.min_score
            )
        return self._memories[name]

    def adapter(
        self, key: str, recipe: str, suite: Suite, steps: int, init: Path | None = None
    ) -> tuple[Path, dict[str, Any]]:
        """Train (or find, on a resumed run) the adapter `key`; its training facts are in
        `train.json` beside it."""
        from agent_cl.consolidation.trainer import ConsolidationTrainer
        from agent_cl.consolidation.training_config import ConsolidationConfig
        from agent_cl.scoring.retention import load_kl_prompts

        path = self.out / "adapters" / key.replace("/", "-")
        if (path / "train.json").exists():
            return path, read_json(path / "train.json", fix=f"delete {path} to train it again")
        started = time.perf_counter()
        config = ConsolidationConfig(method=recipe, steps=steps, seed=suite.seed, **self.plan.extra)
        trainer = ConsolidationTrainer(
            self.model_dir, config, torch_threads=self.settings.torch_threads, init_adapter=init
        )
        kl_prompts = list(load_kl_prompts())[: self.plan.kl_prompts]
        with atomic_directory(path, replace=True) as tmp:
            result = trainer.train(
                suite.demonstrations,
                tmp,
                on_step=self.progress.step,
                exclude_questions=[item.question for item in suite.items],
            )
            meta = {
                "recipe": recipe,
                "steps": result.steps,
                "train_seconds": result.seconds,
                "seconds_per_step": result.seconds_per_step,
                "final_loss": result.final_loss,
                "augmented": result.augmented,
                "kl_from_base": trainer.candidate().kl_from_base(kl_prompts),
                "init": str(init) if init else None,
            }
            # The whole night's compute: loading, one-off targets, training, the KL check.
            meta["night_seconds"] = time.perf_counter() - started
            atomic_write_json(tmp / "train.json", meta)
        del trainer
        gc.collect()
        return path, meta

    def _retention_of(self, hits: list[bool]) -> dict[str, Any]:
        scores = self.retention.score(hits)
        return {
            "retention": scores["retention"],
            "retention_full": scores["retention_full"],
            "retention_kinds": scores.get("retention_kinds", {}),
            "retention_hits": "".join("1" if h else "0" for h in hits),
        }

    def _base_hits(self) -> list[bool]:
        return unpack(self.results["base"]["retention_hits"])

    # -- units ------------------------------------------------------------------------------
    def _base(self) -> dict[str, Any]:
        self.model.serve(None)
        hits, _ = self.retention.hits(self.model)
        return {**self._retention_of(hits), "n_retention": len(hits)}

    def _teacher(self, name: str, seed: int) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            suite = build_suite(name, self.plan.n_demos, seed)
            self.model.serve(None)
            counts = {
                f"n_{split}": len(suite.split(split))
                for split in ("in", "out")
                if suite.split(split)
            }
            return {**measure.teacher_accuracy(self.model, suite), **counts}

        return run

    def _one_night(self, name: str, seed: int, method: str) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            plan, spec = self.plan, METHODS[method]
            suite = build_suite(name, plan.n_demos, seed)
            row: dict[str, Any] = {"method": method, "suite": name, "seed": seed}
            adapter, trained = (
                None,
                {"train_seconds": 0.0, "night_seconds": 0.0, "steps": 0, "kl_from_base": 0.0},
            )
            if spec["recipe"] is not None:
                trained_key = self._one_night_key(name, seed, spec["recipe"])
                adapter, trained = self.adapter(
                    trained_key, spec["recipe"], suite, plan.night_steps(plan.n_demos)
                )
            memory = self.memory(suite, plan.n_demos) if spec["memory"] else None
            if memory is not None and "min_score" in spec:
                memory = memory.gated(spec["min_score"])
            self.model.serve(adapter)
            convs = measure.conversations(suite.items, memory)
            row.update(measure.accuracy(self.model, suite, convs))
            row["latency_ms"] = self.model.latency_ms(convs, plan.latency_requests)
            row["prefill_ms"] = self.model.latency_ms(
                convs, plan.latency_requests, max_new_tokens=1
            )
            if adapter is None and memory is None:  # the base model itself, measured once
                hits, retrieved = self._base_hits(), 0
            else:
                without = self._without_memory(name, seed, method)
                hits, retrieved = self.retention.hits(self.model, memory, without)
            row.update(self._retention_of(hits), retention_prompts_with_memory=retrieved)
            row.update(
                {k: trained[k] for k in ("train_seconds", "night_seconds", "steps", "kl_from_base")}
            )
            return row

        return run

    @staticmethod
    def _one_night_key(suite: str, seed: int, recipe: str) -> str:
        """One adapter per (suite, seed, recipe) at the night's size: the sequential run's
        first night and the scaling point of that size are the same training, trained once."""
        return f"one-night/{suite}/s{seed}/{recipe}"

    def _without_memory(self, name: str, seed: int, method: str) -> list[bool] | None:
        """Retention hits of the same weights with nothing retrieved, when already measured."""
        spec = METHODS[method]
        if not spec["memory"]:
            return None
        if spec["recipe"] is None:
            return self._base_hits()
        twin = next(
            m for m, s in METHODS.items() if s["recipe"] == spec["recipe"] and not s["memory"]
        )
        key = f"one-night/{name}/s{seed}/{twin}"
        return unpack(self.results[key]["retention_hits"]) if key in self.results else None

    def _sequential(self, method: str, seed: int, night: int) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            plan = self.plan
            suites = [build_suite(name, plan.n_demos, seed) for name in plan.suites]
            adapter = None
            for i, suite in enumerate(suites[:night]):  # the chain, trained on first need
                key = f"sequential/{method}/s{seed}/night{i + 1}"
                if i == 0:  # the first night is one-night's training of that suite exactly
                    key = self._one_night_key(suite.name, seed, METHODS[method]["recipe"])
                adapter, _ = self.adapter(
                    key, METHODS[method]["recipe"], suite, plan.night_steps(plan.n_demos), adapter
                )
            self.model.serve(adapter)
            row: dict[str, Any] = {"method": method, "seed": seed, "night": night}
            row["trained_on"] = plan.suites[night - 1] if night else None
            row["skills"] = list(plan.suites)
            for suite in suites:
                scores = measure.accuracy(
                    self.model, suite, measure.conversations(suite.items, None)
                )
                row[f"acc_{suite.name}"] = scores["acc_in"]
            if night == 0:
                hits = self._base_hits()
            else:
                hits, _ = self.retention.hits(self.model)
            row.update(self._retention_of(hits))
            return row

        return run

    def _scaling(self, n: int, seed: int) -> Callable[[], dict[str, Any]]:
        def run() -> dict[str, Any]:
            plan = self.plan
            suite = build_suite(plan.scaling_suite, n, seed)
            key = f"scaling/{plan.scaling_suite}/n{n}/s{seed}"
            if n == plan.n_demos and plan.scaling_steps == plan.night_steps(n):
                key = self._one_night_key(suite.name, seed, METHODS["default"]["recipe"])
            adapter, trained = self.adapter(
                key, METHODS["default"]["recipe"], suite, plan.scaling_steps
            )
            self.model.serve(None)
            memory = self.memory(suite, n)
            text = measure.accuracy(self.model, suite, measure.conversations(suite.items, memory))
            self.model.serve(adapter)
            row: dict[str, Any] = {"n_demos": n, "seed": seed, "suite": plan.scaling_suite}
            row.update(
                measure.accuracy(self.model, suite, measure.conversations(suite.items, None))
            )
            row.update({f"text_{k}": v for k, v in text.items() if k.startswith("acc_")})
            hits, _ = self.retention.hits(self.model)
            row.update(self._retention_of(hits))
            row.update(
                {k: trained[k] for k in ("train_seconds", "night_seconds", "steps", "kl_from_base")}
            )
            return row

        return run
