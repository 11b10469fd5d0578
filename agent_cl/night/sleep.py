"""The sleep job: claim -> train -> gate -> publish -> swap -> mark, journaled and resumable.

Consistency rules, whatever instant the process dies:
- a demonstration is marked consolidated only after an adapter trained on it is published;
  until then it is `claimed` by the run named in the journal;
- a version appears in the registry complete or not at all (the registry's temp dir + rename);
- serving is told only about published versions (through `on_publish`; this module never talks
  to a server), so a backend always serves a version that exists.
The journal (`journal.py`) records the last completed stage; running the job again resumes the
unfinished run from there (training from its last checkpoint) instead of starting over.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import math
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agent_cl.adapters.registry import (
    AdapterRegistry,
    AdapterVersion,
    UnknownAdapterVersionError,
)
from agent_cl.adapters.shrink import ShrinkUnavailableError, write_shrunk_adapter
from agent_cl.config import Tenant, TenantPaths
from agent_cl.consolidation.candidate import CandidateModel
from agent_cl.consolidation.trainer import ConsolidationTrainer, StepRecord
from agent_cl.consolidation.training_config import ConsolidationConfig
from agent_cl.durable import LockedError, atomic_directory, remove_partial_directories
from agent_cl.faults import fault_point
from agent_cl.memory.base import DemonstrationStore
from agent_cl.memory.schema import Demonstration, DemoStatus
from agent_cl.models.chat import ChatMessage
from agent_cl.models.provision import read_manifest
from agent_cl.night.gate import (
    Gate,
    GateConfig,
    GateDecision,
    GateItem,
    GateScores,
    Generate,
    demonstration_items,
)
from agent_cl.night.journal import Journal, JournalEntry, Stage
from agent_cl.night.reports import SleepReport, write_report
from agent_cl.scoring.retention import load_kl_prompts

log = logging.getLogger(__name__)

CANDIDATE = "candidate"  # the night's trained adapter, in the run's folder
SHRUNK = "shrunk"  # a share of its update, when the whole was rejected (adapters/shrink.py)


class SleepAlreadyRunningError(RuntimeError):
    """Another sleep job holds this tenant's lock."""


class Candidate(Protocol):
    """What a check may ask of the freshly trained, not yet published adapter."""

    def generate(
        self, conversations: list[list[ChatMessage]], *, max_new_tokens: int = 48
    ) -> list[str]: ...

    def kl_from_base(self, prompts: list[str], *, max_new_tokens: int = 24) -> float: ...


Check = Callable[[Candidate], dict[str, Any]]


