"""Files that survive a crash at any instant and a bad byte: readers see the old version or the
new, never half of one, and a file that was damaged anyway fails with its name and the fix.

The one place that writes durable state: the adapter registry (versions, `CURRENT`), the sleep
job's journal and training checkpoints, the provisioned model and merged models. Also the
cross-process locks (one sleep or rollback per tenant, one writer per embedded store).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from filelock import FileLock, Timeout


class CorruptFileError(RuntimeError):
    """A durable file cannot be read; the message names it and how to fix it."""

    def __init__(self, path: Path, problem: str, fix: str) -> None:
        self.path = Path(path)
        super().__init__(f"{path} is corrupt ({problem}); {fix}")


class LockedError(RuntimeError):
    """Another process holds the lock; the message says who should let go, or what to use."""


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[IO[bytes]], Any]) -> None:
    """Temp file in the same directory, `write(fh)`, fsync, rename over `path`, fsync the
    directory. `write` may be anything that writes a binary file (torch.save, json.dump...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=str))


def read_json(path: Path, *, fix: str) -> Any:
    """JSON from `path`; FileNotFoundError if absent, CorruptFileError (naming `fix`) if it is
    not JSON, so a damaged file is never mistaken for an empty one."""
    raw = Path(path).read_bytes()
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptFileError(path, f"not JSON: {exc}", fix) from exc


@contextmanager
def atomic_directory(target: Path, *, replace: bool = False) -> Iterator[Path]:
    """Yield an empty hidden directory beside `target`; on a clean exit its files are fsynced
    and it is renamed to `target` in one step (with `replace`, over an existing `target`). On
    an error, or a kill, `target` is untouched; a killed run leaves a `.<name>.partial-*`
    directory that `remove_partial_directories` clears."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not replace:
        raise FileExistsError(f"{target} exists")
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; models and adapters are shared read-only
    try:
        yield tmp
        for item in tmp.rglob("*"):
            if item.is_file():
                fsync_path(item)
        fsync_path(tmp)
        if target.exists():
            stale = target.with_name(f".{target.name}.stale-{os.getpid()}")
            os.replace(target, stale)
            os.replace(tmp, target)
            shutil.rmtree(stale, ignore_errors=True)
        else:
            os.replace(tmp, target)
        fsync_path(target.parent)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def remove_partial_directories(parent: Path) -> None:
    """Half-written directories left in `parent` by a killed `atomic_directory`."""
    for pattern in (".*.partial-*", ".*.stale-*"):
        for child in Path(parent).glob(pattern):
            if child.is_dir():
                shutil.rmtree(child, ignore_errors=True)


@contextmanager
def exclusive_lock(path: Path, *, busy: str) -> Iterator[None]:
    """Hold an advisory lock on `path` across processes, or raise LockedError(`busy`) at once.
    The operating system drops the lock when its process dies, so a crash never leaves one."""
    lock = ProcessLock(path)
    lock.acquire(busy=busy)
    try:
        yield
    finally:
        lock.release()


def set_aside(path: Path, *, into: Path | None = None, label: str = "corrupt") -> Path:
    """Move a damaged file or directory out of the way, keeping it for inspection: renamed to
    `<into or its folder>/<name>.<label>-<time>` (a unique name), in one step. Returns where."""
    path = Path(path)
    folder = Path(into) if into is not None else path.parent
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{path.name}.{label}-{int(time.time())}"
    aside = folder / stem
    n = 1
    while aside.exists():
        aside = folder / f"{stem}-{n}"
        n += 1
    os.replace(path, aside)
    fsync_path(folder)
    return aside


class ProcessLock:
    """A cross-process lock held for as long as the caller likes (an open store, a running
    daemon), shared by the threads of this process: `acquire` counts, the last `release` lets
    go. The operating system drops it when the process dies, so a crash never leaves one."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        # not thread-local: a store opened in one thread may be closed in another
        self._lock = FileLock(str(self.path), thread_local=False)
        self._count = 0
        self._mutex = threading.Lock()

    def acquire(self, *, busy: str) -> None:
        """Take the lock now or raise LockedError(`busy`); re-entrant within this process."""
        with self._mutex:
            if self._count == 0:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    self._lock.acquire(timeout=0)
                except Timeout as exc:
                    raise LockedError(busy) from exc
            self._count += 1

    def release(self) -> None:
        with self._mutex:
            if self._count == 0:
                return
            self._count -= 1
            if self._count == 0:
                self._lock.release()

    @property
    def held(self) -> bool:
        return self._count > 0
