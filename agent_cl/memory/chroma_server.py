"""Chroma's own server (`chroma run`) over the store directory, for several processes at once.

While it runs it holds the embedded store's one-writer lock on that directory, so no process
can open the same files embedded behind its back; every process reaches the store through the
server instead (setting `store_url`). It binds 127.0.0.1 by default: Chroma's server has no
authentication of its own here, so exposing it is a deliberate `host` choice.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from agent_cl.managed_process import ManagedProcess, block_until_stopped
from agent_cl.memory.chroma_clients import WRITER_LOCKS

HEARTBEAT = "/api/v2/heartbeat"


class ChromaServerError(RuntimeError):
    """The server did not come up; the message ends with its log's tail."""


def chroma_executable() -> str:
    beside = Path(sys.executable).parent / "chroma"
    found = str(beside) if beside.exists() else shutil.which("chroma")
    if found is None:
        raise ChromaServerError("the `chroma` command is missing: pip install chromadb")
    return found


class ChromaServer(ManagedProcess):
    name = "chroma"
    error = ChromaServerError

    def __init__(
        self,
        path: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 8001,
        log_path: Path | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        if not 0 < port < 65536:
            raise ValueError(f"port must be 1-65535, got {port}")
        self.path = Path(path)
        self.host, self.port = host, port
        self.log_path = log_path or self.path.parent / "logs" / f"chroma-{port}.log"
        self.startup_timeout = startup_timeout

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ChromaServer:
        self.path.mkdir(parents=True, exist_ok=True)
        WRITER_LOCKS.acquire(self.path)  # StoreLockedError if a process has it open embedded
        try:
            cmd = [chroma_executable(), "run", "--path", str(self.path)]
            cmd += ["--host", self.host, "--port", str(self.port)]
            env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
            self.spawn(cmd, env, self.url + HEARTBEAT, timeout=self.startup_timeout, poll=0.2)
        except BaseException:
            WRITER_LOCKS.release(self.path)
            raise
        return self

    def stop(self, timeout: float = 15.0) -> None:
        super().stop(timeout)
        WRITER_LOCKS.release(self.path)

    def serve_forever(self, poll_seconds: float = 1.0) -> None:
        """Block until SIGTERM, Ctrl-C or the server's death; stop it on the way out."""
        try:
            block_until_stopped(self.alive, poll_seconds)
        finally:
            self.stop()

    def __enter__(self) -> ChromaServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
