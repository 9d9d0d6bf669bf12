"""The worker's Celery app: the producer's configuration plus the delivery task, nothing else."""

from __future__ import annotations

import signal
import threading

from celery import Celery, signals

from filerelay.delivery.drain import Drainer
from filerelay.queue import make_celery
from filerelay.runtime import build_runtime
from filerelay.settings import Settings
from filerelay.worker import tasks
from filerelay.worker.consumer import PromptPoll


class ProcessDrainer:
    """One Runtime and Drainer per worker process, built on first use and shared by its drains (each
    kind's wake-up runs in a thread of Celery's pool; the uploads in the Drainer's threads). Engines and
    connection pools must not cross a fork, so each prefork pool process builds its own after it starts."""

    def __init__(self, settings: Settings, concurrency: int) -> None:
        self._settings = settings
        self._concurrency = concurrency
        self._drainer: Drainer | None = None
        self._lock = threading.Lock()

    def get(self) -> Drainer:
        with self._lock:
            if self._drainer is None:
                self._drainer = Drainer(build_runtime(self._settings), concurrency=self._concurrency)
            return self._drainer

    def stopping(self) -> None:
        if self._drainer is not None:
            self._drainer.stopping.set()

    def forget(self) -> None:
        # The parent's (if any) belongs to the parent; the child drops it without closing it.
        self._drainer = None


def make_worker_app(settings: Settings, concurrency: int = 8) -> Celery:
    """The worker's app; `concurrency` deliveries run in parallel in each process."""
    app = make_celery(settings, name="filerelay-worker")
    # An ack lost to a dying broker restarts the connection instead of leaving the worker idle for good.
    app.conf.worker_consumer = "filerelay.worker.consumer:RecoveringConsumer"
    # A process whose drain ended asks for the next wake-up at once, not at its loop's next timer.
    app.steps["consumer"].add(PromptPoll)
    runtime = ProcessDrainer(settings, concurrency)
    tasks.register(app, runtime.get)

    @signals.worker_process_init.connect(weak=False)
    def _fresh_process(**_: object) -> None:
        runtime.forget()
        # SIGTERM is the main process's business: its warm shutdown lets the running delivery finish. A pool
        # process signalled directly too (a process-group signal) would die mid-upload and leave the
        # delivery leased until the sweeper takes it back. If the main process dies, the kernel still
        # kills the pool processes (Celery sets PDEATHSIG).
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    @signals.worker_shutting_down.connect(weak=False)
    def _stop_draining(**_: object) -> None:
        # A warm shutdown waits for the running drains: they claim nothing more and end with their uploads.
        runtime.stopping()
        # Once shutting down, a second SIGTERM changes nothing: a process of a multi-process worker gets
        # one from its process group and another from its parent, and the second could leave the warm
        # shutdown hanging. (Sent from Celery's signal handler, in the main thread.)
        if threading.current_thread() is threading.main_thread():
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
