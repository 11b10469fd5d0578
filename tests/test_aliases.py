"""The alias middleware vLLM loads, driven as ASGI directly: fast checks of what the real-server
tests (test_vllm.py, benchmarks/security_check.py) cannot reach cheaply, such as a caller from
another machine, every refused route and every kind of bad load."""

from __future__ import annotations

import asyncio
import json

import pytest

from agent_cl.adapters.rules import AdapterRules
from agent_cl.serving.access import AccessPolicy
from agent_cl.serving.load_guard import LoadGuard
from agent_cl.serving.vllm_aliases import ALIASES_PATH, AliasMiddleware
from tests.adapters import fake_adapter


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


def call(
    app, method: str, path: str, body=None, *, client="127.0.0.1", key=None, auth=None, raw=None
):
    if raw is None:
        raw = json.dumps(body).encode() if body is not None else b""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    if key:
        headers.append((b"authorization", f"Bearer {key}".encode()))
    if auth is not None:
        headers.append((b"authorization", auth))
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
def app():
    inner = Recorder()
    middleware = AliasMiddleware(inner, AccessPolicy())
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
    monkeypatch.setenv("AGENT_CL_ADMIN_KEY", "k1")  # what VLLMServer puts in vLLM's environment
    middleware = AliasMiddleware(Recorder())
    alias = {"alias": "agent-cl/a", "model": "agent-cl/a@v0001"}
    assert call(middleware, "PUT", ALIASES_PATH, alias)[0] == 401  # loopback, no key
    assert call(middleware, "PUT", ALIASES_PATH, alias, key="wrong")[0] == 401
    assert call(middleware, "PUT", ALIASES_PATH, alias, client="10.1.2.3", key="k1")[0] == 200


KEYS = {"tenant-a-key": frozenset({"a"})}


@pytest.fixture
def keyed():
    inner = Recorder()
    return AliasMiddleware(inner, AccessPolicy("admin-key", KEYS, max_body=4096))


ROUTES_NOT_SERVED = [
    ("POST", "/invocations"),  # vLLM's SageMaker chat route: answered 200 without a key before
    ("POST", "/adapters"),  # vLLM's runtime LoRA route: it loaded any `src` path before
    ("POST", "/v1/responses"),
    ("POST", "/tokenize"),
    ("GET", "/metrics"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES_NOT_SERVED)
def test_routes_agent_cl_does_not_use_are_refused_with_any_key(keyed, app, method, path):
    chat = {"model": "agent-cl/a", "messages": []}
    for middleware, key in ((keyed, "admin-key"), (keyed, None), (app[0], None)):
        assert call(middleware, method, path, chat, key=key)[0] == 404


def test_with_a_key_every_route_but_health_needs_it(keyed):
    assert call(keyed, "GET", "/health")[0] == 200
    for method, path in (
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/completions"),
        ("GET", "/v1/models"),
        ("GET", ALIASES_PATH),
        ("POST", "/v1/load_lora_adapter"),
        ("POST", "/v1/unload_lora_adapter"),
    ):
        body = {"model": "agent-cl/a"}
        assert call(keyed, method, path, body)[0] == 401, path
        assert call(keyed, method, path, body, key="nope")[0] == 401, path


def test_an_inference_key_reaches_only_its_tenants_names(keyed):
    call(
        keyed,
        "PUT",
        ALIASES_PATH,
        {"alias": "agent-cl/a", "model": "agent-cl/a@v0001"},
        key="admin-key",
    )
    call(
        keyed,
        "PUT",
        ALIASES_PATH,
        {"alias": "agent-cl/b", "model": "agent-cl/b@v0003"},
        key="admin-key",
    )
    mine = "tenant-a-key"
    for model in ("agent-cl/a", "agent-cl/a@v0001", "agent-cl-base"):
        assert call(keyed, "POST", "/v1/chat/completions", {"model": model}, key=mine)[0] == 200
    for model in ("agent-cl/b", "agent-cl/b@v0003", "agent-cl/a@v0001/../b", "other"):
        status, body = call(keyed, "POST", "/v1/chat/completions", {"model": model}, key=mine)
        assert status == 403 and "may not use" in body["error"], model
    assert call(keyed, "POST", "/v1/completions", {"prompt": "x"}, key=mine)[0] == 403
    assert call(keyed, "GET", ALIASES_PATH, key=mine)[1]["aliases"] == {
        "agent-cl/a": "agent-cl/a@v0001"
    }
    for method, path in (("PUT", ALIASES_PATH), ("POST", "/v1/load_lora_adapter")):
        assert call(keyed, method, path, {"alias": "agent-cl/a", "model": "x"}, key=mine)[0] == 403
    # the admin key is not scoped
    assert (
        call(keyed, "POST", "/v1/chat/completions", {"model": "agent-cl/b"}, key="admin-key")[0]
        == 200
    )


def test_bodies_are_capped_before_any_key_is_checked(keyed):
    big = b"x" * 5000
    assert call(keyed, "POST", "/v1/chat/completions", raw=big)[0] == 413  # no key: still 413
    assert call(keyed, "POST", "/v1/chat/completions", raw=big, key="admin-key")[0] == 413


def test_a_chunked_body_past_the_cap_is_refused_while_read(keyed):
    sent: list[dict] = []
    chunks = [{"type": "http.request", "body": b"x" * 1000, "more_body": True}] * 10

    async def receive():
        return chunks.pop() if chunks else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [(b"authorization", b"Bearer admin-key")],  # no content-length
        "client": ("127.0.0.1", 1),
    }
    asyncio.run(keyed(scope, receive, send))
    assert sent[0]["status"] == 413 and len(chunks) < 10


