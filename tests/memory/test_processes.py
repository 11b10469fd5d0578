"""The store across processes: the embedded store has one writer, a Chroma server has many.
Real processes and a real `chroma run` server, as deployed (`agent-cl memory serve`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from agent_cl.managed_process import free_port
from agent_cl.memory.chroma import ChromaDemonstrationStore
from agent_cl.memory.chroma_server import ChromaServer
from agent_cl.memory.schema import Demonstration

ROOT = Path(__file__).resolve().parents[2]

OPEN_EMBEDDED = """
import sys
from pathlib import Path
from agent_cl.memory.chroma import ChromaDemonstrationStore, StoreLockedError
try:
    ChromaDemonstrationStore.open(Path(sys.argv[1]))
except StoreLockedError as exc:
    print(exc)
    sys.exit(3)
print("opened")
"""

WRITER = """
import sys
from agent_cl.memory.chroma import ChromaDemonstrationStore
from agent_cl.memory.schema import Demonstration
from tests.conftest import HashEmbedder
url, worker, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
store = ChromaDemonstrationStore.from_url(url, embedder=HashEmbedder())
for i in range(n):  # one episode at a time, as agents log them
    store.add([Demonstration(query=f"worker {worker} question {i}?", answer=f"answer {i}",
                             tenant="a" if worker % 2 else "b")])
print("wrote", n)
"""


def run_python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=ROOT,
        **kwargs,
    )


def test_embedded_store_refuses_a_second_process_until_closed(tmp_path, hash_embedder):
    store = ChromaDemonstrationStore.open(tmp_path / "store", embedder=hash_embedder)
    again = ChromaDemonstrationStore.open(tmp_path / "store", embedder=hash_embedder)
    other = run_python(OPEN_EMBEDDED, str(tmp_path / "store"))
    out = other.communicate(timeout=120)[0]
    assert other.returncode == 3, out
    assert "agent-cl memory serve" in out and "store_url" in out  # the message names the fix
    store.close()
    again.close()  # the lock goes with the last store open in this process
    other = run_python(OPEN_EMBEDDED, str(tmp_path / "store"))
    assert other.communicate(timeout=120)[0].strip().endswith("opened")


def test_four_processes_write_2000_demonstrations_through_the_server(tmp_path, hash_embedder):
    with ChromaServer(tmp_path / "store", port=free_port()) as server:
        # the server holds the path: nobody can open it embedded behind its back
        blocked = run_python(OPEN_EMBEDDED, str(tmp_path / "store"))
        assert blocked.communicate(timeout=120)[0] and blocked.returncode == 3
        writers = [run_python(WRITER, server.url, str(w), "500") for w in range(4)]
        outputs = [w.communicate(timeout=600)[0] for w in writers]
        assert all(w.returncode == 0 for w in writers), outputs
        store = ChromaDemonstrationStore.from_url(server.url, embedder=hash_embedder)
        everything = store.list()
        assert len(everything) == 2000 == store.count()  # none lost
        assert len({d.id for d in everything}) == 2000  # none duplicated
        assert store.count(tenant="a") == store.count(tenant="b") == 1000
        one_of_b = store.list(tenant="b", limit=1)[0]
        with pytest.raises(KeyError):
            store.get([one_of_b.id], tenant="a")
        store.add([Demonstration(query="after the writers?", answer="yes")])
    reopened = ChromaDemonstrationStore.open(tmp_path / "store", embedder=hash_embedder)
    assert reopened.count() == 2001  # what the server wrote is the embedded store's data
    reopened.close()
