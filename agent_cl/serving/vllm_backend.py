"""`ModelBackend` over a vLLM OpenAI-compatible server, with hot-swapped LoRA versions.

vLLM has no alias for adapters, so we keep one: each published version is loaded under its own
name (`<alias>-v0007`) and `current_model` says which name new requests use. A swap loads the
new version first (a refused load changes nothing), then switches the name under a lock, then
retires the old version: it is unloaded once our own requests on it have finished and a drain
period has passed (for clients in other processes that resolved the name just before).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from agent_cl.models.adapters import InvalidAdapterError, validate_adapter_dir
from agent_cl.models.chat import DEFAULT_SYSTEM, ChatMessage, with_system
from agent_cl.serving.backend import AdapterLoadError, GenerationResult


def adapter_name(alias: str, version: int) -> str:
    return f"{alias}-v{version:04d}"


class VLLMBackend:
    def __init__(
        self,
        url: str,
        *,
        base_name: str = "agent-cl-base",
        alias: str = "agent-cl",
        api_key: str | None = None,
        system: str | None = DEFAULT_SYSTEM,
        drain_seconds: float = 5.0,
        timeout: float = 120.0,
        max_lora_rank: int | None = None,
        base_model_dir: Path | None = None,
    ) -> None:
        # Checked here before the server sees an adapter: vLLM accepts some bad adapters at
        # load time and fails only on the first request that uses them (measured).
        self.max_lora_rank = max_lora_rank
        self.base_model_dir = base_model_dir
        self.url = url.rstrip("/")
        self.base_name = base_name
        self.alias = alias
        self.system = system
        self.drain_seconds = drain_seconds
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self._lock = threading.Lock()
        self._current = base_name
        self._version: int | None = None
        self._in_flight: Counter[str] = Counter()
        self._retired: dict[str, float] = {}  # name -> when it stopped being current

    # -- which version answers --------------------------------------------------------------
    @property
    def adapter_version(self) -> int | None:
        return self._version

    @property
    def current_model(self) -> str:
        return self._current

    @contextmanager
    def request(self) -> Iterator[tuple[str, int | None]]:
        """Pin the current version for one request; a swap meanwhile does not unload it."""
        with self._lock:
            name, version = self._current, self._version
            self._in_flight[name] += 1
        try:
            yield name, version
        finally:
            with self._lock:
                self._in_flight[name] -= 1
            self._unload_drained()

    # -- swap -------------------------------------------------------------------------------
    def swap(self, version: int | None, adapter_path: Path | None = None) -> None:
        if version is None:
            new = self.base_name
        else:
            if adapter_path is None:
                raise ValueError("swap to an adapter version needs its adapter_path")
            new = adapter_name(self.alias, version)
            try:
                validate_adapter_dir(
                    adapter_path, max_rank=self.max_lora_rank, base_model_dir=self.base_model_dir
                )
            except InvalidAdapterError as exc:
                raise AdapterLoadError(str(exc)) from exc
            try:
                loaded = self.loaded_adapters()
            except httpx.HTTPError as exc:
                raise AdapterLoadError(f"{self.url} unreachable: {exc}") from exc
            if new not in loaded:
                self._post(
                    "/v1/load_lora_adapter",
                    {"lora_name": new, "lora_path": str(Path(adapter_path).resolve())},
                    refused=AdapterLoadError,
                )
        with self._lock:
            old, self._current, self._version = self._current, new, version
            self._retired.pop(new, None)
            if old != new and old != self.base_name:
                self._retired[old] = time.monotonic()
        self._unload_drained()
        if self._retired:
            timer = threading.Timer(self.drain_seconds + 0.1, self._unload_drained)
            timer.daemon = True
            timer.start()

    def _unload_drained(self) -> None:
        now = time.monotonic()
        with self._lock:
            done = [
                name
                for name, since in self._retired.items()
                if self._in_flight[name] == 0 and now - since >= self.drain_seconds
            ]
            for name in done:
                del self._retired[name]
        for name in done:
            # already gone (the server restarted): nothing to free
            with contextlib.suppress(httpx.HTTPError, RuntimeError):
                self._post("/v1/unload_lora_adapter", {"lora_name": name})

    def loaded_adapters(self) -> list[str]:
        models = self._http.get("/v1/models").raise_for_status().json()["data"]
        return [m["id"] for m in models if m["id"] != self.base_name]

    # -- generation -------------------------------------------------------------------------
    def generate(
        self,
        conversations: Sequence[Sequence[ChatMessage]],
        *,
        max_new_tokens: int = 48,
        temperature: float = 0.0,
    ) -> GenerationResult:
        texts, versions = [], set()
        for conv in conversations:
            with self.request() as (name, version):
                body = self._chat_body(name, conv, max_new_tokens, temperature, stream=False)
                reply = self._http.post("/v1/chat/completions", json=body).raise_for_status()
                texts.append(reply.json()["choices"][0]["message"]["content"].strip())
                versions.add(version)
        return GenerationResult(texts, versions.pop() if len(versions) == 1 else self._version)

    def stream(
        self,
        conversation: Sequence[ChatMessage],
        *,
        max_new_tokens: int = 48,
        temperature: float = 0.0,
    ) -> dict[str, Any]:
        """One streamed request; returns its text, the model name that answered, the finish
        reason, the completion token count and the version pinned at its start."""
        with self.request() as (name, version):
            body = self._chat_body(name, conversation, max_new_tokens, temperature, stream=True)
            body["stream_options"] = {"include_usage": True}
            pieces, model, finish, tokens = [], None, None, None
            with self._http.stream("POST", "/v1/chat/completions", json=body) as response:
                response.raise_for_status()
                for line in response.iter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    chunk = json.loads(line[len("data: ") :])
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
            "version": version,
        }

    def _chat_body(self, name, conversation, max_new_tokens, temperature, *, stream) -> dict:
        return {
            "model": name,
            "messages": with_system(conversation, self.system),
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "stream": stream,
        }

    def health(self) -> dict:
        ok = self._http.get("/health").status_code == 200
        return {"backend": "vllm", "url": self.url, "ok": ok, "adapter_version": self._version}

    def _post(self, path: str, body: dict, refused: type[Exception] = RuntimeError) -> None:
        try:
            response = self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise refused(f"{self.url}{path} unreachable: {exc}") from exc
        if response.status_code >= 400:
            raise refused(f"{self.url}{path} refused ({response.status_code}): {response.text}")

    def close(self) -> None:
        self._http.close()
