"""Thin, explicitly named tasks: a kind (or an id) in, the delivery service does the work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery

from filerelay.delivery import service
from filerelay.delivery.drain import Drainer
from filerelay.queue import DELIVER_TASK, DRAIN_TASK


def register(app: Celery, drainer: Callable[[], Drainer]) -> None:
    """Add the delivery tasks to `app`; `drainer` gives the calling process its Drainer."""

    # Acknowledged when taken: a drain can run for a while, and a wake-up lost with a killed worker costs
    # one sweeper pass (its deliveries' leases bring them back), not a redelivery hours later.
    @app.task(name=DRAIN_TASK, acks_late=False, ignore_result=True)
    def drain(kind: str, **_: Any) -> None:
        process = drainer()
        # Cleared before claiming: work committed from now on sends a wake-up of its own.
        process.runtime.enqueuer.taken(kind)
        process.drain([kind])

    @app.task(name=DELIVER_TASK, acks_late=True, ignore_result=True)
    def deliver(delivery_id: str, **_: Any) -> None:
        service.run(drainer().runtime, delivery_id)
