"""Manual retry: failed deliveries get a fresh cycle under the workspace's settings; nothing else moves."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy.orm import Session

from filerelay import audit, catalog
from filerelay.audit import Actor
from filerelay.catalog import DocumentFilter
from filerelay.db.models import Delivery, DeliveryStatus, Document
from filerelay.db.session import session_scope
from filerelay.delivery import transitions
from filerelay.delivery.rules import policy_for
from filerelay.delivery.transitions import Wake
from filerelay.runtime import Runtime


class NothingToRetry(Exception):
    pass


def retry_deliveries(session: Session, deliveries: Iterable[Delivery], *, now: dt.datetime) -> list[Wake]:
    """Put failed deliveries back to `retrying`, due now; `attempts` keeps counting. Others are left
    as they are (a bulk retry's selection may have moved on meanwhile). Returns wake-ups."""
    wake: list[Wake] = []
    touched: set[str] = set()
    for delivery in deliveries:
        if delivery.status != DeliveryStatus.FAILED:
            continue
        policy = policy_for(delivery.document.repository.workspace, delivery.destination)
        wake += transitions.retried(delivery, kind=delivery.destination.kind, policy=policy, now=now)
        touched.add(delivery.document_id)
    transitions.settle(session, touched, now=now)
    session.flush()
    return wake


def retry_document(session: Session, document: Document, *, now: dt.datetime) -> list[Wake]:
    failed = [d for d in document.deliveries if d.status == DeliveryStatus.FAILED]
    if not failed:
        raise NothingToRetry(f"document {document.id} has no failed delivery to retry")
    return retry_deliveries(session, failed, now=now)


# Failed deliveries re-queued per transaction by a bulk retry.
BULK_BATCH = 500


@dataclass(frozen=True)
class BulkRetried:
    documents: int
    deliveries: int


def retry_matching(
    runtime: Runtime,
    *,
    workspace_id: int,
    filters: DocumentFilter,
    actor: Actor,
    described: Mapping[str, str],
) -> BulkRetried:
    """Re-queue the failed deliveries the filters select, one transaction (and audit entry) per batch, woken
    after each commit: no huge transaction, and an interrupted bulk retry keeps what it did."""
    documents: set[str] = set()
    deliveries = 0
    after: str | None = None
    while True:
        with session_scope(runtime.sessions) as session:
            failed = catalog.failed_deliveries(
                session, workspace_id=workspace_id, filters=filters, limit=BULK_BATCH, after=after
            )
            if not failed:
                return BulkRetried(documents=len(documents), deliveries=deliveries)
            after = failed[-1].id
            documents |= {d.document_id for d in failed}
            wake = retry_deliveries(session, failed, now=runtime.clock.now())
            audit.record(
                session,
                workspace_id=workspace_id,
                actor=actor,
                action=audit.BULK_RETRY,
                target="documents",
                now=runtime.clock.now(),
                filters=dict(described),
                deliveries=len(wake),
            )
        deliveries += len(wake)
        runtime.enqueuer.enqueue(wake)
