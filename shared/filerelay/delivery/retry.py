"""Manual retry: failed deliveries get a fresh cycle under the workspace's settings, and a pull integration's
last report on a document whose pull delivery is retried is cleared; nothing else moves.
The rules only: filerelay.operations audits a retry and wakes the deliveries after the commit."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy.orm import Session

from filerelay.db.models import Delivery, DeliveryStatus, Document
from filerelay.delivery import transitions
from filerelay.delivery.rules import policy_for
from filerelay.delivery.transitions import Wake
from filerelay.destinations.base import is_pushed


class NothingToRetry(Exception):
    pass


class StagedBytesReleased(NothingToRetry):
    """The document failed long enough ago that its staged bytes were released: nothing is left to send."""


def retry_deliveries(session: Session, deliveries: Iterable[Delivery], *, now: dt.datetime) -> list[Wake]:
    """Put failed deliveries back to `retrying`, due now; `attempts` keeps counting. Others are left
    as they are (a bulk retry's selection may have moved on meanwhile). Returns wake-ups."""
    wake: list[Wake] = []
    touched: set[str] = set()
    exported_again: set[str] = set()
    for delivery in deliveries:
        if delivery.status != DeliveryStatus.FAILED or delivery.document.staging_key is None:
            continue
        policy = policy_for(delivery.document.repository.workspace, delivery.destination)
        wake += transitions.retried(delivery, kind=delivery.destination.kind, policy=policy, now=now)
        touched.add(delivery.document_id)
        if not is_pushed(delivery.destination.kind):
            exported_again.add(delivery.document_id)
    for document in transitions.settle(session, touched, now=now):
        if document.id in exported_again:
            transitions.export_reset(document, now=now)
    session.flush()
    return wake


def retry_document(session: Session, document: Document, *, now: dt.datetime) -> list[Wake]:
    # Locked first: the sweeper releasing its bytes meanwhile either went before (and is seen) or waits.
    transitions.locked(session, [document.id])
    failed = [d for d in document.deliveries if d.status == DeliveryStatus.FAILED]
    if not failed:
        raise NothingToRetry(f"document {document.id} has no failed delivery to retry")
    if document.staging_key is None:
        at = document.staging_released_at.isoformat() if document.staging_released_at else "earlier"
        raise StagedBytesReleased(
            f"document {document.id} cannot be retried: its staged bytes were released ({at}):"
            f" {document.staging_released_reason or 'the staged bytes are gone'}"
        )
    return retry_deliveries(session, failed, now=now)
