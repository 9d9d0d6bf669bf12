"""What the console's overview shows: documents by status, each destination's health, the oldest
document still waiting, and deliveries per hour. Plain queries over indexes; no Flask here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from filerelay.db.models import (
    AttemptOutcome,
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Destination,
    Document,
    DocumentStatus,
)
from filerelay.delivery import transitions
from filerelay.delivery.transitions import WAITING

# A document is undelivered while its roll-up says so.
UNDELIVERED = (DocumentStatus.PENDING, DocumentStatus.RETRYING)


@dataclass(frozen=True)
class DestinationLine:
    id: str
    name: str
    kind: str
    enabled: bool
    paused: bool
    breaker: str  # closed | open | probing
    consecutive_failures: int
    last_success: dt.datetime | None
    failures_last_hour: int
    waiting: int


def status_counts(session: Session, *, workspace_id: int, since: Sequence[dt.datetime]) -> list[dict[str, int]]:
    """Live documents received since each moment in `since`, by status (every status present, zeros
    included): one scan of the longest window, each shorter one counted within it."""
    rows = session.execute(
        select(Document.status, *(func.count().filter(Document.received_at >= moment) for moment in since))
        .where(Document.workspace_id == workspace_id, Document.deleted_at.is_(None), Document.received_at >= min(since))
        .group_by(Document.status)
    ).all()
    counts = [{status.value: 0 for status in DocumentStatus} for _ in since]
    for status, *numbers in rows:
        for window, n in zip(counts, numbers, strict=True):
            window[status] = int(n)
    return counts


def destination_lines(session: Session, *, workspace_id: int, now: dt.datetime) -> list[DestinationLine]:
    """Each destination's health. Every figure is a per-destination subquery on an index of its own (the
    last success on (destination, delivered_at), the waiting ones on a partial index, the failures of the
    last hour on failed attempts only), so the page costs the same at a million deliveries as at ten."""
    last_success = (
        select(func.max(Delivery.delivered_at)).where(Delivery.destination_id == Destination.id).scalar_subquery()
    )
    waiting = (
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.destination_id == Destination.id, Delivery.status.in_(WAITING))
        .scalar_subquery()
    )
    failures = (
        select(func.count())
        .select_from(DeliveryAttempt)
        .join(Delivery, Delivery.id == DeliveryAttempt.delivery_id)
        .where(
            Delivery.destination_id == Destination.id,
            DeliveryAttempt.outcome == AttemptOutcome.FAILED,
            DeliveryAttempt.finished_at >= now - dt.timedelta(hours=1),
        )
        .scalar_subquery()
    )
    rows = session.execute(
        select(Destination, last_success, waiting, failures)
        .where(Destination.workspace_id == workspace_id)
        .order_by(Destination.name)
    ).all()
    return [
        DestinationLine(
            id=d.public_id,
            name=d.name,
            kind=d.kind,
            enabled=d.enabled,
            paused=d.paused_at is not None,
            breaker=transitions.breaker_state(d).value,
            consecutive_failures=d.consecutive_failures or 0,
            last_success=success,
            failures_last_hour=int(failed or 0),
            waiting=int(held or 0),
        )
        for d, success, held, failed in rows
    ]


def destination_ids(session: Session, *, workspace_id: int) -> list[str]:
    """The workspace's destinations' public ids, by name (a filter's choices)."""
    return list(
        session.scalars(
            select(Destination.public_id).where(Destination.workspace_id == workspace_id).order_by(Destination.name)
        )
    )


def due_by_kind(session: Session, *, workspace_id: int, now: dt.datetime) -> dict[str, int]:
    """This workspace's deliveries due now and not yet taken by a worker, per destination kind: its share of
    each kind's queue. (The broker's queues are shared by every workspace; their depth is on /metrics.)"""
    rows = session.execute(
        select(Destination.kind, func.count())
        .join(Delivery, Delivery.destination_id == Destination.id)
        .where(
            Destination.workspace_id == workspace_id,
            Delivery.status.in_((DeliveryStatus.PENDING, DeliveryStatus.RETRYING)),
            or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
        )
        .group_by(Destination.kind)
    ).all()
    return {kind: int(n) for kind, n in rows}


def oldest_undelivered(session: Session, *, workspace_id: int) -> Document | None:
    """The live document that has waited longest for its deliveries (pending or retrying): the oldest of
    each status, each the first row of its (workspace, status, received_at) index."""
    found = [
        session.scalars(
            select(Document)
            .where(Document.workspace_id == workspace_id, Document.deleted_at.is_(None), Document.status == status)
            .order_by(Document.received_at, Document.id)
            .limit(1)
        ).first()
        for status in UNDELIVERED
    ]
    candidates = [d for d in found if d is not None]
    return min(candidates, key=lambda d: (d.received_at, d.id)) if candidates else None


def delivered_per_hour(session: Session, *, workspace_id: int, now: dt.datetime, hours: int = 24) -> list[int]:
    """Deliveries that succeeded in each of the last `hours` whole hours up to now, oldest first (one scan)."""
    starts = hour_starts(now, hours)
    buckets = [
        func.count().filter(and_(Delivery.delivered_at >= start, Delivery.delivered_at < start + dt.timedelta(hours=1)))
        for start in starts
    ]
    row = session.execute(
        select(*buckets)
        .join(Destination, Destination.id == Delivery.destination_id)
        .where(Destination.workspace_id == workspace_id, Delivery.delivered_at >= starts[0])
    ).one()
    return [int(n) for n in row]


def hour_starts(now: dt.datetime, hours: int = 24) -> Sequence[dt.datetime]:
    """The start of each bucket `delivered_per_hour` counts, oldest first."""
    end = now.replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    return [end - dt.timedelta(hours=hours - n) for n in range(hours)]