@pytest.mark.parametrize(
    "auth", [b"Bearer \xff\xfe", b"\xc3\x28", b"Basic abc", b"Bearer", b"bearer  "]
)
def test_a_malformed_authorization_header_is_a_401_not_a_crash(keyed, auth):
    assert call(keyed, "GET", "/v1/models", auth=auth)[0] == 401


@pytest.fixture
def guarded(tmp_path):
    root = tmp_path / "adapters"
    good = fake_adapter(root / "a" / "v0001", "good")
    inner = Recorder()
    middleware = AliasMiddleware(inner, AccessPolicy(), LoadGuard(root, AdapterRules(max_rank=16)))
    return middleware, root, good


def load(middleware, name, path):
    return call(
        middleware, "POST", "/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(path)}
    )


def test_adapters_load_only_from_their_registry_directory(guarded, tmp_path):
    middleware, root, good = guarded
    assert load(middleware, "agent-cl/a@v0001", good)[0] == 200
    outside = fake_adapter(tmp_path / "elsewhere" / "v0001", "evil")
    (root / "b").mkdir()
    (root / "b" / "v0002").symlink_to(outside)
    fake_adapter(root / "b" / "v0003", "b's")
    refused = [
        ("agent-cl/a@v0001", outside),  # a path outside the registry
        ("agent-cl/a@v0001", root / "b" / ".." / "a" / ".." / ".." / "elsewhere" / "v0001"),
        ("agent-cl/b@v0002", root / "b" / "v0002"),  # a symlink leading out
        ("agent-cl/a@v0003", root / "b" / "v0003"),  # another tenant's version
        ("agent-cl/a@v0002", good),  # another version's directory
        ("my-lora", good),  # not an agent-cl version name
    ]
    for name, path in refused:
        status, body = load(middleware, name, path)
        assert status == 403, (name, path, body)


def test_a_load_from_the_registry_still_passes_the_rules(guarded):
    middleware, root, _ = guarded
    fake_adapter(root / "a" / "v0002", "rank 64", r=64)
    fake_adapter(root / "a" / "v0003", "nan", fill=float("nan"))
    assert "rank 64" in load(middleware, "agent-cl/a@v0002", root / "a" / "v0002")[1]["error"]
    assert "NaN" in load(middleware, "agent-cl/a@v0003", root / "a" / "v0003")[1]["error"]


def test_without_a_registry_root_every_load_is_refused(app, tmp_path):
    middleware, _ = app
    good = fake_adapter(tmp_path / "a" / "v0001", "good")
    status, body = load(middleware, "agent-cl/a@v0001", good)
    assert status == 403 and "without an adapter registry" in body["error"]


def test_bad_alias_requests_get_400(app):
    middleware, _ = app
    for body in ({"alias": "agent-cl/a"}, {"alias": "", "model": "x"}, {"alias": 3, "model": "x"}):
        assert call(middleware, "PUT", ALIASES_PATH, body)[0] == 400


