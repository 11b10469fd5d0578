"""The sleep job's journal: which stage a run reached, so a crashed run resumes, never repeats.

One JSON file per tenant, rewritten atomically (temp file, fsync, rename) at every stage
boundary. Whatever instant the process dies, the file on disk holds the last completed stage,
and the run directory beside it holds what that stage produced (checkpoints, the candidate
adapter). A finished run's journal is moved to `history/` so the next night starts clean.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from agent_cl.config import TenantPaths
from agent_cl.durable import CorruptFileError, atomic_write_text, read_json, set_aside


class Stage(StrEnum):
    CLAIMED = "claimed"  # demonstrations set to `claimed`, nothing trained yet
    TRAINING = "training"  # checkpoints may exist under the run dir
    TRAINED = "trained"  # candidate adapter complete under the run dir
    GATED = "gated"  # gate decided; `gate` holds the decision
    PUBLISHED = "published"  # the registry holds the version; not yet served
    SWAPPED = "swapped"  # the backend was told (or failed: see `swap_error`)
    DONE = "done"  # demonstrations marked consolidated or rejected


@dataclass
class JournalEntry:
    run_id: str
    tenant: str
    stage: Stage
    demonstration_ids: list[str]
    replay_ids: list[str] = field(default_factory=list)
    init_version: int | None = None
    published_version: int | None = None
    gate: dict[str, Any] = field(default_factory=dict)
    swap_error: str | None = None
    started_at: float = field(default_factory=time.time)
    stages: list[tuple[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stage"] = str(self.stage)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JournalEntry:
        data = dict(data)
        data["stage"] = Stage(data["stage"])
        data["stages"] = [tuple(s) for s in data.get("stages", [])]
        return cls(**data)


JOURNAL_FIX = (
    "run `agent-cl adapters repair`: it sets the journal aside and hands the run's claimed "
    "demonstrations back to pending"
)


class Journal:
    """The journal of one tenant's sleep runs under `root`: by default the registry's `.sleep`
    directory (`<home>/adapters/<tenant>/.sleep`, see `SleepJob.state_dir`)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.path = self.root / TenantPaths.JOURNAL_FILE

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def load(self) -> JournalEntry | None:
        """The unfinished run, if any (a finished one has been archived). A damaged journal
        raises CorruptFileError: guessing would risk publishing a batch twice."""
        try:
            data = read_json(self.path, fix=JOURNAL_FIX)
        except FileNotFoundError:
            return None
        try:
            return JournalEntry.from_dict(data)
        except (TypeError, KeyError, ValueError) as exc:
            raise CorruptFileError(self.path, f"not a journal entry: {exc}", JOURNAL_FIX) from exc

    def set_aside(self) -> Path | None:
        """Move a damaged journal out of the way (`agent-cl adapters repair`)."""
        if not self.path.exists():
            return None
        return set_aside(self.path)

    def write(self, entry: JournalEntry, stage: Stage | None = None) -> None:
        if stage is not None:
            entry.stage = stage
            entry.stages.append((str(stage), time.time()))
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(entry.to_dict(), indent=2))

    def archive(self, entry: JournalEntry) -> Path:
        """Move the finished run's journal to history/ and drop its scratch files."""
        import shutil

        history = self.root / "history"
        history.mkdir(parents=True, exist_ok=True)
        target = history / f"{entry.run_id}.json"
        atomic_write_text(target, json.dumps(entry.to_dict(), indent=2))
        self.path.unlink(missing_ok=True)
        shutil.rmtree(self.run_dir(entry.run_id), ignore_errors=True)
        return target
