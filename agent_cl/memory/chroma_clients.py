"""How agent-cl reaches Chroma: embedded (one writer process per path) or a server (many).

Two processes writing one embedded Chroma path lose vectors silently (measured: 18-27% lost),
so the first embedded open of a path takes an OS lock for as long as a store is open on it in
this process, and another process gets `StoreLockedError` naming the fix: serve the store
(`agent-cl memory serve`) and set `store_url`. Every Chroma-backed store (demonstrations,
LangGraph's BaseStore) opens through `ChromaConnection`, so they share the rule.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from agent_cl.config import Settings
from agent_cl.durable import CorruptFileError, LockedError, ProcessLock

WRITER_LOCK = ".agent-cl-writer.lock"
STORE_FIX = (
    "restore the store folder from a backup, or move it aside to start an empty store "
    "(its demonstrations are lost with it)"
)
_WRITER_PID = ".agent-cl-writer.pid"


class StoreLockedError(LockedError):
    """Another process has the embedded store open."""


class _PathLocks:
    """The embedded store's one-writer rule, per process: the first `open` of a path takes an
    OS lock (dropped when the process dies), later opens in the same process share it (Chroma
    itself shares one client per path within a process)."""

    def __init__(self) -> None:
        self._locks: dict[Path, ProcessLock] = {}  # only paths with an open store or server
        self._mutex = threading.Lock()

    def acquire(self, path: Path) -> None:
        path = path.resolve()
        with self._mutex:
            lock = self._locks.get(path) or ProcessLock(path / WRITER_LOCK)
            first = not lock.held
            try:
                lock.acquire(busy=f"the store at {path} is open in another process")
            except LockedError as exc:
                # named at failure time, so the message carries the owner's current pid
                raise StoreLockedError(_locked_message(path)) from exc
            if first:
                try:
                    (path / _WRITER_PID).write_text(str(os.getpid()))
                except BaseException:
                    lock.release()
                    raise
            self._locks[path] = lock

    def release(self, path: Path) -> None:
        path = path.resolve()
        with self._mutex:
            lock = self._locks.get(path)
            if lock is None:
                return
            lock.release()
            if not lock.held:
                del self._locks[path]


WRITER_LOCKS = _PathLocks()


def _locked_message(path: Path) -> str:
    try:
        owner = f"process {(path / _WRITER_PID).read_text().strip()}"
    except OSError:
        owner = "another process"
    return (
        f"the store at {path} is open in {owner}; two processes writing one embedded Chroma "
        "lose writes. Share it through a server: `agent-cl memory serve` (stop the other "
        "process first), then set store_url (AGENT_CL_STORE_URL=http://127.0.0.1:8001) "
        "in every process"
    )


class ChromaConnection:
    """Constructors shared by the Chroma-backed stores: `cls(client, **kwargs)` on an embedded
    path (`open`), a server (`from_url`) or whatever `Settings` name (`for_settings`)."""

    _locked_path: Path | None = None

    @classmethod
    def open(cls, path: Path | str, **kwargs: Any):
        """A store in `path` (created if missing), this process its only writer until
        `close()` or exit (StoreLockedError when another process has it)."""
        import chromadb
        from chromadb.config import Settings as ChromaSettings
        from chromadb.errors import ChromaError

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        WRITER_LOCKS.acquire(path)
        try:
            client = chromadb.PersistentClient(
                path=str(path), settings=ChromaSettings(anonymized_telemetry=False)
            )
            store = cls(client, **kwargs)
        except ChromaError as exc:  # a truncated or foreign file: say which and what to do
            WRITER_LOCKS.release(path)
            raise CorruptFileError(path, f"Chroma cannot open it: {exc}", STORE_FIX) from exc
        except BaseException:
            WRITER_LOCKS.release(path)
            raise
        store._locked_path = path
        return store

    @classmethod
    def from_url(cls, url: str, **kwargs: Any):
        """A store on a Chroma server (`agent-cl memory serve`), safe for many writers."""
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"store_url must look like http://127.0.0.1:8001, got {url!r}")
        client = chromadb.HttpClient(
            host=parsed.hostname,
            port=parsed.port or (443 if parsed.scheme == "https" else 80),
            ssl=parsed.scheme == "https",
            settings=ChromaSettings(anonymized_telemetry=False),
        )
        return cls(client, **kwargs)

    @classmethod
    def for_settings(cls, settings: Settings, **kwargs: Any):
        """The store `settings` name: the server at `store_url`, else the embedded one."""
        if settings.store_url:
            return cls.from_url(settings.store_url, **kwargs)
        return cls.open(settings.store_dir, **kwargs)

    def close(self) -> None:
        """Let another process open the embedded store (a no-op on a server)."""
        if self._locked_path is not None:
            WRITER_LOCKS.release(self._locked_path)
            self._locked_path = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
