"""The worker's Celery app: the producer's configuration plus the delivery task, nothing else."""

from __future__ import annotations

import signal

from celery import Celery, signals

from filerelay.queue import make_celery
from filerelay.runtime import Runtime, build_runtime
from filerelay.settings import Settings

_runtime: Runtime | None = None


def make_worker_app(settings: Settings) -> Celery:
    from filerelay.worker import tasks

    app = make_celery(settings, name="filerelay-worker")
    tasks.register(app)

    @signals.worker_process_init.connect(weak=False)
    def _fresh_runtime(**_: object) -> None:
        # Engines and connection pools must not cross a fork: each pool process builds its own.
        global _runtime
        _runtime = None
        # SIGTERM is the main process's business: its warm shutdown lets the running delivery finish. A pool
        # process signalled directly too (a process-group signal) would die mid-upload and leave the
        # delivery leased until the sweeper takes it back. If the main process dies, the kernel still
        # kills the pool processes (Celery sets PDEATHSIG).
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    app.conf["filerelay_settings"] = settings
    return app


def runtime_for(app: Celery) -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = build_runtime(app.conf["filerelay_settings"])
    return _runtime
