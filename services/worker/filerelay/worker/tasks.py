"""Thin, explicitly named tasks: ids in, the delivery service does the work."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery import Celery

from filerelay.delivery import service
from filerelay.queue import DELIVER_TASK
from filerelay.runtime import Runtime


def register(app: Celery, runtime: Callable[[], Runtime]) -> None:
    """Add the delivery task to `app`; `runtime` gives the calling process its Runtime."""

    @app.task(name=DELIVER_TASK, acks_late=True, ignore_result=True)
    def deliver(delivery_id: str, **_: Any) -> None:
        service.run(runtime(), delivery_id)