@dataclass
class SleepJob:
    """One tenant's consolidation. Build it, call `run()`; a crashed run resumes on the next."""

    store: DemonstrationStore
    registry: AdapterRegistry
    model_dir: Path
    config: ConsolidationConfig = field(default_factory=ConsolidationConfig)
    tenant: str = "default"
    state_dir: Path | None = None  # journal, checkpoints, lock (default: inside the registry)
    gate: GateConfig | None = field(default_factory=GateConfig)  # None: publish unconditionally
    held_out: Sequence[GateItem] = ()  # new-skill items for the gate (e.g. paraphrases)
    retention: Sequence[GateItem] | None = None  # None: the frozen retention set
    check: Check | None = None  # extra diagnostics on the candidate, recorded in the report
    on_publish: Callable[[AdapterVersion], None] | None = None
    on_step: Callable[[StepRecord], None] | None = None
    reports_dir: Path | None = None
    torch_threads: int = 2
    checkpoint_every: int = 8
    replay: int = 0  # consolidated demonstrations mixed into each night's training
    # The share of `replay` drawn first from what the newest version consolidated: the night
    # just learned is the one the next night overwrites most (0: a uniform draw).
    replay_recent: float = 0.0
    continue_from_current: bool = True  # adapter N+1 starts from adapter N
    # When set, the night trains this many steps per demonstration it claimed (replayed ones
    # included) instead of `config.steps`: the default recipe was measured at 8 (32 passes
    # over each demonstration at batch 4), and a night with more work needs more steps.
    steps_per_demo: int | None = None
    # Steps each replayed demonstration adds, and its weight in the night's data beside a new
    # one's `steps_per_demo` (None: the same): a large replay drawn lightly covers the pool
    # without taking the new demonstrations' steps. Needs `steps_per_demo`.
    replay_steps_per_demo: int | None = None
    # The night's budget: at most this many pending demonstrations, oldest first (None: all).
    max_demonstrations: int | None = None
    # Nights a demonstration may be trained in before a rejection is final: a rejected night's
    # demonstrations below it go back to pending (oldest first, so the next night takes them).
    max_attempts: int = 1

    def __post_init__(self) -> None:
        # The knobs are validated once, in Settings (the Night builds jobs from it).
        self.tenant = Tenant(self.tenant)
        if self.max_demonstrations is not None and self.max_demonstrations < 1:
            raise ValueError(f"max_demonstrations must be >= 1, got {self.max_demonstrations}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.replay_steps_per_demo is not None:
            if self.steps_per_demo is None:
                raise ValueError("replay_steps_per_demo needs steps_per_demo (a night by demos)")
            if self.replay_steps_per_demo < 1:
                raise ValueError(
                    f"replay_steps_per_demo must be >= 1, got {self.replay_steps_per_demo}"
                )
        if not 0.0 <= self.replay_recent <= 1.0:
            raise ValueError(f"replay_recent must be in [0, 1], got {self.replay_recent}")
        self.model_dir = Path(self.model_dir)
        root = self.state_dir or self.registry.root / TenantPaths.SLEEP_DIR
        self.journal = Journal(Path(root))
        self._candidate: CandidateModel | None = None

    # -- entry point -----------------------------------------------------------------------
    def run(self) -> SleepReport:
        self.journal.root.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as held:
            try:
                held.enter_context(self.registry.lock())
            except LockedError as exc:
                raise SleepAlreadyRunningError(
                    f"a sleep job or rollback for tenant {self.tenant!r} is running ({exc})"
                ) from exc
            try:
                return self._run()
            finally:
                self._candidate = None

    def _run(self) -> SleepReport:
        start = time.perf_counter()
        entry = self.journal.load()
        report = SleepReport(
            uuid.uuid4().hex[:12], self.tenant, "nothing_to_do", self.config.method
        )
        if entry is not None:
            report.run_id, report.resumed_from = entry.run_id, str(entry.stage)
            log.warning("resuming sleep run %s from stage %s", entry.run_id, entry.stage)
        else:
            entry = self._claim(report.run_id)
            if entry is None:
                return self._finish(report, start)
        report.demonstrations = len(entry.demonstration_ids)
        report.replayed = len(entry.replay_ids)
        report.init_version = entry.init_version
        try:
            if entry.stage in (Stage.CLAIMED, Stage.TRAINING):
                self._train(entry, report)
            if entry.stage == Stage.TRAINED:
                self._gate(entry, report)
            if entry.stage == Stage.GATED and not entry.gate.get("passed", True):
                return self._reject(entry, report, start)
            if entry.stage == Stage.GATED:
                self._publish(entry)
        except BaseException as exc:
            if isinstance(exc, Exception):  # a crash (KeyboardInterrupt too) keeps the journal
                self._abandon(entry, report, exc)
                self._finish(report, start)
            raise
        if entry.stage in (Stage.PUBLISHED, Stage.SWAPPED) and self._publish_lost(entry):
            return self._lost(entry, report, start)
        report.gate = entry.gate
        report.adapter_version = entry.published_version
        if entry.stage == Stage.PUBLISHED:
            self._swap(entry)
        report.swapped = self.on_publish is not None and entry.swap_error is None
        report.error = entry.swap_error
        if entry.stage == Stage.SWAPPED:
            self.store.set_status(
                entry.demonstration_ids,
                DemoStatus.CONSOLIDATED,
                adapter_version=entry.published_version,
                tenant=self.tenant,
            )
            fault_point("after_mark")
            self.journal.write(entry, Stage.DONE)
        self.journal.archive(entry)
        report.status = "published"
        return self._finish(report, start)

    # -- stages ----------------------------------------------------------------------------
    def _claim(self, run_id: str) -> JournalEntry | None:
        # Oldest first, up to the night's budget: the rest stays pending for the next night.
        pending = sorted(self.store.pending(self.tenant), key=lambda d: (d.created_at, d.id))
        pending = pending[: self.max_demonstrations]
        if not pending:
            return None
        current = self.registry.current() if self.continue_from_current else None
        entry = JournalEntry(
            run_id=run_id,
            tenant=self.tenant,
            stage=Stage.CLAIMED,
            demonstration_ids=[d.id for d in pending],
            replay_ids=self._replay_sample(run_id),
            init_version=current.version if current else None,
        )
        # The journal first: a kill between the two writes leaves a journal naming pending
        # demonstrations, which the resumed run simply claims again.
        self.journal.write(entry, Stage.CLAIMED)
        self.store.set_status(entry.demonstration_ids, DemoStatus.CLAIMED, tenant=self.tenant)
        fault_point("after_claim")
        return entry

    def _replay_sample(self, run_id: str) -> list[str]:
        if not self.replay:
            return []
        done = self.store.list(tenant=self.tenant, status=DemoStatus.CONSOLIDATED)
        rng = random.Random(int(hashlib.sha256(run_id.encode()).hexdigest()[:8], 16))
        newest = max((d.adapter_version or 0 for d in done), default=0)
        latest = [d for d in done if (d.adapter_version or 0) == newest]
        recent = rng.sample(latest, min(round(self.replay * self.replay_recent), len(latest)))
        chosen = {d.id for d in recent}
        rest = [d for d in done if d.id not in chosen]
        # with replay_recent 0 nothing is drawn above, so the draw is the uniform one
        return [d.id for d in recent + rng.sample(rest, min(self.replay - len(recent), len(rest)))]

    def _train(self, entry: JournalEntry, report: SleepReport) -> None:
        demos = self.store.get(entry.demonstration_ids, tenant=self.tenant)
        replayed = self.store.get(entry.replay_ids, tenant=self.tenant) if entry.replay_ids else []
        init = self.registry.get(entry.init_version).path if entry.init_version else None
        trainer = ConsolidationTrainer(
            self.model_dir,
            self._config(entry),
            torch_threads=self.torch_threads,
            init_adapter=init,
            max_rank=self.registry.rules.max_rank,
        )
        self._candidate = trainer.candidate()
        gate = self._make_gate(demos)
        if gate is not None and "before" not in entry.gate:
            before = self._before_scores(entry, gate, self._candidate)
            entry.gate["before"] = asdict(before)
            entry.gate["base"] = asdict(self._base_scores(entry, gate, before))
            entry.gate["fingerprint"] = gate.fingerprint
        self.journal.write(entry, Stage.TRAINING)
        run_dir = self.journal.run_dir(entry.run_id)
        remove_partial_directories(run_dir)  # a candidate half-written by a killed run
        with atomic_directory(run_dir / CANDIDATE, replace=True) as staging:
            result = trainer.train(
                demos,
                staging,
                replayed=replayed,
                draws=self._draws(),
                on_step=self.on_step,
                checkpoint_dir=run_dir / "checkpoint",
                checkpoint_every=self.checkpoint_every,
                exclude_questions=self._held_out_questions(),
            )
        # the candidate appears complete or not at all
        report.train = {
            "steps": result.steps,
            "resumed_from_step": result.resumed_from_step,
            "seconds": result.seconds,
            "seconds_per_step": result.seconds_per_step,
            "peak_rss_mb": result.peak_rss_mb,
            "final_loss": result.final_loss,
            "fold": result.fold,
            "device": result.device,
            "dtype": result.dtype,
            "history": [asdict(r) for r in result.history],
        }
        entry.gate["train"] = {k: v for k, v in report.train.items() if k != "history"}
        self.journal.write(entry, Stage.TRAINED)
        fault_point("after_train")

    def _gate(self, entry: JournalEntry, report: SleepReport) -> None:
        candidate = self._candidate
        if candidate is None:  # resumed after training: reload the finished candidate
            candidate = self._load_candidate(self.journal.run_dir(entry.run_id) / CANDIDATE)
        demos = self.store.get(entry.demonstration_ids, tenant=self.tenant)
        gate = self._make_gate(demos)
        if self.check is not None:
            report.checks = self.check(candidate)
        self._candidate = None
        if gate is None:
            entry.gate.update(passed=True, reason="gate disabled")
        else:
            after = self._score(gate, candidate)
            del candidate
            before = GateScores(**entry.gate["before"])
            base = GateScores(**entry.gate["base"]) if "base" in entry.gate else None
            decision: GateDecision = gate.decide(before, after, base)
            if not decision.passed and gate.config.shrink and gate.learned(before, after):
                decision = self._shrink(entry, gate, decision, base)
            entry.gate.update(decision.to_dict())
        entry.gate["checks"] = report.checks
        self.journal.write(entry, Stage.GATED)
        fault_point("after_gate")

    def _shrink(
        self, entry: JournalEntry, gate: Gate, rejected: GateDecision, base: GateScores | None
    ) -> GateDecision:
        """A night that learned but forgot past the gate, tried again at shares of its update
        (adapters/shrink.py), largest first; the first share that passes is what publishes.
        Each try is written whole to the run's `shrunk` folder before it is scored, and the
        journal names it only once gated, so a killed run gates the candidate again."""
        run_dir = self.journal.run_dir(entry.run_id)
        served = self.registry.get(entry.init_version).path if entry.init_version else None
        tries: list[dict[str, Any]] = []
        for share in gate.config.shrink:
            try:
                with atomic_directory(run_dir / SHRUNK, replace=True) as staging:
                    write_shrunk_adapter(run_dir / CANDIDATE, served, share, staging)
            except ShrinkUnavailableError as exc:
                tries.append({"share": share, "passed": False, "reason": f"not shrinkable: {exc}"})
                break
            shrunk = self._load_candidate(run_dir / SHRUNK)
            decision = gate.decide(rejected.before, self._score(gate, shrunk), base)
            del shrunk
            tries.append({"share": share, "passed": decision.passed, "reason": decision.reason})
            fault_point("after_shrink")
            if decision.passed:
                entry.gate.update(shrink=tries, adapter=SHRUNK)
                decision.reason = f"at {share} of the night's update: {decision.reason}"
                return decision
        entry.gate["shrink"] = tries
        shares = "; ".join(f"at {t['share']}: {t['reason']}" for t in tries)
        rejected.reason = f"{rejected.reason}; shrunk, {shares}"
        return rejected

    def _load_candidate(self, adapter_dir: Path) -> CandidateModel:
        return CandidateModel.load(
            self.model_dir,
            adapter_dir,
            torch_threads=self.torch_threads,
            device=self.config.device,
            dtype=self.config.dtype,
        )

    def _publish(self, entry: JournalEntry) -> None:
        # A kill after the registry's rename but before the journal write left the version
        # there already: finish that publish instead of publishing a second copy.
        version = self.registry.find_run(entry.run_id)
        if version is not None:
            self.registry.set_current(version.version)
        else:
            version = self.registry.publish(
                self.journal.run_dir(entry.run_id) / entry.gate.get("adapter", CANDIDATE),
                {
                    "tenant": self.tenant,
                    "method": self.config.method,
                    "run_id": entry.run_id,
                    "init_version": entry.init_version,
                    "base_model": str(self.model_dir),
                    "base_model_sha256": (read_manifest(self.model_dir) or {}).get(
                        "weights_sha256"
                    ),
                    "config": self._config(entry).to_dict(),
                    "demonstration_ids": entry.demonstration_ids,
                    "replay_ids": entry.replay_ids,
                    "gate": {k: v for k, v in entry.gate.items() if k != "checks"},
                },
            )
        entry.published_version = version.version
        self.journal.write(entry, Stage.PUBLISHED)
        fault_point("after_publish")

    def _swap(self, entry: JournalEntry) -> None:
        if self.on_publish is not None:
            version = self.registry.get(entry.published_version)
            try:
                self.on_publish(version)
            except Exception as exc:  # the registry is the truth; a restart serves CURRENT
                log.error("adapter v%d published but the swap failed: %s", version.version, exc)
                entry.swap_error = f"swap failed: {type(exc).__name__}: {exc}"
        self.journal.write(entry, Stage.SWAPPED)
        fault_point("after_swap")

    def _reject(self, entry: JournalEntry, report: SleepReport, start: float) -> SleepReport:
        reason = str(entry.gate.get("reason", "rejected by the gate"))
        demos = self.store.get(entry.demonstration_ids, tenant=self.tenant)
        # A kill after these writes but before the journal's resumes here and counts again:
        # only demonstrations still claimed are this run's to settle.
        claimed = [d for d in demos if d.status == DemoStatus.CLAIMED]
        retry = [d.id for d in claimed if d.attempts + 1 < self.max_attempts]
        final = [d.id for d in claimed if d.attempts + 1 >= self.max_attempts]
        self.store.set_status(
            retry,
            DemoStatus.PENDING,
            reason=f"retried: {reason}",
            tenant=self.tenant,
            add_attempt=True,
        )
        self.store.set_status(
            final, DemoStatus.REJECTED, reason=reason, tenant=self.tenant, add_attempt=True
        )
        report.retried = len(retry)
        self.journal.write(entry, Stage.DONE)
        self.journal.archive(entry)
        report.status, report.gate, report.error = "rejected", entry.gate, reason
        log.warning("sleep run %s rejected: %s", entry.run_id, reason)
        return self._finish(report, start)

    def _publish_lost(self, entry: JournalEntry) -> bool:
        """The journal says published, but the version is gone (set aside by repair)."""
        try:
            self.registry.get(entry.published_version)
        except UnknownAdapterVersionError:
            return True
        return False

    def _lost(self, entry: JournalEntry, report: SleepReport, start: float) -> SleepReport:
        """Nothing to mark consolidated: the run's demonstrations go back to pending, so the
        next night trains them again; the journal and the registry agree once more."""
        self.store.set_status(entry.demonstration_ids, DemoStatus.PENDING, tenant=self.tenant)
        error = (
            f"adapter v{entry.published_version} of run {entry.run_id} is no longer in the "
            "registry (set aside by repair); its demonstrations are pending again"
        )
        entry.gate["error"] = error
        self.journal.archive(entry)
        report.status, report.error = "failed", error
        log.error("%s", error)
        return self._finish(report, start)

    def _abandon(self, entry: JournalEntry, report: SleepReport, exc: Exception) -> None:
        """An error (not a kill) before publishing: hand the claim back, keep no journal."""
        self.store.set_status(entry.demonstration_ids, DemoStatus.PENDING, tenant=self.tenant)
        entry.gate["error"] = f"{type(exc).__name__}: {exc}"
        self.journal.archive(entry)
        report.status, report.error = "failed", entry.gate["error"]

    # -- helpers ---------------------------------------------------------------------------
    def _make_gate(self, demos: list[Demonstration]) -> Gate | None:
        if self.gate is None or not self.gate.enabled:
            return None
        # Held-out items, when the caller has them, are the better measure (they were not
        # trained on); otherwise the demonstrations' own questions, asked without them.
        items = list(self.held_out) or demonstration_items(demos)
        return Gate(self.gate, items, self.retention)

    def _config(self, entry: JournalEntry) -> ConsolidationConfig:
        """The night's training config: `steps_per_demo` fixes the length from the claim (the
        journal keeps the ids, so a resumed run trains exactly as long)."""
        if self.steps_per_demo is None:
            return self.config
        replay_rate = self.replay_steps_per_demo or self.steps_per_demo
        steps = self.steps_per_demo * len(entry.demonstration_ids)
        steps += replay_rate * len(entry.replay_ids)
        return dataclasses.replace(self.config, steps=steps)

    def _draws(self) -> tuple[int, int]:
        """A new and a replayed example's counts in one pass, in the ratio of their steps."""
        if self.steps_per_demo is None or self.replay_steps_per_demo is None:
            return (1, 1)
        common = math.gcd(self.steps_per_demo, self.replay_steps_per_demo)
        return (self.steps_per_demo // common, self.replay_steps_per_demo // common)

    @staticmethod
    def _answers(gate: Gate, candidate: CandidateModel, *, adapter: bool = True) -> Generate:
        """The candidate (or, adapter off, the base) answering the gate's conversations at the
        gate's answer length."""
        tokens = gate.config.max_new_tokens
        return lambda convs: candidate.generate(convs, max_new_tokens=tokens, adapter=adapter)

    def _score(self, gate: Gate, candidate: CandidateModel) -> GateScores:
        kl_prompts = list(load_kl_prompts())
        return gate.score(
            self._answers(gate, candidate), lambda: candidate.kl_from_base(kl_prompts)
        )

    def _recorded(self, entry: JournalEntry, gate: Gate, key: str) -> GateScores | None:
        """Scores the served version's own night recorded (`before`, `after`, `base`), when
        they were measured on this gate's items; None for the base or another retention set."""
        if entry.init_version is None:
            return None
        recorded = self.registry.get(entry.init_version).manifest.get("gate", {})
        if recorded.get("fingerprint") != gate.fingerprint or not recorded.get(key):
            return None
        try:
            return GateScores(**recorded[key])
        except TypeError:  # written by another version of GateScores
            return None

    def _before_scores(
        self, entry: JournalEntry, gate: Gate, candidate: CandidateModel
    ) -> GateScores:
        """The served version's scores: its retention and KL as its own night measured them
        (the same weights on the same items, so measuring again only costs time), the new
        skill measured now; all measured now for the base or a changed retention set."""
        served = self._recorded(entry, gate, "after")
        if served is None:
            return self._score(gate, candidate)
        return gate.score_new_skill(self._answers(gate, candidate), like=served)

    def _base_scores(self, entry: JournalEntry, gate: Gate, before: GateScores) -> GateScores:
        """The base model's scores on the gate's items, for the ceiling over all nights: the
        night's starting point when it starts from the base; else what the served version's
        own night recorded (every published manifest carries it forward); else measured now
        with the adapter off (a home from before the ceiling, or a changed retention set)."""
        if entry.init_version is None:
            return before
        recorded = self._recorded(entry, gate, "base")
        if recorded is not None:
            return recorded
        return gate.score(self._answers(gate, self._candidate, adapter=False))

    def _held_out_questions(self) -> list[str]:
        """The gate's held-out questions, which training data augmentation must never write."""
        return [item.conversation[-1]["content"] for item in self.held_out if item.conversation]

    def _finish(self, report: SleepReport, start: float) -> SleepReport:
        report.seconds = time.perf_counter() - start
        if self.reports_dir is not None:
            write_report(self.reports_dir, report.to_dict())
        return report


def run_sleep(**kwargs: Any) -> SleepReport:
    """`SleepJob(**kwargs).run()`: consolidate one tenant's pending demonstrations."""
    return SleepJob(**kwargs).run()


__all__ = ["Candidate", "Check", "SleepAlreadyRunningError", "SleepJob", "SleepReport", "run_sleep"]
