"""Thin, explicitly named tasks: ids in, the delivery service does the work."""

from __future__ import annotations

from typing import Any

from celery import Celery

from filerelay.delivery import service
from filerelay.queue import DELIVER_TASK


def register(app: Celery) -> None:
    @app.task(name=DELIVER_TASK, acks_late=True, ignore_result=True)
    def deliver(delivery_id: str, **_: Any) -> None:
        from filerelay.worker.celery_app import runtime_for

        service.run(runtime_for(app), delivery_id)
