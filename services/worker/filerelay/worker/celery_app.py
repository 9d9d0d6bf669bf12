"""The worker's Celery app: the producer's configuration plus the delivery task, nothing else."""

from __future__ import annotations

import signal
import threading

from celery import Celery, signals

from filerelay.queue import make_celery
from filerelay.runtime import Runtime, build_runtime
from filerelay.settings import Settings
from filerelay.worker import tasks


class ProcessRuntime:
    """One Runtime per worker process, built on first use and shared by its threads (the threads pool
    runs several deliveries in one process). Engines and connection pools must not cross a fork, so
    each prefork pool process builds its own after it starts."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._runtime: Runtime | None = None
        self._lock = threading.Lock()

    def get(self) -> Runtime:
        with self._lock:
            if self._runtime is None:
                self._runtime = build_runtime(self._settings)
            return self._runtime

    def forget(self) -> None:
        # The parent's runtime (if any) belongs to the parent; the child drops it without closing it.
        self._runtime = None


def make_worker_app(settings: Settings) -> Celery:
    app = make_celery(settings, name="filerelay-worker")
    # An ack lost to a dying broker restarts the connection instead of leaving the worker idle for good.
    app.conf.worker_consumer = "filerelay.worker.consumer:RecoveringConsumer"
    runtime = ProcessRuntime(settings)
    tasks.register(app, runtime.get)

    @signals.worker_process_init.connect(weak=False)
    def _fresh_process(**_: object) -> None:
        runtime.forget()
        # SIGTERM is the main process's business: its warm shutdown lets the running delivery finish. A pool
        # process signalled directly too (a process-group signal) would die mid-upload and leave the
        # delivery leased until the sweeper takes it back. If the main process dies, the kernel still
        # kills the pool processes (Celery sets PDEATHSIG).
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    return app


def run_worker(app: Celery, argv: list[str]) -> int:
    """Run `celery worker` with `argv`; the worker's exit code (Celery's start drops it and returns None,
    which would end every worker with 0: a supervisor must see a stalled worker's 3, or Celery's 1)."""
    codes: list[int] = []

    @signals.worker_shutdown.connect(weak=False)
    def _record(sender: object = None, **_: object) -> None:
        code = getattr(sender, "exitcode", None)
        if isinstance(code, int):
            codes.append(code)

    try:
        app.start(argv)
    finally:
        signals.worker_shutdown.disconnect(_record)
    return codes[-1] if codes else 0
