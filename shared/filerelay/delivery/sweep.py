"""The sweeper's work, as functions of (session, now): each query walks an index over due rows
only, so a sweep costs what is due, not what the tables hold."""

from __future__ import annotations

import datetime as dt
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from filerelay import files
from filerelay.db.models import Delivery, DeliveryAttempt, DeliveryStatus, Destination, Document, DocumentStatus
from filerelay.db.session import session_scope
from filerelay.delivery import health, retention, transitions
from filerelay.delivery.rules import policy_for
from filerelay.delivery.transitions import WAITING
from filerelay.runtime import Runtime

log = logging.getLogger(__name__)


def due_kinds(session: Session, *, now: dt.datetime) -> list[str]:
    """The destination kinds with a delivery due that a worker may take: each is woken (a wake-up lost
    with a flushed Redis or a killed worker, a retry now due). One index probe per destination."""
    due = (
        select(Delivery.id)
        .where(
            Delivery.destination_id == Destination.id,
            transitions.due(Delivery.status, Delivery.next_attempt_at, now),
            # Not for a disabled, paused or open destination (but its probe), nor a pull one (its
            # integration moves it): a worker would find nothing to claim.
            health.attemptable(Delivery.id),
        )
        .limit(1)
    )
    return list(
        session.scalars(
            select(Destination.kind).where(due.exists()).group_by(Destination.kind).order_by(Destination.kind)
        )
    )


