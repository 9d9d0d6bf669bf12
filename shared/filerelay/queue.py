"""The producer side of the delivery queues: names, broker configuration, and enqueue-after-commit.

The queue is only a wake-up call (docs/architecture.md#processes): every message can be lost or duplicated without
losing or doubling a delivery, because the database row is the truth and the sweeper re-enqueues.
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from celery import Celery

from filerelay.logs import log_context
from filerelay.settings import Settings

log = logging.getLogger(__name__)

DELIVER_TASK = "filerelay.deliver"
# Destination kinds with a worker pool of their own; a new kind adds its name here.
KINDS = ("s3", "sharepoint", "folder", "pull", "webhook", "sftp", "email", "azure_blob", "gcs")


def queue_name(kind: str) -> str:
    return f"deliver.{kind}"


def celery_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "task_acks_late": True,
        # Each of a worker's threads keeps up to four wake-ups in hand, so it never waits on Redis between
        # deliveries (bench.relay: 52 against 42 docs/s at --concurrency 4 with one). A wake-up held by a
        # worker that dies is harmless: the sweeper wakes the delivery again, and a duplicate claims nothing.
        "worker_prefetch_multiplier": 4,
        "task_ignore_result": True,
        "result_backend": None,
        "task_default_queue": queue_name("folder"),
        "task_create_missing_queues": True,
        # A delivery outliving the visibility timeout would be redelivered while running; the lease
        # makes that harmless, and the long timeout keeps it rare.
        "broker_transport_options": {"visibility_timeout": 6 * 3600},
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "worker_enable_remote_control": False,
        "worker_send_task_events": False,
    }
    if settings.embedded_broker:
        folder = settings.broker_dir
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        config["broker_transport_options"] = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "processed_folder": str(folder / "processed"),
            # Exchange bindings; kombu's default is ./control, relative to wherever the process started.
            "control_folder": str(folder / "control"),
            "store_processed": False,
            "polling_interval": settings.broker_polling_interval,
        }
    return config


def make_celery(settings: Settings, name: str = "filerelay") -> Celery:
    app = Celery(name, set_as_current=False)
    app.conf.update(celery_config(settings))
    return app


def make_producer(settings: Settings) -> Celery:
    """The Celery app a process sends wake-ups with: one that gives up at once when the broker is down.

    SAP waits for its 201 in a dialog or batch work process, and the wake-up is not needed for it (the
    sweeper sends any that did not go): kombu's default of retrying the connection with growing pauses
    cost every create about 6 s while Redis refused connections."""
    app = make_celery(settings, name="filerelay-producer")
    app.conf.broker_transport_options = {
        **app.conf.broker_transport_options,
        "max_retries": 0,
        # Loopback or in-cluster Redis answers in well under a millisecond: these bound one that hangs.
        "socket_connect_timeout": 0.3,
        "socket_timeout": 1.0,
    }
    return app


class Enqueuer:
    """Sends delivery wake-ups. Failures are logged, never raised: the sweeper will send them later.

    After a failed send, wake-ups are skipped for `pause` seconds: a broker that hangs rather than refuses
    would otherwise cost each create its connect timeout, and the sweeper covers what was skipped."""

    def __init__(self, app: Celery, *, pause: float = 5.0) -> None:
        self._app = app
        self._pause = pause
        self._down_until = 0.0

    def enqueue(self, deliveries: Iterable[tuple[str, str]]) -> int:
        sent = 0
        for delivery_id, kind in deliveries:
            if time.monotonic() < self._down_until:
                continue
            try:
                self._app.send_task(DELIVER_TASK, args=(delivery_id,), queue=queue_name(kind), retry=False)
            except Exception as exc:
                self._down_until = time.monotonic() + self._pause
                with log_context(delivery_id=delivery_id):
                    log.warning(
                        "could not send the wake-up of delivery %s (%s); none is sent for %.0f s, the sweeper "
                        "sends what waits",
                        delivery_id,
                        type(exc).__name__,
                        self._pause,
                    )
            else:
                sent += 1
        return sent

    def ping(self) -> None:
        """Raise if the broker cannot be reached (at once: no retries)."""
        with self._app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=0, timeout=2)


def queue_depths(settings: Settings) -> dict[str, int]:
    """Messages waiting in each delivery queue, by queue name; not those a worker has taken.

    For /metrics (and the autoscaler's view of the same lists). Raises when the broker cannot be read.
    """
    names = [queue_name(kind) for kind in KINDS]
    if settings.embedded_broker:
        # kombu's filesystem transport: one file per message, named `<time>_<uuid>.<queue>.msg`, all
        # queues in one folder, so one listing counts them all.
        found = Counter(entry.name.partition(".")[2] for entry in os.scandir(settings.broker_dir / "queue"))
        return {name: found[f"{name}.msg"] for name in names}
    import redis  # only a Redis broker needs it; celery[redis] brings it

    if not settings.broker_url.startswith(("redis://", "rediss://")):
        scheme = settings.broker_url.partition(":")[0]  # never the whole URL: it may carry a password
        raise ValueError(f"queue depth is only known for Redis and the embedded broker, not {scheme}")
    # kombu keeps a Redis queue as a list named after it; we send no priorities, so no priority sub-lists.
    client = redis.Redis.from_url(settings.broker_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.llen(name)
            return dict(zip(names, (int(n) for n in pipe.execute()), strict=True))
    finally:
        client.close()
