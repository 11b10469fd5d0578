"""Publish to every replica or to none: a swap that fails on one replica is rolled back on
the ones that had already switched, so clients never see two versions for long."""

from __future__ import annotations

from collections.abc import Sequence

from agent_cl.serving.backend import AdapterLoadError, ModelBackend
from agent_cl.serving.registry import AdapterRegistry


class ReplicaSwapError(AdapterLoadError):
    """A replica refused the version; every replica serves the previous one again."""


class ReplicaSet:
    def __init__(self, backends: Sequence[ModelBackend], registry: AdapterRegistry) -> None:
        if not backends:
            raise ValueError("a replica set needs at least one backend")
        self.backends = list(backends)
        self.registry = registry

    def versions(self) -> list[int | None]:
        return [b.adapter_version for b in self.backends]

    def swap(self, version: int | None) -> None:
        """Serve `version` (None: the base model) everywhere, or raise with all unchanged."""
        target = self.registry.get(version).path if version is not None else None
        switched: list[tuple[ModelBackend, int | None]] = []
        for backend in self.backends:
            previous = backend.adapter_version
            try:
                backend.swap(version, target)
            except Exception as exc:
                for done, before in reversed(switched):
                    done.swap(before, self.registry.get(before).path if before else None)
                raise ReplicaSwapError(
                    f"replica {len(switched) + 1}/{len(self.backends)} refused v{version}: "
                    f"{exc}; all replicas serve their previous version again"
                ) from exc
            switched.append((backend, previous))

    def serve_current(self) -> int | None:
        """Point every replica at the registry's current version (after a restart)."""
        current = self.registry.current()
        self.swap(current.version if current else None)
        return current.version if current else None
