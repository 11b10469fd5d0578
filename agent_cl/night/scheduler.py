"""When nights run: the daemon's triggers (cron, pending count, idle time) and its lock.

What a night does is `night.py`'s `Night.run`; the daemon only decides when to call it.

The daemon (APScheduler) fires a night on a cron expression, and also when enough
demonstrations are pending or when no new demonstration has arrived for a while (the agent is
idle). One night runs at a time (a lock in the daemon, each tenant's own file lock in the
sleep job, and one daemon per home). SIGTERM stops the scheduler once the running night is
over; a night killed outright (SIGKILL) resumes from its journal on the next start.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from agent_cl.durable import LockedError, ProcessLock
from agent_cl.memory.base import DemonstrationStore
from agent_cl.memory.schema import DemoStatus

log = logging.getLogger(__name__)

RunNight = Callable[[], Any]  # what a trigger calls: one night (`Night.run`)


def tenants_to_consolidate(
    store: DemonstrationStore, *, unfinished: tuple[str, ...] = ()
) -> list[str]:
    """Tenants with pending demonstrations (or an unfinished run), sorted."""
    pending = {d.tenant for d in store.list(status=DemoStatus.PENDING)}
    return sorted(pending | set(unfinished))


@dataclass(frozen=True)
class Triggers:
    cron: str | None = None  # crontab expression, e.g. "0 2 * * *"
    min_pending: int | None = None  # a night as soon as this many demonstrations are pending
    idle_minutes: float | None = None  # ... or when none arrived for this long (and some wait)
    poll_seconds: float = 60.0

    @classmethod
    def from_settings(cls, settings) -> Triggers:
        """The daemon's triggers from `daemon_*` settings (ValueError when none is set)."""
        return cls(
            settings.daemon_cron,
            settings.daemon_min_pending,
            settings.daemon_idle_minutes,
            settings.daemon_poll_seconds,
        )

    def next_cron_time(self, now: datetime | None = None) -> datetime | None:
        """When the cron trigger fires next (None without one)."""
        if self.cron is None:
            return None
        from apscheduler.triggers.cron import CronTrigger

        now = now or datetime.now().astimezone()
        return CronTrigger.from_crontab(self.cron).get_next_fire_time(None, now)

    def __post_init__(self) -> None:
        if self.cron is None and self.min_pending is None and self.idle_minutes is None:
            raise ValueError("give at least one trigger: cron, min_pending or idle_minutes")
        if self.cron is not None:
            from apscheduler.triggers.cron import CronTrigger

            try:
                CronTrigger.from_crontab(self.cron)
            except ValueError as exc:
                raise ValueError(f"invalid cron expression {self.cron!r}: {exc}") from exc
        if self.min_pending is not None and self.min_pending < 1:
            raise ValueError(f"min_pending must be >= 1, got {self.min_pending}")
        if self.idle_minutes is not None and self.idle_minutes <= 0:
            raise ValueError(f"idle_minutes must be > 0, got {self.idle_minutes}")
        if self.poll_seconds <= 0:
            raise ValueError(f"poll_seconds must be > 0, got {self.poll_seconds}")


def due(store: DemonstrationStore, triggers: Triggers, now: float | None = None) -> str | None:
    """Why a night is due now according to the store-based triggers, or None. Only new work
    counts: a rejected night's demonstrations, pending again for their retry, would otherwise
    start the next night at once on the very batch just rejected; they go with the next night
    that new demonstrations (or the cron) start."""
    pending = [d for d in store.list(status=DemoStatus.PENDING) if d.attempts == 0]
    if not pending:
        return None
    if triggers.min_pending is not None and len(pending) >= triggers.min_pending:
        return f"{len(pending)} demonstrations pending (>= {triggers.min_pending})"
    if triggers.idle_minutes is not None:
        idle = ((now or time.time()) - max(d.created_at for d in pending)) / 60.0
        if idle >= triggers.idle_minutes:
            return f"idle for {idle:.1f} min (>= {triggers.idle_minutes})"
    return None


class DaemonAlreadyRunningError(RuntimeError):
    """One daemon per home: another one holds its lock."""


class SleepDaemon:
    """Runs `night` on the triggers until SIGTERM/SIGINT; one night at a time."""

    def __init__(
        self, night: RunNight, store: DemonstrationStore, triggers: Triggers, lock_path: Path
    ) -> None:
        self.night = night
        self.store = store
        self.triggers = triggers
        self.lock_path = Path(lock_path)
        self.nights_run = 0
        self._busy = threading.Lock()
        self._scheduler = None

    def run_night(self, reason: str) -> None:
        if not self._busy.acquire(blocking=False):
            log.info("night already running; skipped trigger: %s", reason)
            return
        try:
            log.info("night starts: %s", reason)
            self.night()
            self.nights_run += 1
        except Exception:  # one failed night must not stop the daemon
            log.exception("night failed")
        finally:
            self._busy.release()

    def _poll(self) -> None:
        reason = due(self.store, self.triggers)
        if reason is not None:
            self.run_night(reason)

    def serve(self) -> None:
        """Block until SIGTERM/SIGINT; the running night finishes before we return."""
        from apscheduler.schedulers.blocking import BlockingScheduler
        from apscheduler.triggers.cron import CronTrigger

        lock = ProcessLock(self.lock_path)
        try:
            lock.acquire(busy=f"another daemon holds {self.lock_path}")
        except LockedError as exc:
            raise DaemonAlreadyRunningError(str(exc)) from exc
        scheduler = BlockingScheduler()
        self._scheduler = scheduler
        if self.triggers.cron is not None:
            scheduler.add_job(
                self.run_night,
                CronTrigger.from_crontab(self.triggers.cron),
                args=[f"cron {self.triggers.cron}"],
                max_instances=1,
                coalesce=True,
            )
        if self.triggers.min_pending is not None or self.triggers.idle_minutes is not None:
            scheduler.add_job(
                self._poll,
                "interval",
                seconds=self.triggers.poll_seconds,
                max_instances=1,
                coalesce=True,
                next_run_time=_now(),
            )
        previous = {s: signal.signal(s, self._stop) for s in (signal.SIGTERM, signal.SIGINT)}
        log.info("daemon started (%s)", self.triggers)
        try:
            scheduler.start()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            lock.release()
            log.info("daemon stopped after %d nights", self.nights_run)

    def _stop(self, signum, frame) -> None:
        log.info("signal %d: stopping after the running night", signum)
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)  # returns once the running night is over


def _now():
    from datetime import datetime

    return datetime.now().astimezone()
