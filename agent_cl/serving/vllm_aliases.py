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
only once nothing runs on it, and it guards the admin routes: with an API key (from the
environment, never argv) they need it; without one, adapter loading and aliasing are refused
to anything but loopback callers.

It runs inside the vLLM process, so it imports nothing but the standard library and Starlette.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
from collections import Counter
from typing import Any

ALIASES_PATH = "/v1/agent-cl/aliases"
API_KEY_ENV = "VLLM_API_KEY"  # vLLM reads the same variable, so the key never sits on argv
ADMIN_PATHS = (ALIASES_PATH, "/v1/load_lora_adapter", "/v1/unload_lora_adapter")
# Requests whose JSON body names a model; only these bodies are read and rewritten.
MODEL_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/responses", "/v1/embeddings")
MODELS_PATH = "/v1/models"


class AliasMiddleware:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.aliases: dict[str, str] = {}
        self.in_flight: Counter[str] = Counter()
        key = os.environ.get(API_KEY_ENV)
        self._key_hash = hashlib.sha256(key.encode()).digest() if key else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, method = scope["path"], scope.get("method", "GET")
        if path in ADMIN_PATHS and not self._admin_allowed(scope):
            await _send_json(send, 403, {"error": _refusal(self._key_hash is not None)})
        elif path == ALIASES_PATH:
            await self._aliases_route(method, receive, send)
        elif path in MODEL_PATHS and method == "POST":
            await self._rewritten(scope, receive, send)
        elif path == MODELS_PATH and method == "GET":
            await self._models_with_aliases(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    # -- admin --------------------------------------------------------------------------------
    def _admin_allowed(self, scope) -> bool:
        if self._key_hash is None:
            host = (scope.get("client") or ("", 0))[0]
            return _is_loopback(host)
        auth = dict(scope["headers"]).get(b"authorization", b"").decode()
        scheme, _, token = auth.partition(" ")
        digest = hashlib.sha256(token.encode()).digest()
        return scheme.lower() == "bearer" and hmac.compare_digest(digest, self._key_hash)

    async def _aliases_route(self, method: str, receive, send) -> None:
        if method == "GET":
            await _send_json(send, 200, self.state())
            return
        if method != "PUT":
            await _send_json(send, 405, {"error": "GET or PUT"})
            return
        try:
            body = json.loads(await _read_body(receive))
            alias, model = body["alias"], body["model"]
            if not isinstance(alias, str) or not isinstance(model, str) or not alias or not model:
                raise ValueError("alias and model must be non-empty strings")
        except (ValueError, KeyError, TypeError) as exc:
            await _send_json(send, 400, {"error": f'PUT {{"alias": ..., "model": ...}}: {exc}'})
            return
        self.aliases[alias] = model
        await _send_json(send, 200, self.state())

    def state(self) -> dict[str, Any]:
        return {"aliases": dict(self.aliases), "in_flight": +self.in_flight}

    # -- inference ----------------------------------------------------------------------------
    async def _rewritten(self, scope, receive, send) -> None:
        raw = await _read_body(receive)
        model = None
        try:
            body = json.loads(raw)
            if isinstance(body, dict) and isinstance(body.get("model"), str):
                model = self.aliases.get(body["model"], body["model"])
                if model != body["model"]:
                    raw = json.dumps({**body, "model": model}).encode()
        except ValueError:
            pass  # not JSON: vLLM answers it with its own error
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

    async def _models_with_aliases(self, scope, receive, send) -> None:
        """vLLM's model list plus one entry per alias (its `root` is the target's), so a
        client that lists models finds `agent-cl/<tenant>`."""
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


async def _read_body(receive) -> bytes:
    parts = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        parts.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(parts)


async def _send_json(send, status: int, payload: dict) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _refusal(keyed: bool) -> str:
    if keyed:
        return "this route needs the server's API key (Authorization: Bearer ...)"
    return "without an API key, adapters are loaded and aliased from this machine only"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
