"""Probe a real keyed `agent-cl serve` as a hostile but ordinary client would, and count what got
through. Every count must be 0; positive controls (the admin key, a tenant's own inference key,
a load from the registry) must succeed, or the probes prove nothing.

  python benchmarks/security_check.py --quick [--out bench-results/security_check.json]

Ends with one line: `unauthorized_ok=0 foreign_tenant_ok=0 outside_registry_loads=0
oversized_accepted=0 key_in_argv=0`. Exit 1 when a count is not 0 or a control failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ADMIN_KEY = "adm1n-" + os.urandom(8).hex()
TENANT_KEY = "tenant-a-" + os.urandom(8).hex()
CHAT = {"messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 2}
ROUTES = [  # served by agent-cl, and some vLLM mounts that agent-cl never uses
    ("POST", "/v1/chat/completions", {"model": "agent-cl/a", **CHAT}),
    ("POST", "/v1/completions", {"model": "agent-cl/a", "prompt": "hi", "max_tokens": 2}),
    ("GET", "/v1/models", None),
    ("GET", "/v1/agent-cl/aliases", None),
    ("PUT", "/v1/agent-cl/aliases", {"alias": "agent-cl/a", "model": "agent-cl-base"}),
    ("POST", "/v1/load_lora_adapter", {"lora_name": "agent-cl/a@v0003", "lora_path": "/tmp"}),
    ("POST", "/v1/unload_lora_adapter", {"lora_name": "agent-cl/a@v0001"}),
    ("POST", "/invocations", {"model": "agent-cl/a", **CHAT}),
    ("POST", "/adapters", {"name": "x", "src": "/tmp"}),
    ("POST", "/v1/responses", {"model": "agent-cl/a", "input": "hi"}),
    ("POST", "/tokenize", {"model": "agent-cl/a", "prompt": "hi"}),
    ("GET", "/metrics", None),
    ("GET", "/openapi.json", None),
    ("GET", "/docs", None),
    ("GET", "/version", None),
]
ADMIN_ONLY = {"/v1/agent-cl/aliases PUT", "/v1/load_lora_adapter", "/v1/unload_lora_adapter"}
SERVED = {  # the routes agent-cl uses; every other one must be refused whatever the key
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/models",
    "/v1/agent-cl/aliases",
    "/v1/load_lora_adapter",
    "/v1/unload_lora_adapter",
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one pass of every probe")
    parser.add_argument("--out", type=Path, default=Path("bench-results/security_check.json"))
    parser.add_argument("--model-dir", type=Path, help="default: the provisioned embedded model")
    return parser.parse_args()


def prepare_home(home: Path, model_dir: Path) -> dict[str, Path]:
    """Two tenants with a published adapter each, an inference key for tenant a only, and
    adapters a load must never reach: outside the registry, and a rank the server refuses."""
    from agent_cl.adapters.registry import registry_for
    from agent_cl.config import Settings
    from agent_cl.evals.marker_adapter import train_marker_adapter

    settings = Settings(home=home, model_dir=model_dir, torch_threads=2)
    trained = train_marker_adapter(model_dir, home / "scratch" / "marker", "Quenvel Ostrami")
    for tenant in ("a", "b"):
        registry = registry_for(settings, tenant)
        registry.publish(trained)
        registry.publish(trained)  # v2, loaded by the control
        registry.set_current(1)
    outside = home / "outside" / "v0003"
    shutil.copytree(trained, outside)
    high_rank = settings.paths("a").adapters / "v0007"
    shutil.copytree(trained, high_rank)
    config = json.loads((high_rank / "adapter_config.json").read_text())
    (high_rank / "adapter_config.json").write_text(json.dumps({**config, "r": 64}))
    (settings.paths("b").adapters / "v0009").symlink_to(outside)
    keys = home / "inference-keys.json"
    keys.write_text(json.dumps({TENANT_KEY: ["a"]}))
    keys.chmod(0o600)
    return {"outside": outside, "high_rank": high_rank, "keys": keys}


def start_server(home: Path, model_dir: Path, keys: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ)
    env.update(
        AGENT_CL_HOME=str(home),
        AGENT_CL_MODEL_DIR=str(model_dir),
        AGENT_CL_VLLM_API_KEY=ADMIN_KEY,
        AGENT_CL_SERVE_INFERENCE_KEYS=str(keys),
        AGENT_CL_SERVE_PORT=str(port),
    )
    cmd = [sys.executable, "-m", "agent_cl.cli", "serve"]
    log = (home / "serve.log").open("w")
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def wait_ready(client, process: subprocess.Popen, home: Path, timeout: float = 400.0) -> None:
    """Ready once every tenant's alias is set (serve sets them after vLLM's health)."""
    end = time.time() + timeout
    while time.time() < end:
        if process.poll() is not None:
            raise SystemExit(f"agent-cl serve exited:\n{(home / 'serve.log').read_text()[-3000:]}")
        try:
            got = client.get("/v1/agent-cl/aliases", headers=auth(ADMIN_KEY))
            if got.status_code == 200 and len(got.json()["aliases"]) >= 2:
                return
        except Exception:
            pass
        time.sleep(1.0)
    raise SystemExit("agent-cl serve did not become ready")


def auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}


def send(client, method: str, path: str, body, headers=None):
    return client.request(method, path, json=body, headers=headers or {})


def probe_unauthorized(client) -> list[str]:
    """Without a valid key (none, wrong, malformed, not UTF-8), nothing but health answers;
    an inference key reaches no admin route; no key reaches a route agent-cl does not use."""
    bad = [{}, auth("wrong"), {"Authorization": "Basic YTpi"}, {"Authorization": "Bearer"}]
    leaks = []
    for method, path, body in ROUTES:
        for headers in bad:
            if send(client, method, path, body, headers).is_success:
                leaks.append(f"{method} {path} with {headers or 'no key'}")
        not_utf8 = [(b"authorization", b"Bearer \xff\xfe")]
        if client.send(client.build_request(method, path, json=body, headers=not_utf8)).is_success:
            leaks.append(f"{method} {path} with a non-UTF-8 key")
        for key in (ADMIN_KEY, TENANT_KEY):
            if path not in SERVED and send(client, method, path, body, auth(key)).is_success:
                leaks.append(f"{method} {path}: a route agent-cl does not use answered")
        admin_only = f"{path} {method}" in ADMIN_ONLY or path in ADMIN_ONLY
        if admin_only and send(client, method, path, body, auth(TENANT_KEY)).is_success:
            leaks.append(f"{method} {path} with an inference key")
    return leaks


def probe_foreign_tenant(client) -> list[str]:
    leaks = []
    for model in ("agent-cl/b", "agent-cl/b@v0001", "agent-cl/b@v0002"):
        reply = client.post(
            "/v1/chat/completions", json={"model": model, **CHAT}, headers=auth(TENANT_KEY)
        )
        if reply.is_success:
            leaks.append(f"chat as {model}")
    listed = client.get("/v1/models", headers=auth(TENANT_KEY)).json().get("data", [])
    leaks += [f"listed {m['id']}" for m in listed if m["id"].startswith("agent-cl/b")]
    aliases = client.get("/v1/agent-cl/aliases", headers=auth(TENANT_KEY)).json()
    leaks += [f"alias {a} shown" for a in aliases.get("aliases", {}) if a.startswith("agent-cl/b")]
    return leaks


def probe_outside_registry(client, home: Path, paths: dict[str, Path]) -> list[str]:
    a = home / "adapters" / "a"
    attempts = [
        ("agent-cl/a@v0003", paths["outside"]),  # a valid adapter outside the registry
        ("agent-cl/a@v0003", a / ".." / ".." / "outside" / "v0003"),  # traversal
        ("agent-cl/b@v0009", home / "adapters" / "b" / "v0009"),  # a symlink leading out
        ("agent-cl/a@v0001", home / "adapters" / "b" / "v0001"),  # another tenant's version
        ("agent-cl/a@v0007", paths["high_rank"]),  # inside, but above the served rank
        ("my-own-name", a / "v0002"),  # not an agent-cl version name
    ]
    leaks = []
    for name, path in attempts:
        body = {"lora_name": name, "lora_path": str(path)}
        if client.post("/v1/load_lora_adapter", json=body, headers=auth(ADMIN_KEY)).is_success:
            leaks.append(f"loaded {name} from {path}")
    return leaks


def probe_oversized(client) -> list[str]:
    big = b'{"model": "agent-cl/a", "pad": "' + b"x" * (50 << 20) + b'"}'
    leaks = []
    for headers in ({}, auth(ADMIN_KEY)):
        got = client.post("/v1/chat/completions", content=big, headers=headers)
        if got.is_success or got.status_code != 413:
            leaks.append(f"50 MB body -> {got.status_code} ({'keyed' if headers else 'no key'})")

    def chunks():
        for _ in range(50):
            yield b"x" * (1 << 20)

    got = client.post("/v1/chat/completions", content=chunks(), headers=auth(ADMIN_KEY))
    if got.is_success:
        leaks.append(f"50 MB chunked body -> {got.status_code}")
    return leaks


def probe_argv() -> list[str]:
    leaks = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            raw = cmdline.read_bytes()
        except OSError:
            continue
        for key in (ADMIN_KEY, TENANT_KEY):
            if key.encode() in raw:
                leaks.append(f"pid {cmdline.parent.name} has a key in its argv")
    return leaks


def controls(client, home: Path) -> dict[str, int]:
    """What must work, or the zeros above mean nothing."""
    load = {"lora_name": "agent-cl/a@v0002", "lora_path": str(home / "adapters/a/v0002")}
    mine = {"model": "agent-cl/a", **CHAT}
    return {
        "health_without_key": client.get("/health").status_code,
        "admin_aliases": client.get("/v1/agent-cl/aliases", headers=auth(ADMIN_KEY)).status_code,
        "own_tenant_chat": client.post(
            "/v1/chat/completions", json=mine, headers=auth(TENANT_KEY)
        ).status_code,
        "registry_load": client.post(
            "/v1/load_lora_adapter", json=load, headers=auth(ADMIN_KEY)
        ).status_code,
    }


def run_probes(client, home: Path, paths: dict[str, Path]) -> dict:
    found = {
        "unauthorized_ok": probe_unauthorized(client),
        "foreign_tenant_ok": probe_foreign_tenant(client),
        "outside_registry_loads": probe_outside_registry(client, home, paths),
        "oversized_accepted": probe_oversized(client),
        "key_in_argv": probe_argv(),
    }
    return {"leaks": found, "controls": controls(client, home)}


def main() -> int:
    args = parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import httpx

    from agent_cl.config import Settings
    from agent_cl.managed_process import free_port
    from agent_cl.models.provision import resolve_model_dir

    settings = Settings.load()
    model_dir = args.model_dir or resolve_model_dir(settings.model_dir, settings.models_dir)
    home = Path(tempfile.mkdtemp(prefix="agent-cl-security-"))
    started = time.perf_counter()
    try:
        paths = prepare_home(home, model_dir)
        port = free_port()
        server = start_server(home, model_dir, paths["keys"], port)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120.0) as client:
                wait_ready(client, server, home)
                result = run_probes(client, home, paths)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    counts = {name: len(items) for name, items in result["leaks"].items()}
    result.update(counts=counts, seconds=time.perf_counter() - started, quick=args.quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    bad_controls = {k: v for k, v in result["controls"].items() if v != 200}
    if bad_controls:
        print(f"controls failed (the probes prove nothing): {bad_controls}", file=sys.stderr)
    for name, items in result["leaks"].items():
        for item in items:
            print(f"{name}: {item}", file=sys.stderr)
    print(" ".join(f"{name}={count}" for name, count in counts.items()))
    return 1 if bad_controls or any(counts.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
