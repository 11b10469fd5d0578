"""Chroma's own server (`chroma run`) over the store directory, for several processes at once.

While it runs it holds the embedded store's one-writer lock on that directory, so no process
can open the same files embedded behind its back; every process reaches the store through the
server instead (setting `store_url`). It binds 127.0.0.1 by default: Chroma's server has no
authentication of its own here, so exposing it is a deliberate `host` choice.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from agent_cl.memory.chroma import WRITER_LOCKS

HEARTBEAT = "/api/v2/heartbeat"


class ChromaServerError(RuntimeError):
    """The server did not come up; the message ends with its log's tail."""


def chroma_executable() -> str:
    beside = Path(sys.executable).parent / "chroma"
    found = str(beside) if beside.exists() else shutil.which("chroma")
    if found is None:
        raise ChromaServerError("the `chroma` command is missing: pip install chromadb")
    return found


class ChromaServer:
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
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ChromaServer:
        self.path.mkdir(parents=True, exist_ok=True)
        WRITER_LOCKS.acquire(self.path)  # StoreLockedError if a process has it open embedded
        try:
            self._spawn()
        except BaseException:
            WRITER_LOCKS.release(self.path)
            raise
        return self

    def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [chroma_executable(), "run", "--path", str(self.path)]
        cmd += ["--host", self.host, "--port", str(self.port)]
        with open(self.log_path, "ab") as log:
            env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
            self.process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ChromaServerError(
                    f"chroma exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                if httpx.get(self.url + HEARTBEAT, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise ChromaServerError(
            f"chroma not up after {self.startup_timeout:.0f} s:\n{self.log_tail()}"
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        WRITER_LOCKS.release(self.path)

    def serve_forever(self, poll_seconds: float = 1.0) -> None:
        """Block until SIGTERM, Ctrl-C or the server's death; stop it on the way out."""
        stop = threading.Event()
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.is_set() and self.alive():
                stop.wait(poll_seconds)
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.stop()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def __enter__(self) -> ChromaServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
