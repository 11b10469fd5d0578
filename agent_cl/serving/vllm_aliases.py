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

In merged mode (`AGENT_CL_MERGED=1`, one tenant per server: docs/results/serving.md) the server
answers with a published version merged into its weights instead of a LoRA, at the base model's
speed. A swap (`PUT /v1/agent-cl/weights`, admin) holds new requests at this door, waits until
none is in flight, reloads the weights inside vLLM (pause, `reload_weights` from the tenant's
merged copy, resume: the routes are vLLM's dev routes, called from here, never from outside),
then lets the held requests through; each response's `model` is stamped with the version whose
weights wrote it. Measured before building it: 5 reloads under 8 clients, 0 failed, 0 mixed
(benchmarks/merged_reload_check.py).

It runs inside the vLLM process: Starlette's ASGI interface and the standard library, plus the
adapter rules (pure Python; torch only when a load's weights are checked).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections import Counter
from typing import Any

from agent_cl.serving.access import (
    ALIASES_PATH,
    BASE_NAME,
    WEIGHTS_PATH,
    AccessPolicy,
    Caller,
    Refusal,
)

__all__ = ["ALIASES_PATH", "AliasMiddleware"]
# Requests whose JSON body names a model; only these bodies are read and rewritten.
MODEL_PATHS = ("/v1/chat/completions", "/v1/completions")
MODELS_PATH = "/v1/models"
LOAD_PATH = "/v1/load_lora_adapter"
MERGED_ENV = "AGENT_CL_MERGED"  # "1": this server serves merged weights, not LoRA adapters
DRAIN_SECONDS = 300.0  # a weight swap waits this long for running requests, then gives up
_BASE_MODEL_FIELD = re.compile(rb'"model"\s*:\s*"' + re.escape(BASE_NAME.encode()) + rb'"')


class _TooLarge(Exception):
    """A body past the policy's cap (a chunked one has no content-length to refuse early)."""


class AliasMiddleware:
    def __init__(
        self, app: Any, policy: AccessPolicy | None = None, guard=None, merged: bool | None = None
    ) -> None:
        self.app = app
        self.aliases: dict[str, str] = {}
        self.in_flight: Counter[str] = Counter()
        self.policy = policy or AccessPolicy.from_environment()
        self._guard = guard  # LoadGuard, built at the first load (it may import torch)
        self.merged = os.environ.get(MERGED_ENV) == "1" if merged is None else merged
        # merged mode: which version's weights answer now (None: the base model's)
        from agent_cl.serving.load_guard import BASE_MODEL_ENV

        base = os.environ.get(BASE_MODEL_ENV)  # what the engine loaded at start
        self.weights: dict[str, Any] = {"tenant": None, "version": None, "path": base}
        self._open = asyncio.Event()  # cleared while a weight swap holds new requests
        self._open.set()
        self._weights_lock = asyncio.Lock()

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
        elif path == WEIGHTS_PATH:
            await self._weights_route(caller, scope, receive, send)
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
        problem = self.guard().refusal(body)
        if problem is not None:
            await _send_json(send, 403, {"error": problem})
            return
        await self.app(scope, _replay(raw, receive), send)

    def guard(self):
        if self._guard is None:
            from agent_cl.serving.load_guard import LoadGuard

            self._guard = LoadGuard.from_environment()
        return self._guard

    # -- merged mode --------------------------------------------------------------------------
    async def _weights_route(self, caller: Caller, scope, receive, send) -> None:
        raw = await self._read(receive)
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not self.merged:
            error = "this server serves LoRA adapters; start it in merged mode to swap weights"
            await _send_json(send, 409, {"error": error})
            return
        problem = self.guard().weights_refusal(body)
        if problem is not None:
            await _send_json(send, 403, {"error": problem})
            return
        path = os.path.realpath(body["path"])  # the directory the guard checked
        async with self._weights_lock:
            served = self.weights["tenant"]
            if served is not None and body["tenant"] != served:
                error = f"this server holds tenant {served!r}'s weights; serve each on its own"
                status = 409
            elif _same_path(path, self.weights["path"]):
                error = None  # already served: nothing to reload
            else:
                error, status = await self._swap_weights(path, scope), 503
            if error is None:
                self.weights = {"tenant": body["tenant"], "version": body["version"], "path": path}
                self.aliases[f"agent-cl/{body['tenant']}"] = BASE_NAME
        if error is not None:
            await _send_json(send, status, {"error": error})
            return
        await _send_json(send, 200, self.state(caller))

    async def _swap_weights(self, path: str, scope) -> str | None:
        """Hold new requests, wait for running ones, reload, let them through; an error
        message when the swap did not happen (the old weights still answer)."""
        self._open.clear()
        try:
            deadline = time.monotonic() + DRAIN_SECONDS
            while sum(self.in_flight.values()) > 0:
                if time.monotonic() > deadline:
                    return f"requests still running after {DRAIN_SECONDS:.0f} s; not swapped"
                await asyncio.sleep(0.05)
            problem = await self._reload(path, scope)
            if problem is not None and self.weights["path"] is not None:
                # a failed reload may have written part of the weights: restore the old ones
                await self._reload(self.weights["path"], scope)
            return problem
        finally:
            self._open.set()

    async def _reload(self, path: str, scope) -> str | None:
        rpc = {"method": "reload_weights", "kwargs": {"weights_path": path}}
        for method, route, query, body in (
            ("POST", "/pause", b"mode=wait", b""),
            ("POST", "/collective_rpc", b"", json.dumps(rpc).encode()),
            ("POST", "/resume", b"", b""),
        ):
            status, answer = await self._call_app(scope, method, route, query, body)
            if status >= 400:
                if route != "/resume":
                    await self._call_app(scope, "POST", "/resume", b"", b"")
                return f"{route} failed ({status}): {answer[:300]!r}"
        return None

    async def _call_app(self, outer, method: str, path: str, query: bytes, body: bytes):
        """One request to vLLM's own routes, from inside the server (not through the policy);
        `outer` is the admin request's scope (the app and state FastAPI's routes read)."""
        scope = {
            **outer,
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query,
            "root_path": "",
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 0),
        }
        status, chunks = 500, []

        async def send(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, receive, send)
        return status, b"".join(chunks)

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
        state: dict[str, Any] = {
            "aliases": {a: m for a, m in self.aliases.items() if allowed(a)},
            "in_flight": {m: n for m, n in self.in_flight.items() if allowed(m) and n > 0},
            "merged": self.merged,
        }
        tenant = self.weights["tenant"]
        if self.merged and tenant is not None and allowed(f"agent-cl/{tenant}"):
            state["weights"] = {"tenant": tenant, "version": self.weights["version"]}
        return state

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
        if self.merged:
            await self._open.wait()  # a weight swap holds new requests until it is done
            send = self._stamped(send)
        if model is not None:  # no await between the wait and this count: a swap sees it
            self.in_flight[model] += 1
        try:
            await self.app(scope, _replay(raw, receive), send)
        finally:
            if model is not None:
                self.in_flight[model] -= 1
                if self.in_flight[model] <= 0:
                    del self.in_flight[model]  # names come and go: keep the map small

    def _stamped(self, send):
        """Merged mode: responses name the version whose weights wrote them (fixed for the
        whole request: a swap waits until nothing runs)."""
        tenant, version = self.weights["tenant"], self.weights["version"]
        if tenant is None or version is None:
            return send
        name = f'"model":"agent-cl/{tenant}@v{version:04d}"'.encode()

        async def stamped(message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"content-length"]
                message = {**message, "headers": headers}  # the body's length changes
            elif message["type"] == "http.response.body":
                message = {**message, "body": _BASE_MODEL_FIELD.sub(name, message.get("body", b""))}
            await send(message)

        return stamped

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


def _same_path(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and os.path.realpath(a) == os.path.realpath(b)


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
