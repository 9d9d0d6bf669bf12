"""The worker's watchdog: a worker that stopped taking work says so, and exits to be started again.

A worker is taking work when, while wake-ups wait in its queues and it has a free thread (or pool
process), it takes one within `stall_seconds`. One that does not is connected to nothing, whatever its
broker connection claims (see filerelay.worker.consumer for the way this happened after Redis restarts).
It then asks for a warm shutdown with exit code 3 (what it runs finishes; a supervisor starts it again:
Kubernetes, Compose's `restart: unless-stopped`); a redelivered wake-up or the sweeper brings back what it
held, and a delivery's lease keeps a duplicate from doing anything.

While it is taking work (or has none waiting, or is busy, or cannot see the broker: a reconnect is
Celery's business), it touches its heartbeat file, `$FILERELAY_HOME/worker-<hostname>.heartbeat`, every
check: a liveness probe fails the worker whose file is older than a few checks, which also catches a
watchdog that itself stopped.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from celery import Celery, signals
from celery.worker import state

from filerelay import heartbeats
from filerelay.queue import queue_depths
from filerelay.settings import Settings

log = logging.getLogger("filerelay.worker.watchdog")

# The exit code of a worker that stopped taking work (Celery uses 0, 1 and 2 for its own ends).
STALLED_EXIT_CODE = 3
# How long a warm shutdown may take before the process ends anyway: a stalled worker runs little.
SHUTDOWN_GRACE_SECONDS = 300.0


class Watchdog:
    """Decides, one check at a time, whether the worker is taking work; `check` says True while it is."""

    def __init__(
        self,
        waiting: Callable[[], int | None],
        busy: Callable[[], bool],
        *,
        stall_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._waiting = waiting  # wake-ups waiting in the worker's queues; None when the broker is unreadable
        self._busy = busy  # every thread (pool process) is running a delivery
        self._stall = stall_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._last_taken = clock()
        self._waiting_since: float | None = None

    def taken(self) -> None:
        """The consumer received a wake-up."""
        with self._lock:
            self._last_taken = self._clock()

    def check(self) -> bool:
        now = self._clock()
        waiting = self._waiting()
        with self._lock:
            if not waiting or self._busy():
                # Nothing to take, the broker unreadable, or no room to take it: nothing to judge.
                self._waiting_since = None
                return True
            if self._waiting_since is None:
                self._waiting_since = now
            # Counted from the later of: wake-ups seen waiting, the last one taken.
            return now - max(self._waiting_since, self._last_taken) < self._stall


def install(
    app: Celery, settings: Settings, queues: list[str], concurrency: int, stall_seconds: float, *, suffix: str = ""
) -> None:
    """Watch the worker `app` runs from the moment it is ready; `stall_seconds` <= 0 turns it off."""
    if stall_seconds <= 0:
        return
    interval = min(5.0, stall_seconds / 4)
    heartbeat = heartbeats.worker_path(settings.home, suffix=suffix)

    def waiting() -> int | None:
        try:
            depths = queue_depths(settings)
        except Exception:  # the broker down or restarting: Celery reconnects, nothing to judge here
            return None
        return sum(depths.get(name, 0) for name in queues)

    watchdog = Watchdog(waiting, lambda: len(state.active_requests) >= concurrency, stall_seconds=stall_seconds)

    @signals.task_received.connect(weak=False)
    def _taken(**_: object) -> None:
        watchdog.taken()

    started = threading.Event()

    @signals.worker_ready.connect(weak=False)
    def _start(**_: object) -> None:
        if started.is_set():  # Celery sends it once; one watchdog whatever happens
            return
        started.set()
        heartbeats.beat(heartbeat)
        watch = threading.Thread(
            target=_watch, args=(watchdog, heartbeat, interval, stall_seconds, queues), name="filerelay-watchdog"
        )
        watch.daemon = True
        watch.start()


def _watch(watchdog: Watchdog, heartbeat: Path, interval: float, stall_seconds: float, queues: list[str]) -> None:
    while True:
        time.sleep(interval)
        try:
            healthy = watchdog.check()
        except Exception:
            log.exception("the watchdog's check failed; trying again")
            continue
        if healthy:
            heartbeats.beat(heartbeat)
            continue
        log.critical(
            "the worker took no wake-up for %.0f s while wake-ups waited in %s and it had room for them; "
            "stopping (exit code %d) to be started again",
            stall_seconds,
            ", ".join(queues),
            STALLED_EXIT_CODE,
        )
        # What SIGTERM does: the consumer loop sees it and shuts down warmly, with our exit code.
        state.should_stop = STALLED_EXIT_CODE  # type: ignore[assignment]  # celery-types: None only
        time.sleep(SHUTDOWN_GRACE_SECONDS)
        log.critical("the warm shutdown did not end within %.0f s; exiting", SHUTDOWN_GRACE_SECONDS)
        os._exit(STALLED_EXIT_CODE)
