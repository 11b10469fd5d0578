"""The alias middleware vLLM loads, driven as ASGI directly: fast checks of what the real-server
tests (test_vllm.py) cannot reach, such as a caller from another machine."""

from __future__ import annotations

import asyncio
import json

import pytest

from agent_cl.serving.vllm_aliases import ALIASES_PATH, AliasMiddleware


class Recorder:
    """The vLLM app behind the middleware: remembers the body it got, answers with it."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.seen_in_flight: list[dict] = []
        self.middleware: AliasMiddleware | None = None

    async def __call__(self, scope, receive, send) -> None:
        message = await receive()
        body = json.loads(message["body"]) if message["body"] else {}
        self.bodies.append(body)
        if self.middleware is not None:
            self.seen_in_flight.append(dict(self.middleware.in_flight))
        payload = json.dumps({"model": body.get("model"), "data": []}).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": payload})


def call(app, method: str, path: str, body: dict | None = None, *, client="127.0.0.1", key=None):
    raw = json.dumps(body).encode() if body is not None else b""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    if key:
        headers.append((b"authorization", f"Bearer {key}".encode()))
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": headers,
        "client": (client, 5555),
    }
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    status = sent[0]["status"]
    content = b"".join(m.get("body", b"") for m in sent[1:])
    return status, json.loads(content) if content else None


@pytest.fixture
def app(monkeypatch):
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    inner = Recorder()
    middleware = AliasMiddleware(inner)
    inner.middleware = middleware
    return middleware, inner


def test_stable_name_is_rewritten_per_request_and_counted_in_flight(app):
    middleware, inner = app
    chat = {"model": "agent-cl/a", "messages": []}
    assert call(middleware, "POST", "/v1/chat/completions", chat)[1]["model"] == "agent-cl/a"
    call(middleware, "PUT", ALIASES_PATH, {"alias": "agent-cl/a", "model": "agent-cl/a@v0002"})
    status, answer = call(middleware, "POST", "/v1/chat/completions", chat)
    assert status == 200 and answer["model"] == "agent-cl/a@v0002"
    assert inner.bodies[-1]["messages"] == []  # the rest of the body is untouched
    assert inner.seen_in_flight[-1] == {"agent-cl/a@v0002": 1}  # counted while it ran
    assert call(middleware, "GET", ALIASES_PATH)[1]["in_flight"] == {}  # and released
    other = {"model": "agent-cl/b", "messages": []}
    assert call(middleware, "POST", "/v1/chat/completions", other)[1]["model"] == "agent-cl/b"


def test_admin_routes_are_loopback_only_without_a_key(app):
    middleware, _ = app
    alias = {"alias": "agent-cl/a", "model": "evil"}
    for path in (ALIASES_PATH, "/v1/load_lora_adapter", "/v1/unload_lora_adapter"):
        status, body = call(
            middleware, "PUT" if path == ALIASES_PATH else "POST", path, alias, client="10.1.2.3"
        )
        assert status == 403 and "this machine only" in body["error"]
    assert call(middleware, "GET", ALIASES_PATH)[1]["aliases"] == {}
    # chat from another machine is vLLM's business, not refused here
    assert (
        call(middleware, "POST", "/v1/chat/completions", {"model": "m"}, client="10.1.2.3")[0]
        == 200
    )


def test_with_a_key_admin_routes_need_it_from_anywhere(monkeypatch):
    monkeypatch.setenv("VLLM_API_KEY", "k1")
    middleware = AliasMiddleware(Recorder())
    alias = {"alias": "agent-cl/a", "model": "agent-cl/a@v0001"}
    assert call(middleware, "PUT", ALIASES_PATH, alias)[0] == 403  # loopback, no key
    assert call(middleware, "PUT", ALIASES_PATH, alias, key="wrong")[0] == 403
    assert call(middleware, "PUT", ALIASES_PATH, alias, client="10.1.2.3", key="k1")[0] == 200


def test_bad_alias_requests_get_400(app):
    middleware, _ = app
    for body in ({"alias": "agent-cl/a"}, {"alias": "", "model": "x"}, {"alias": 3, "model": "x"}):
        assert call(middleware, "PUT", ALIASES_PATH, body)[0] == 400
