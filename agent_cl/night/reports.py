"""The night's reports: what one sleep run did (`SleepReport`), and their files on disk, one
JSON file per run in `<home>/reports/`.

The one module that knows their file names, so the status view, the morning report and the
tests read them through `read_reports` instead of parsing names themselves.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from agent_cl.durable import CorruptFileError, atomic_write_json, read_json

PREFIX = "sleep-"
STAMP = "%Y%m%dT%H%M%S"


@dataclass
class SleepReport:
    run_id: str
    tenant: str
    status: str  # "published" | "rejected" | "nothing_to_do" | "failed"
    method: str
    demonstrations: int = 0
    replayed: int = 0
    retried: int = 0  # a rejected night's demonstrations sent back to pending for another night
    init_version: int | None = None
    adapter_version: int | None = None
    swapped: bool = False
    resumed_from: str | None = None  # the journal stage a crashed run was resumed from
    seconds: float = 0.0
    train: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NightReportFile:
    path: Path
    finished: str  # the run's end, local time, `STAMP` format
    data: dict[str, Any] | None  # None: the file could not be read (see `problem`)
    problem: str | None = None


def write_report(reports_dir: Path, report: dict[str, Any]) -> Path:
    """Write one run's report atomically (a crash never leaves half of one)."""
    finished = time.strftime(STAMP)
    path = Path(reports_dir) / f"{PREFIX}{finished}-{report.get('run_id') or 'none'}.json"
    atomic_write_json(path, {**report, "finished": finished})
    return path


def read_reports(reports_dir: Path) -> Iterator[NightReportFile]:
    """Every report, newest first; an unreadable one is yielded with its problem, not skipped,
    so a viewer can say what it could not read."""
    for path in sorted(Path(reports_dir).glob(f"{PREFIX}*.json"), reverse=True):
        finished = path.name[len(PREFIX) :].split("-", 1)[0]
        try:
            data = read_json(path, fix="delete or move the file")
        except (CorruptFileError, OSError) as exc:
            yield NightReportFile(path, finished, None, str(exc))
            continue
        if not isinstance(data, dict):
            yield NightReportFile(path, finished, None, f"{path} is not a JSON object")
            continue
        yield NightReportFile(path, str(data.get("finished", finished)), data)


def last_report(reports_dir: Path, tenant: str) -> NightReportFile | None:
    """The newest readable report of `tenant`'s nights."""
    for found in read_reports(reports_dir):
        if found.data is not None and found.data.get("tenant") == tenant:
            return found
    return None