def recover_expired_leases(
    session: Session, *, now: dt.datetime, limit: int, rand: Callable[[], float] = random.random
) -> int:
    """Deliveries whose worker died mid-attempt: the attempt counts, the retry rules decide what next."""
    deliveries = session.scalars(
        select(Delivery)
        .where(Delivery.status == DeliveryStatus.DELIVERING, Delivery.lease_until < now)
        .order_by(Delivery.lease_until)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for delivery in deliveries:
        attempt = session.scalars(
            select(DeliveryAttempt).where(
                DeliveryAttempt.delivery_id == delivery.id, DeliveryAttempt.number == delivery.attempts
            )
        ).one_or_none()
        policy = policy_for(delivery.document.repository.workspace, delivery.destination)
        transitions.lease_expired(delivery, attempt, policy=policy, now=now, rand=rand)
    transitions.settle(session, {d.document_id for d in deliveries}, now=now)
    return len(deliveries)


def expire(session: Session, *, now: dt.datetime, limit: int) -> int:
    """Deliveries still waiting (or still exporting) when their retry TTL ran out are failed."""
    deliveries = session.scalars(
        select(Delivery)
        .where(
            # Waiting deliveries, and pull deliveries an integration left in `exporting` (no lease).
            or_(
                Delivery.status.in_(WAITING),
                and_(Delivery.status == DeliveryStatus.DELIVERING, Delivery.lease_until.is_(None)),
            ),
            Delivery.expires_at <= now,
            health.not_held(),  # a paused destination, or one whose breaker is open, stops the TTL clock
        )
        .order_by(Delivery.expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    for delivery in deliveries:
        transitions.ttl_expired(delivery, now=now)
    transitions.settle(session, {d.document_id for d in deliveries}, now=now)
    return len(deliveries)


def purgeable(session: Session, *, now: dt.datetime, retention_seconds: int, limit: int) -> list[str]:
    """Staged bytes of documents delivered everywhere, past the retention: released from their rows.

    Failed documents keep their bytes, so a retry has something to send.
    """
    documents = session.scalars(
        select(Document)
        .where(
            Document.status == DocumentStatus.DELIVERED,
            Document.staging_key.is_not(None),
            Document.updated_at <= now - dt.timedelta(seconds=retention_seconds),
            # A pull integration's report completes a document without stamping it changed (files.py):
            # the retention counts from the report too.
            or_(
                Document.export_updated_at.is_(None),
                Document.export_updated_at <= now - dt.timedelta(seconds=retention_seconds),
            ),
        )
        .order_by(Document.updated_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    keys = [d.staging_key for d in documents if d.staging_key]
    for document in documents:
        document.staging_key = None
    return keys


@dataclass
class SweepReport:
    enqueued: int = 0
    recovered: int = 0
    expired: int = 0
    purged: int = 0
    # The data lifecycle (filerelay.delivery.retention): failed documents' bytes released, finished
    # documents' rows removed, audit entries removed.
    released: int = 0
    removed: int = 0
    audit_removed: int = 0
    orphans: int = 0
    sequenced: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def busy(self) -> bool:
        return any(
            (self.enqueued, self.recovered, self.expired, self.purged, self.released, self.removed, self.audit_removed)
        )


def sweep(runtime: Runtime, *, batch: int = 500) -> SweepReport:
    """One pass: recover, expire, probe open breakers, wake kinds with due work, purge staging, age out
    what the retention settings say, number the Files feed's changes.
    Each step its own transaction."""
    report = SweepReport()
    settings = runtime.settings
    with session_scope(runtime.sessions) as session:
        report.recovered = recover_expired_leases(session, now=runtime.clock.now(), limit=batch)
    with session_scope(runtime.sessions) as session:
        report.expired = expire(session, now=runtime.clock.now(), limit=batch)
    with session_scope(runtime.sessions) as session:
        probes = health.probe_breakers(session, now=runtime.clock.now(), policy=settings.breaker, limit=batch)
    with session_scope(runtime.sessions) as session:
        due = due_kinds(session, now=runtime.clock.now())
    # Kinds whose wake-up is outstanding get none more, unless it waited past the grace with none in the
    # queue: then its message was lost (a flushed Redis) and it is sent again.
    report.enqueued = runtime.enqueuer.enqueue(probes)
    report.enqueued += runtime.enqueuer.wake(due, repair_after=settings.wake_grace_seconds)
    with session_scope(runtime.sessions) as session:
        keys = purgeable(
            session,
            now=runtime.clock.now(),
            retention_seconds=settings.staging_retention_seconds,
            limit=batch,
        )
    for key in keys:  # after commit: a crash in between leaves bytes behind, never a row without them
        runtime.staging.delete(key)
    report.purged = len(keys)
    age_out(runtime, report, batch=batch)
    report.orphans = runtime.staging.purge_orphans()
    with session_scope(runtime.sessions) as session:
        # The Files feed's numbers, given here too: a feed nobody reads for a while has little to catch up.
        report.sequenced = files.sequence_changes(session, limit=batch)
    return report


# Rows removed per transaction by the record retention: each document takes its deliveries and attempts
# with it, so a batch stays a short transaction beside creates and deliveries. A pass takes batches while
# they come back full, up to REMOVE_BATCHES (100,000 documents an hour at the default interval).
REMOVE_BATCH = 100
REMOVE_BATCHES = 10


def age_out(runtime: Runtime, report: SweepReport, *, batch: int) -> None:
    """The data lifecycle's steps (filerelay.delivery.retention), those switched on, in small batches each
    its own transaction; staged bytes are deleted after their rows' commit."""
    keep = runtime.settings.retention
    if keep.failed_staging is not None:
        with session_scope(runtime.sessions) as session:
            keys = retention.release_failed_staging(
                session, now=runtime.clock.now(), retention=keep.failed_staging, limit=batch
            )
        for key in keys:
            runtime.staging.delete(key)
        report.released = len(keys)
    limit = min(batch, REMOVE_BATCH)
    for _ in range(REMOVE_BATCHES):
        if keep.records is None:
            break
        with session_scope(runtime.sessions) as session:
            removed = retention.remove_finished(session, now=runtime.clock.now(), retention=keep.records, limit=limit)
        for key in removed.staging_keys:
            runtime.staging.delete(key)
        report.removed += removed.documents
        if removed.documents < limit:
            break
    for _ in range(REMOVE_BATCHES):
        if keep.audit is None:
            break
        with session_scope(runtime.sessions) as session:
            purged = retention.purge_audit(session, now=runtime.clock.now(), retention=keep.audit, limit=batch)
        report.audit_removed += purged
        if purged < batch:
            break
