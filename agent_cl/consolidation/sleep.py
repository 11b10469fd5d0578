"""The sleep job: claim -> train -> check -> publish -> swap -> mark.

Consistency rule: a demonstration is marked consolidated only after an adapter trained on it
has been published. Until then it is `claimed`; if anything fails before publishing, the claim
is handed back (status pending) and no version appears in the registry. Serving is reached only
through the `on_publish` callback, so this module never talks to a server.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from agent_cl.consolidation.config import ConsolidationConfig
from agent_cl.consolidation.trainer import ConsolidationTrainer, StepRecord
from agent_cl.memory.base import DemonstrationStore
from agent_cl.memory.schema import DemoStatus
from agent_cl.models.chat import ChatMessage
from agent_cl.models.provision import read_manifest
from agent_cl.serving.registry import AdapterRegistry, AdapterVersion

log = logging.getLogger(__name__)

Generate = Callable[[list[list[ChatMessage]]], list[str]]


class Candidate(Protocol):
    """What a check may ask of the freshly trained, not yet published adapter."""

    def generate(
        self, conversations: list[list[ChatMessage]], *, max_new_tokens: int = 48
    ) -> list[str]: ...

    def kl_from_base(self, prompts: list[str], *, max_new_tokens: int = 24) -> float: ...


Check = Callable[[Candidate], dict[str, Any]]


@dataclass
class SleepReport:
    run_id: str
    tenant: str
    status: str  # "published" | "nothing_to_do" | "failed"
    method: str
    demonstrations: int = 0
    adapter_version: int | None = None
    swapped: bool = False
    seconds: float = 0.0
    train: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def run_sleep(
    *,
    store: DemonstrationStore,
    registry: AdapterRegistry,
    model_dir: Path,
    config: ConsolidationConfig | None = None,
    tenant: str = "default",
    check: Check | None = None,
    on_publish: Callable[[AdapterVersion], None] | None = None,
    on_step: Callable[[StepRecord], None] | None = None,
    reports_dir: Path | None = None,
    torch_threads: int = 2,
) -> SleepReport:
    """Consolidate the tenant's pending demonstrations into a new adapter version."""
    config = config or ConsolidationConfig()
    start = time.perf_counter()
    report = SleepReport(uuid.uuid4().hex[:12], tenant, "nothing_to_do", config.method)
    pending = store.pending(tenant)
    report.demonstrations = len(pending)
    if not pending:
        return _finish(report, start, reports_dir)

    ids = [d.id for d in pending]
    store.set_status(ids, DemoStatus.CLAIMED)
    work = Path(tempfile.mkdtemp(prefix=f"agent-cl-sleep-{report.run_id}-"))
    published: AdapterVersion | None = None
    try:
        trainer = ConsolidationTrainer(model_dir, config, torch_threads=torch_threads)
        result = trainer.train(pending, work / "adapter", on_step=on_step)
        report.train = {
            "steps": result.steps,
            "seconds": result.seconds,
            "seconds_per_step": result.seconds_per_step,
            "peak_rss_mb": result.peak_rss_mb,
            "final_loss": result.final_loss,
            "history": [asdict(r) for r in result.history],
        }
        if check is not None:
            report.checks = check(trainer)
        del trainer
        published = registry.publish(
            result.adapter_dir,
            {
                "tenant": tenant,
                "method": config.method,
                "run_id": report.run_id,
                "base_model": str(model_dir),
                "base_model_sha256": (read_manifest(Path(model_dir)) or {}).get("weights_sha256"),
                "config": config.to_dict(),
                "demonstration_ids": ids,
                "checks": report.checks,
            },
        )
        report.adapter_version = published.version
        report.status = "published"
    except BaseException as exc:
        store.set_status(ids, DemoStatus.PENDING)  # hand the claim back: nothing was published
        report.status, report.error = "failed", f"{type(exc).__name__}: {exc}"
        _finish(report, start, reports_dir)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)

    store.set_status(ids, DemoStatus.CONSOLIDATED, adapter_version=published.version)
    if on_publish is not None:
        try:
            on_publish(published)
            report.swapped = True
        except Exception as exc:  # the registry is the truth; a restart serves CURRENT
            log.error("adapter v%d published but the swap failed: %s", published.version, exc)
            report.error = f"swap failed: {type(exc).__name__}: {exc}"
    return _finish(report, start, reports_dir)


def _finish(report: SleepReport, start: float, reports_dir: Path | None) -> SleepReport:
    report.seconds = time.perf_counter() - start
    if reports_dir is not None:
        reports_dir.mkdir(parents=True, exist_ok=True)
        path = reports_dir / f"sleep-{time.strftime('%Y%m%dT%H%M%S')}-{report.run_id}.json"
        path.write_text(json.dumps(report.to_dict(), indent=2, default=str))
    return report
