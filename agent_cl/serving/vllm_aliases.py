"""Stable model names inside the vLLM server: `agent-cl/<tenant>` answers with that tenant's
current adapter version, for any client in any process, and no response mixes two versions.

vLLM 0.32 has no alias for a LoRA adapter. Reloading one name in place (`load_inplace`) makes
the server follow a swap, but responses in flight at that moment finish on the new weights:
45 of 120 responses mixed the two versions under a swap every 0.5 s
(benchmarks/inplace_reload_mixing.py). Unloading and reloading the name instead failed 120 of
120 requests and killed the engine. So every version keeps its own name
(`agent-cl/<tenant>@v0007`, fixed weights) and this ASGI middleware, which vLLM loads with
`--middleware agent_cl.serving.vllm_aliases.AliasMiddleware`, rewrites the stable name to the
current version's name as each request arrives. A request is then answered by exactly one
version, and the response's `model` field says which.

The middleware also counts requests in flight per model name, so an old version is unloaded
only once nothing runs on it, and it is the server's one door: every request is checked against
`access.AccessPolicy` (routes by allowlist, admin and tenant-scoped inference keys, a body cap)
before anything is read, and every adapter load against `load_guard.LoadGuard` (the registry's
own version directory, the registry's rules).

It runs inside the vLLM process: Starlette's ASGI interface and the standard library, plus the
adapter rules (pure Python; torch only when a load's weights are checked).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from agent_cl.serving.access import ALIASES_PATH, AccessPolicy, Caller, Refusal

__all__ = ["ALIASES_PATH", "AliasMiddleware"]
# Requests whose JSON body names a model; only these bodies are read and rewritten.
MODEL_PATHS = ("/v1/chat/completions", "/v1/completions")
MODELS_PATH = "/v1/models"
LOAD_PATH = "/v1/load_lora_adapter"


class _TooLarge(Exception):
    """A body past the policy's cap (a chunked one has no content-length to refuse early)."""


class AliasMiddleware:
    def __init__(self, app: Any, policy: AccessPolicy | None = None, guard=None) -> None:
        self.app = app
        self.aliases: dict[str, str] = {}
        self.in_flight: Counter[str] = Counter()
        self.policy = policy or AccessPolicy.from_environment()
        self._guard = guard  # LoadGuard, built at the first load (it may import torch)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope.get("method", "GET")
        client = (scope.get("client") or ("", 0))[0]
        caller = self.policy.authorize(method, path, scope.get("headers", []), client)
        if isinstance(caller, Refusal):
            await _send_json(send, caller.status, {"error": caller.error})
            return
        try:
            await self._route(caller, scope, receive, send)
        except _TooLarge:
            limit = self.policy.max_body
            await _send_json(send, 413, {"error": f"request bodies are limited to {limit} bytes"})

    async def _route(self, caller: Caller, scope, receive, send) -> None:
        path, method = scope["path"], scope.get("method", "GET")
        if path == ALIASES_PATH:
            await self._aliases_route(caller, method, receive, send)
        elif path in MODEL_PATHS:
            await self._rewritten(caller, scope, receive, send)
        elif path == MODELS_PATH:
            await self._models_with_aliases(caller, scope, receive, send)
        elif path == LOAD_PATH:
            await self._guarded_load(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _read(self, receive) -> bytes:
        return await _read_body(receive, self.policy.max_body)

    async def _guarded_load(self, scope, receive, send) -> None:
        raw = await self._read(receive)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if self._guard is None:
            from agent_cl.serving.load_guard import LoadGuard

            self._guard = LoadGuard.from_environment()
        problem = self._guard.refusal(body)
        if problem is not None:
            await _send_json(send, 403, {"error": problem})
            return
        await self.app(scope, _replay(raw, receive), send)

    async def _aliases_route(self, caller: Caller, method: str, receive, send) -> None:
        if method == "GET":
            await _send_json(send, 200, self.state(caller))
            return
        try:
            body = json.loads(await self._read(receive))
            alias, model = body["alias"], body["model"]
            if not isinstance(alias, str) or not isinstance(model, str) or not alias or not model:
                raise ValueError("alias and model must be non-empty strings")
        except (ValueError, KeyError, TypeError) as exc:
            await _send_json(send, 400, {"error": f'PUT {{"alias": ..., "model": ...}}: {exc}'})
            return
        self.aliases[alias] = model
        await _send_json(send, 200, self.state(caller))

    def state(self, caller: Caller | None = None) -> dict[str, Any]:
        """Aliases and in-flight counts, only of the names `caller` may address."""
        allowed = (lambda name: True) if caller is None else caller.may_use
        return {
            "aliases": {a: m for a, m in self.aliases.items() if allowed(a)},
            "in_flight": {m: n for m, n in self.in_flight.items() if allowed(m) and n > 0},
        }

    # -- inference ----------------------------------------------------------------------------
    async def _rewritten(self, caller: Caller, scope, receive, send) -> None:
        raw = await self._read(receive)
        model = None
        try:
            body = json.loads(raw)
        except ValueError:
            body = None  # not JSON: vLLM answers it with its own error
        if isinstance(body, dict) and isinstance(body.get("model"), str):
            if not caller.may_use(body["model"]):
                await _send_json(send, 403, {"error": f"this key may not use {body['model']}"})
                return
            model = self.aliases.get(body["model"], body["model"])
            if model != body["model"]:
                raw = json.dumps({**body, "model": model}).encode()
        elif caller.tenants is not None:  # a scoped key must say which model it asks
            await _send_json(send, 403, {"error": "this key must name one of its models"})
            return
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
        headers.append((b"content-length", str(len(raw)).encode()))
        scope = {**scope, "headers": headers}
        if model is not None:
            self.in_flight[model] += 1
        try:
            await self.app(scope, _replay(raw, receive), send)
        finally:
            if model is not None:
                self.in_flight[model] -= 1
                if self.in_flight[model] <= 0:
                    del self.in_flight[model]  # names come and go: keep the map small

    async def _models_with_aliases(self, caller: Caller, scope, receive, send) -> None:
        """vLLM's model list plus one entry per alias (its `root` is the target's), so a
        client that lists models finds `agent-cl/<tenant>`; a scoped key sees its own."""
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        if start.get("status") == 200:
            try:
                listing = json.loads(body)
                by_id = {m["id"]: m for m in listing["data"]}
                for alias, target in self.aliases.items():
                    if target in by_id and alias not in by_id:
                        entry = {**by_id[target], "id": alias, "owned_by": "agent-cl-alias"}
                        listing["data"].append(entry)
                listing["data"] = [m for m in listing["data"] if caller.may_use(m["id"])]
                body = json.dumps(listing).encode()
            except (ValueError, KeyError, TypeError):
                pass
        headers = [(k, v) for k, v in start.get("headers", []) if k != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _replay(raw: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()  # http.disconnect, when the client goes away

    return replay


async def _read_body(receive, limit: int) -> bytes:
    parts, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        parts.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(parts)


async def _send_json(send, status: int, payload: dict) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
