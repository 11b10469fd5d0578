"""Publish to every replica or to none: a swap that fails on one replica is rolled back on
the ones that had already switched, so clients never see two versions for long."""

from __future__ import annotations

from collections.abc import Sequence

from agent_cl.adapters.registry import AdapterRegistry, AdapterVersion
from agent_cl.config import Settings, vllm_api_key
from agent_cl.serving.backend import AdapterLoadError, ModelBackend


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
            try:  # reading what it serves is a request too: a dead replica fails here
                previous = backend.adapter_version
                backend.swap(version, target)
            except Exception as exc:
                for done, before in reversed(switched):
                    done.swap(before, self.registry.get(before).path if before else None)
                raise ReplicaSwapError(
                    f"replica {len(switched) + 1}/{len(self.backends)} refused v{version}: "
                    f"{exc}; all replicas serve their previous version again"
                ) from exc
            switched.append((backend, previous))

    @classmethod
    def from_urls(
        cls,
        urls: Sequence[str],
        registry: AdapterRegistry,
        *,
        tenant: str = "default",
        api_key: str | None = None,
    ) -> ReplicaSet:
        """`tenant`'s stable name on the vLLM servers at `urls` (`agent-cl serve`), following
        `registry` (that tenant's)."""
        from agent_cl.serving.vllm_backend import VLLMBackend

        backends = [
            VLLMBackend(url, tenant=tenant, api_key=api_key, rules=registry.rules) for url in urls
        ]
        return cls(backends, registry)

    def rollback(self, version: int | None = None) -> AdapterVersion | None:
        """Point the registry back (to `version`, default the previous) and every replica with
        it, under the tenant's lock; if a replica refuses, the registry's current version is
        restored too."""
        with self.registry.lock():
            previous = self.registry.current()
            now = self.registry.rollback(version, take_lock=False)
            try:
                self.serve_current()
            except Exception as exc:  # refused, unreachable, timed out: all or none
                self.registry.set_current(previous.version if previous else None)
                if isinstance(exc, AdapterLoadError):
                    raise
                raise ReplicaSwapError(
                    f"rollback not done: a replica failed ({type(exc).__name__}: {exc}); "
                    "the registry and every replica keep the version they had"
                ) from exc
        return now

    def served_models(self) -> list[tuple[str, str]]:
        """(url, what the server answers this tenant with) per replica; an unreachable one
        says why."""
        out = []
        for backend in self.backends:
            url = getattr(backend, "url", type(backend).__name__)
            try:
                out.append((url, f"{backend.current_model} -> {backend.served_target()}"))
            except Exception as exc:  # a dead replica is a row in the answer, not a crash
                out.append((url, f"unreachable ({exc})"))
        return out

    def serve_current(self) -> int | None:
        """Point every replica at the registry's current version (after a restart)."""
        current = self.registry.current()
        self.swap(current.version if current else None)
        return current.version if current else None


def swap_servers_on_publish(urls: Sequence[str], *, api_key: str | None = None):
    """A night's publish hook: every vLLM server in `urls` swaps to each tenant's new version
    (all or none), so `agent-cl sleep --server URL` and the daemon follow the registry."""
    urls = list(urls)

    def for_tenant(tenant: str, registry: AdapterRegistry):
        if not urls:
            return None
        replicas = ReplicaSet.from_urls(urls, registry, tenant=tenant, api_key=api_key)
        return lambda version: replicas.swap(version.version)

    return for_tenant


def publish_hook_for(settings: Settings):
    """The night's publish hook that `settings` describe: swap every server in
    `settings.servers`, with the key from the one place keys are read (`vllm_api_key`)."""
    return swap_servers_on_publish(settings.servers, api_key=vllm_api_key())


def replicas_for(settings: Settings, registry: AdapterRegistry, tenant: str) -> ReplicaSet:
    """`tenant`'s replicas: every server in `settings.servers`, following `registry`."""
    return ReplicaSet.from_urls(settings.servers, registry, tenant=tenant, api_key=vllm_api_key())


class ServerUnreachableError(AdapterLoadError):
    """A configured server cannot be reached (or refuses the key) before a night starts."""


def check_servers(settings: Settings) -> None:
    """Reach every server in `settings.servers` with the admin key, so a night that would
    publish into a dead or misconfigured server fails before training, not after it."""
    from agent_cl.serving.vllm_backend import VLLMBackend

    for url in settings.servers:
        backend = VLLMBackend(url, api_key=vllm_api_key(), timeout=10.0)
        try:
            backend.aliases()
        except Exception as exc:
            raise ServerUnreachableError(
                f"server {url} cannot be used ({type(exc).__name__}: {exc}); start it with "
                "`agent-cl serve`, fix servers / --server, or check AGENT_CL_VLLM_API_KEY"
            ) from exc
        finally:
            backend.close()
