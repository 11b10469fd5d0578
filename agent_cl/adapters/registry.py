"""Versioned adapters on disk with an atomic `current` pointer.

Layout: `<root>/v0001/` (adapter files + `manifest.json`), `<root>/CURRENT` (the served version).
A version directory appears only complete: it is written under a hidden temp name, fsynced and
renamed. `CURRENT` is replaced with os.replace, so readers see the old or the new version,
never a torn write. Rolling back is just pointing `CURRENT` at an older version.

A damaged `CURRENT` or manifest raises `CorruptFileError` naming the file and the fix
(`agent-cl adapters repair`), never reads as "nothing published": that would let a resumed
sleep run publish its batch a second time. `lock()` is the tenant's lock: one sleep run or
rollback at a time.

This module is only the version store; what an adapter must pass to be published is checked by
`agent_cl.adapters.validation` (shared with the vLLM backend and with merging).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent_cl.adapters.rules import AdapterRules, rules_for
from agent_cl.adapters.validation import InvalidAdapterError
from agent_cl.config import Settings, TenantPaths
from agent_cl.durable import (
    CorruptFileError,
    LockedError,
    atomic_directory,
    atomic_write_json,
    atomic_write_text,
    exclusive_lock,
    read_json,
    remove_partial_directories,
    set_aside,
)
from agent_cl.faults import fault_point

__all__ = [
    "CURRENT_FILE",
    "MANIFEST_FILE",
    "AdapterRegistry",
    "AdapterVersion",
    "CorruptFileError",
    "InvalidAdapterError",  # re-exported: validation lives in agent_cl.adapters.validation
    "LockedError",
    "UnknownAdapterVersionError",
    "registry_for",
]

_VERSION_DIR = re.compile(r"^v(\d{4,})$")
CURRENT_FILE = "CURRENT"
HISTORY_FILE = "CURRENT.history.json"  # every version CURRENT named, newest last
HISTORY_KEPT = 100
# Fields the product reads from a manifest, and the JSON types they must have.
MANIFEST_TYPES: dict[str, tuple[type, ...]] = {
    "version": (int,),
    "published_at": (int, float),
    "method": (str,),
    "run_id": (str,),
    "base_model_sha256": (str, type(None)),
    "demonstration_ids": (list,),
    "replay_ids": (list,),
    "gate": (dict,),
    "config": (dict,),
}
MANIFEST_FILE = "manifest.json"
LOCK_FILE = "tenant.lock"
QUARANTINE_DIR = ".corrupt"
REPAIR_FIX = "run `agent-cl adapters repair` (it sets damaged versions aside and says what it did)"


class UnknownAdapterVersionError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


@dataclass
class RegistryRepair:
    lines: list[str] = field(default_factory=list)  # what was done, one line each
    quarantined: list[int] = field(default_factory=list)  # versions set aside


@dataclass(frozen=True)
class AdapterVersion:
    version: int
    path: Path
    manifest: dict[str, Any] = field(default_factory=dict)


class AdapterRegistry:
    """`rules` are enforced on every publish and by `repair`, so an adapter the server cannot
    load (rank too high) or that belongs to another base model is refused before any backend
    sees it, and `rules.keep` bounds how many versions stay on disk (never the current one)."""

    def __init__(self, root: Path, rules: AdapterRules | None = None) -> None:
        self.root = Path(root)
        self.rules = rules or AdapterRules()

    @property
    def keep(self) -> int | None:
        return self.rules.keep

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
        path = self.root / CURRENT_FILE
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            return None
        except UnicodeDecodeError as exc:
            raise CorruptFileError(path, "not text", REPAIR_FIX) from exc
        if not text:
            return None
        if not text.isdigit():
            raise CorruptFileError(path, f"{text[:40]!r} is not a version number", REPAIR_FIX)
        try:
            return self.get(int(text))
        except UnknownAdapterVersionError as exc:
            raise CorruptFileError(path, f"it names a missing version: {exc}", REPAIR_FIX) from exc

    @contextmanager
    def lock(self) -> Iterator[None]:
        """The tenant's lock: a sleep run and a rollback never interleave (LockedError)."""
        path = self.root / TenantPaths.SLEEP_DIR / LOCK_FILE
        busy = f"tenant {self.root.name!r} is busy: a sleep run or rollback holds {path}"
        with exclusive_lock(path, busy=busy):
            yield

    def publish(self, adapter_dir: Path, manifest: dict[str, Any] | None = None) -> AdapterVersion:
        """Copy `adapter_dir` in as the next version and make it current."""
        self.rules.check(adapter_dir, manifest or {})
        self.root.mkdir(parents=True, exist_ok=True)
        self.remove_stale_temp_dirs()
        version = max((v.version for v in self.versions()), default=0) + 1
        with atomic_directory(self._dir(version)) as tmp:
            for item in Path(adapter_dir).iterdir():
                if item.is_file():
                    shutil.copy2(item, tmp / item.name)
            meta = {"version": version, "published_at": time.time(), **(manifest or {})}
            atomic_write_json(tmp / MANIFEST_FILE, meta)
            fault_point("publish_copy")
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
        remove_partial_directories(self.root)

    def set_current(self, version: int | None) -> None:
        """Point `CURRENT` at `version` (None: serve the base model)."""
        if version is not None:
            self.get(version)
        self.root.mkdir(parents=True, exist_ok=True)
        history = [*self.history(), version][-HISTORY_KEPT:]
        atomic_write_json(self.root / HISTORY_FILE, history)
        atomic_write_text(self.root / CURRENT_FILE, "" if version is None else str(version))

    def history(self) -> list[int | None]:
        """The versions CURRENT has named, oldest first (None: the base). Only a hint for
        repair: a damaged history reads as empty, never as a reason to stop."""
        try:
            found = read_json(self.root / HISTORY_FILE, fix="delete it")
        except (FileNotFoundError, CorruptFileError):
            return []
        ok = isinstance(found, list) and all(v is None or isinstance(v, int) for v in found)
        return found if ok else []

    def rollback(
        self, version: int | None = None, *, take_lock: bool = True
    ) -> AdapterVersion | None:
        """Make `version` current, or by default the version before the current one. Takes
        the tenant's lock (LockedError while a night runs) unless the caller holds it."""
        if take_lock:
            with self.lock():
                return self.rollback(version, take_lock=False)
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
        manifest_path = path / MANIFEST_FILE
        try:
            manifest = read_json(manifest_path, fix=REPAIR_FIX)
        except FileNotFoundError as exc:  # publish writes it before the version appears
            raise CorruptFileError(manifest_path, "missing", REPAIR_FIX) from exc
        if not isinstance(manifest, dict):
            raise CorruptFileError(manifest_path, "not a JSON object", REPAIR_FIX)
        for key, kinds in MANIFEST_TYPES.items():
            if key in manifest and not isinstance(manifest[key], kinds):
                shown = type(manifest[key]).__name__
                raise CorruptFileError(manifest_path, f"{key} is a {shown}", REPAIR_FIX)
        return AdapterVersion(version, path, manifest)

    # -- repair ---------------------------------------------------------------------------
    def repair(self) -> RegistryRepair:
        """Set damaged versions aside (into `.corrupt/`) and point a damaged or dangling
        `CURRENT` at the last version it named that is still intact (so an operator's rollback
        survives), else the newest intact one. Takes the tenant's lock, so it never races a
        night."""
        done = RegistryRepair()
        with self.lock():
            if not self.root.exists():
                return done
            for child in sorted(self.root.iterdir()):
                match = _VERSION_DIR.match(child.name)
                if not (match and child.is_dir()):
                    continue
                problem = self._damage(int(match.group(1)), child)
                if problem:
                    aside = set_aside(child, into=self.root / QUARANTINE_DIR)
                    done.quarantined.append(int(match.group(1)))
                    done.lines.append(f"v{match.group(1)}: {problem}; moved to {aside}")
            try:
                self.current()
            except CorruptFileError as exc:
                chosen = self._last_intact()
                self.set_current(chosen)
                now = f"v{chosen}" if chosen else "the base model"
                done.lines.append(f"{CURRENT_FILE}: {exc.args[0].split(';')[0]}; now serves {now}")
        return done

    def _last_intact(self) -> int | None:
        intact = {v.version for v in self.versions()}
        for version in reversed(self.history()):
            if version is None or version in intact:
                return version
        return max(intact, default=None)

    def _damage(self, version: int, path: Path) -> str | None:
        try:
            version_ = self._read(version, path)
            self.rules.check(path, version_.manifest)
        except (CorruptFileError, InvalidAdapterError) as exc:
            return str(exc)
        return None


def registry_for(
    settings: Settings, tenant: str | None = None, rules: AdapterRules | None = None
) -> AdapterRegistry:
    """`tenant`'s registry (default: the settings' tenant) under the home's rules: what every
    part of the product opens, so no registry is ever built without them. A caller opening
    many tenants passes `rules_for(settings)` once (it reads the base model's manifest)."""
    return AdapterRegistry(settings.paths(tenant).adapters, rules or rules_for(settings))
