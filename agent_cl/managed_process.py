"""A server we start as a child process, wait for, watch and stop: vLLM and Chroma's server.

The child gets its own session (our Ctrl-C in a test does not reach it twice) and a log file;
`start` returns once its health URL answers 200 or raises with the log's tail; `stop` ends its
whole process group (vLLM forks workers), politely first.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, for a server we are about to start."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ManagedProcess:
    name = "server"
    error: type[Exception] = RuntimeError  # what a failed start raises
    process: subprocess.Popen | None = None
    log_path: Path

    def spawn(
        self,
        command: list[str],
        env: dict[str, str],
        health_url: str,
        *,
        timeout: float,
        headers: dict[str, str] | None = None,
        poll: float = 0.5,
    ) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                code = self.process.returncode
                raise self.error(f"{self.name} exited with {code}:\n{self.log_tail()}")
            try:
                if httpx.get(health_url, headers=headers or {}, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(poll)
        self.stop()
        raise self.error(f"{self.name} not healthy after {timeout:.0f} s:\n{self.log_tail()}")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        if not self.alive():
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL, for crash tests."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def block_until_stopped(alive: Callable[[], bool], poll_seconds: float = 1.0) -> None:
    """Return on SIGTERM, Ctrl-C or when `alive()` turns false (the server died)."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set() and alive():
            stop.wait(poll_seconds)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
