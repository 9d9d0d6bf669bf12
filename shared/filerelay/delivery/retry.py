"""Manual retry: failed deliveries get a fresh cycle under the workspace's settings; nothing else moves."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from filerelay.db.models import Delivery, DeliveryStatus, Document
from filerelay.delivery.rules import policy_for, rollup, start_cycle
from filerelay.destinations import pull


class NothingToRetry(Exception):
    pass


def retry_deliveries(session: Session, deliveries: Iterable[Delivery], *, now: dt.datetime) -> list[tuple[str, str]]:
    """Put failed deliveries back to `retrying`, due now; `attempts` keeps counting. Returns wake-ups."""
    wake: list[tuple[str, str]] = []
    touched: set[str] = set()
    for delivery in deliveries:
        if delivery.status != DeliveryStatus.FAILED:
            continue
        policy = policy_for(delivery.document.repository.workspace, delivery.destination)
        touched.add(delivery.document_id)
        if delivery.destination.kind == pull.NAME:
            # Nothing to send: the integration fetches the document again and reports back.
            start_cycle(delivery, policy, status=DeliveryStatus.PENDING, now=now)
            continue
        # The TTL counts from the retry, not from when SAP sent the document.
        start_cycle(delivery, policy, status=DeliveryStatus.RETRYING, now=now)
        delivery.enqueued_at = now
        wake.append((delivery.id, delivery.destination.kind))
    for document in session.scalars(select(Document).where(Document.id.in_(touched)).with_for_update()):
        document.status = rollup(d.status for d in document.deliveries)
        document.updated_at = now
    session.flush()
    return wake


def retry_document(session: Session, document: Document, *, now: dt.datetime) -> list[tuple[str, str]]:
    failed = [d for d in document.deliveries if d.status == DeliveryStatus.FAILED]
    if not failed:
        raise NothingToRetry(f"document {document.id} has no failed delivery to retry")
    return retry_deliveries(session, failed, now=now)
