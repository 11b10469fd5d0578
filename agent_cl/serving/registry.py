"""Versioned adapters on disk with an atomic `current` pointer.

Layout: `<root>/v0001/` (adapter files + `manifest.json`), `<root>/CURRENT` (the served version).
A version directory appears only complete: it is written under a hidden temp name, fsynced and
renamed. `CURRENT` is replaced with os.replace, so readers see the old or the new version,
never a torn write. Rolling back is just pointing `CURRENT` at an older version.

This module is only the version store; what an adapter must pass to be published is checked by
`agent_cl.models.adapters` (shared with the vLLM backend and with merging).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_cl.durable import atomic_write_text, fsync_path
from agent_cl.faults import fault_point
from agent_cl.models.adapters import InvalidAdapterError, check_base_model, validate_adapter_dir

__all__ = [
    "CURRENT_FILE",
    "MANIFEST_FILE",
    "AdapterRegistry",
    "AdapterVersion",
    "InvalidAdapterError",  # re-exported: validation lives in agent_cl.models.adapters
    "UnknownAdapterVersionError",
]

_VERSION_DIR = re.compile(r"^v(\d{4,})$")
CURRENT_FILE = "CURRENT"
MANIFEST_FILE = "manifest.json"


class UnknownAdapterVersionError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


@dataclass(frozen=True)
class AdapterVersion:
    version: int
    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)


class AdapterRegistry:
    """`max_rank` and `base_model_sha256`, when given, are enforced on every publish, so an
    adapter the server cannot load (rank too high) or that belongs to another base model is
    refused before any backend sees it. `keep` bounds how many versions stay on disk (the
    current one is never deleted)."""

    def __init__(
        self,
        root: Path,
        *,
        max_rank: int | None = None,
        base_model_sha256: str | None = None,
        keep: int | None = None,
    ) -> None:
        if keep is not None and keep < 1:
            raise ValueError(f"keep must be >= 1, got {keep}")
        self.root = Path(root)
        self.max_rank = max_rank
        self.base_model_sha256 = base_model_sha256
        self.keep = keep

    def versions(self) -> list[AdapterVersion]:
        if not self.root.exists():
            return []
        found = []
        for child in self.root.iterdir():
            match = _VERSION_DIR.match(child.name)
            if match and child.is_dir():
                found.append(self._read(int(match.group(1)), child))
        return sorted(found, key=lambda v: v.version)

    def get(self, version: int) -> AdapterVersion:
        path = self._dir(version)
        if not path.is_dir():
            known = [v.version for v in self.versions()]
            raise UnknownAdapterVersionError(
                f"adapter version {version} does not exist (known: {known or 'none'})"
            )
        return self._read(version, path)

    def current(self) -> AdapterVersion | None:
        try:
            text = (self.root / CURRENT_FILE).read_text().strip()
        except FileNotFoundError:
            return None
        return self.get(int(text)) if text else None

    def publish(self, adapter_dir: Path, manifest: dict[str, Any] | None = None) -> AdapterVersion:
        """Copy `adapter_dir` in as the next version and make it current."""
        validate_adapter_dir(adapter_dir, max_rank=self.max_rank)
        check_base_model(manifest or {}, self.base_model_sha256)
        self.root.mkdir(parents=True, exist_ok=True)
        self.remove_stale_temp_dirs()
        version = max((v.version for v in self.versions()), default=0) + 1
        tmp = Path(tempfile.mkdtemp(prefix=".publish-", dir=self.root))
        try:
            for item in Path(adapter_dir).iterdir():
                if item.is_file():
                    shutil.copy2(item, tmp / item.name)
            meta = {"version": version, "published_at": time.time(), **(manifest or {})}
            (tmp / MANIFEST_FILE).write_text(json.dumps(meta, indent=2, default=str))
            _fsync_dir_files(tmp)
            fault_point("publish_copy")
            os.replace(tmp, self._dir(version))
            fsync_path(self.root)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        self.set_current(version)
        self.prune()
        return self.get(version)

    def find_run(self, run_id: str) -> AdapterVersion | None:
        """The version a sleep run published, if it got that far (its manifest says so)."""
        for version in self.versions():
            if version.manifest.get("run_id") == run_id:
                return version
        return None

    def prune(self) -> list[int]:
        """Delete the oldest versions beyond `keep`; never the current one."""
        if self.keep is None:
            return []
        current = self.current()
        versions = self.versions()
        doomed = [
            v
            for v in versions[: max(len(versions) - self.keep, 0)]
            if current is None or v.version != current.version
        ]
        for v in doomed:
            shutil.rmtree(v.path, ignore_errors=True)
        return [v.version for v in doomed]

    def remove_stale_temp_dirs(self) -> None:
        """Half-copied versions left by a killed publish (never visible as versions)."""
        for child in self.root.glob(".publish-*"):
            shutil.rmtree(child, ignore_errors=True)

    def set_current(self, version: int | None) -> None:
        """Point `CURRENT` at `version` (None: serve the base model)."""
        if version is not None:
            self.get(version)
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.root / CURRENT_FILE, "" if version is None else str(version))

    def rollback(self, version: int | None = None) -> AdapterVersion | None:
        """Make `version` current, or by default the version before the current one."""
        if version is None:
            current = self.current()
            older = [v for v in self.versions() if current is None or v.version < current.version]
            if current is None or not older:
                self.set_current(None)
                return None
            version = older[-1].version
        self.set_current(version)
        return self.get(version)

    def _dir(self, version: int) -> Path:
        if version < 1:
            raise UnknownAdapterVersionError(f"adapter versions start at 1, got {version}")
        return self.root / f"v{version:04d}"

    def _read(self, version: int, path: Path) -> AdapterVersion:
        try:
            manifest = json.loads((path / MANIFEST_FILE).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            manifest = {}
        return AdapterVersion(version, path, manifest)


def _fsync_dir_files(root: Path) -> None:
    for item in root.iterdir():
        if item.is_file():
            fsync_path(item)
    fsync_path(root)