class MergedEngine:
    """vLLM in merged mode behind the middleware: chat answers (slowly) with the weights it
    holds; `/collective_rpc reload_weights` changes them, and records whether anything ran."""

    def __init__(self) -> None:
        self.weights = "base"
        self.running = 0
        self.calls: list[tuple[str, int]] = []  # (path, requests running at that moment)

    async def __call__(self, scope, receive, send) -> None:
        message = await receive()
        body = json.loads(message["body"]) if message["body"] else {}
        self.calls.append((scope["path"], self.running))
        payload: dict = {}
        if scope["path"] == "/collective_rpc":
            self.weights = body["kwargs"]["weights_path"]
        elif scope["path"] == "/v1/chat/completions":
            self.running += 1
            weights = self.weights
            await asyncio.sleep(0.05)
            self.running -= 1
            payload = {"model": "agent-cl-base", "weights": weights}
        raw = json.dumps(payload, separators=(",", ":")).encode()  # vLLM's compact JSON
        headers = [(b"content-length", str(len(raw)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": raw})


async def acall(app, method: str, path: str, body=None) -> tuple[int, dict | None]:
    raw = json.dumps(body).encode() if body is not None else b""
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(b"content-length", str(len(raw)).encode())],
        "client": ("127.0.0.1", 5555),
    }
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": raw, "more_body": False}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    content = b"".join(m.get("body", b"") for m in sent[1:])
    return sent[0]["status"], json.loads(content) if content else None


def _model_dir(path):
    path.mkdir(parents=True)
    for name in ("model.safetensors", "config.json"):
        (path / name).write_text("{}")
    return path


def test_merged_mode_swaps_weights_only_when_nothing_runs_and_stamps_each_answer(tmp_path):
    base = _model_dir(tmp_path / "base")
    v1 = _model_dir(tmp_path / "adapters" / "a" / "merged" / "v0001")
    guard = LoadGuard(tmp_path / "adapters", AdapterRules(base_model_dir=base))
    engine = MergedEngine()
    middleware = AliasMiddleware(engine, AccessPolicy(), guard=guard, merged=True)
    chat = {"model": "agent-cl/a", "messages": []}
    swap = {"tenant": "a", "version": 1, "path": str(v1)}

    async def day():
        await acall(middleware, "PUT", "/v1/agent-cl/weights", {**swap, "version": None,
                                                                "path": str(base)})  # fmt: skip
        running = [asyncio.create_task(acall(middleware, "POST", "/v1/chat/completions", chat))
                   for _ in range(4)]  # fmt: skip
        await asyncio.sleep(0.01)  # they are in vLLM now
        swapping = asyncio.create_task(acall(middleware, "PUT", "/v1/agent-cl/weights", swap))
        await asyncio.sleep(0.01)
        held = [asyncio.create_task(acall(middleware, "POST", "/v1/chat/completions", chat))
                for _ in range(4)]  # fmt: skip
        return await asyncio.gather(*running), await swapping, await asyncio.gather(*held)

    before, swapped, after = asyncio.run(day())
    assert swapped[0] == 200 and swapped[1]["weights"] == {"tenant": "a", "version": 1}
    assert [(s, b["model"], b["weights"]) for s, b in before] == [
        (200, "agent-cl-base", str(base))
    ] * 4  # the base's weights wrote them, and they say so
    assert [(s, b["model"], b["weights"]) for s, b in after] == [
        (200, "agent-cl/a@v0001", str(v1))
    ] * 4  # held during the swap, then answered by v1 and stamped with it
    reloads = [(path, running) for path, running in engine.calls if path != "/v1/chat/completions"]
    assert ("/collective_rpc", 0) in reloads  # weights changed with nothing running
    assert [p for p, _ in reloads][-3:] == ["/pause", "/collective_rpc", "/resume"]
    state = asyncio.run(acall(middleware, "GET", ALIASES_PATH))[1]
    assert state["merged"] and state["aliases"]["agent-cl/a"] == "agent-cl-base"


def test_merged_swaps_load_only_the_tenants_merged_copies(tmp_path):
    base = _model_dir(tmp_path / "base")
    v1 = _model_dir(tmp_path / "adapters" / "a" / "merged" / "v0001")
    outside = _model_dir(tmp_path / "elsewhere")
    guard = LoadGuard(tmp_path / "adapters", AdapterRules(base_model_dir=base))
    middleware = AliasMiddleware(MergedEngine(), AccessPolicy(), guard=guard, merged=True)

    def put(body):
        return asyncio.run(acall(middleware, "PUT", "/v1/agent-cl/weights", body))

    assert put({"tenant": "a", "version": 1, "path": str(outside)})[0] == 403
    assert put({"tenant": "b", "version": 1, "path": str(v1)})[0] == 403  # another tenant's
    assert put({"tenant": "a", "version": 2, "path": str(v1)})[0] == 403  # another version's
    assert put({"tenant": "a", "version": None, "path": str(outside)})[0] == 403
    assert put({"tenant": "../a", "version": 1, "path": str(v1)})[0] == 403
    assert put(["not", "an", "object"])[0] == 403
    (v1 / "model.safetensors").unlink()
    assert "not a complete model" in put({"tenant": "a", "version": 1, "path": str(v1)})[1]["error"]
    (v1 / "model.safetensors").write_text("{}")
    assert put({"tenant": "a", "version": 1, "path": str(v1)})[0] == 200
    other = {"tenant": "b", "version": None, "path": str(base)}
    assert put(other)[0] == 409  # one tenant's weights per server
    lora = AliasMiddleware(MergedEngine(), AccessPolicy(), guard=guard, merged=False)
    status, body = asyncio.run(acall(lora, "PUT", "/v1/agent-cl/weights", {"tenant": "a"}))
    assert status == 409 and "merged mode" in body["error"]
