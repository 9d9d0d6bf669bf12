"""Running one delivery: claim it with a lease, upload from staging, record the outcome.

Three short transactions around the upload, so no transaction is held open while bytes move:
claim (conditional UPDATE; a duplicate message finds nothing to claim), the upload itself, and
finish (attempt row, delivery verdict and document roll-up together).
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from filerelay import metrics
from filerelay.db.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Destination,
    Document,
)
from filerelay.db.session import session_scope
from filerelay.delivery.paths import PathFields, render
from filerelay.delivery.rules import after_failure, policy_for, rollup, start_cycle
from filerelay.destinations import pull
from filerelay.destinations.base import DestinationError, Payload, build_client
from filerelay.logs import log_context
from filerelay.runtime import Runtime
from filerelay.staging import StagingStore

log = logging.getLogger(__name__)


def path_for(document: Document, destination: Destination) -> str:
    return render(
        destination.path_template,
        PathFields(
            doc_id=document.doc_id,
            repo_id=document.repository.repo_id,
            comp_id=document.comp_id,
            content_type=document.content_type,
            received_at=document.received_at,
            metadata=document.metadata_,
        ),
    )


@dataclass(frozen=True)
class Claim:
    delivery_id: str
    document_id: str
    destination_id: str  # the destination's public id, as configured and shown in the API
    attempt: int
    generation: int
    kind: str
    settings: Mapping[str, Any]
    secrets: Mapping[str, Any]
    staging_key: str | None
    size: int
    sha256: str
    content_type: str
    path: str
    metadata: Mapping[str, str] = field(default_factory=dict)
    identity: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Result:
    ok: bool
    error: str | None = None
    error_class: str | None = None
    retryable: bool = True
    retry_after: float | None = None


def _locked_document(session: Session, document_id: str) -> Document:
    # Row lock: two deliveries of one document finishing at once must not roll up from stale views.
    document = session.scalars(
        select(Document).where(Document.id == document_id).with_for_update().execution_options(populate_existing=True)
    ).one()
    return document


def claim(session: Session, *, delivery_id: str, now: dt.datetime, lease_seconds: int) -> Claim | None:
    """Take the delivery if it is due and nobody holds it; None means there is nothing to do."""
    taken = session.execute(
        update(Delivery)
        .where(
            Delivery.id == delivery_id,
            Delivery.status.in_([DeliveryStatus.PENDING, DeliveryStatus.RETRYING]),
            or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
            # A switched-off destination keeps its deliveries waiting (until their TTL) instead;
            # a pull destination's deliveries are moved by its integration, never by a worker.
            Delivery.destination_id.in_(
                select(Destination.id).where(Destination.enabled.is_(True), Destination.kind != pull.NAME)
            ),
        )
        .values(
            status=DeliveryStatus.DELIVERING,
            lease_until=now + dt.timedelta(seconds=lease_seconds),
            attempts=Delivery.attempts + 1,
            cycle_attempts=Delivery.cycle_attempts + 1,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return None
    delivery = session.scalars(
        select(Delivery).where(Delivery.id == delivery_id).execution_options(populate_existing=True)
    ).one()
    document = _locked_document(session, delivery.document_id)
    destination = delivery.destination
    session.add(
        DeliveryAttempt(
            delivery_id=delivery.id,
            number=delivery.attempts,
            generation=document.generation,
            started_at=now,
            outcome="running",
        )
    )
    document.status = rollup(d.status for d in document.deliveries)
    session.flush()
    return Claim(
        delivery_id=delivery.id,
        document_id=document.id,
        destination_id=destination.public_id,
        attempt=delivery.attempts,
        generation=document.generation,
        kind=destination.kind,
        settings=dict(destination.settings),
        secrets=dict(destination.secrets),
        staging_key=document.staging_key,
        size=document.size_bytes,
        sha256=document.sha256,
        content_type=document.content_type,
        path=path_for(document, destination),
        metadata={k: str(v) for k, v in document.metadata_.items()},
        identity={"doc_id": document.doc_id, "repo_id": document.repository.repo_id, "comp_id": document.comp_id},
    )


def perform(claim: Claim, staging: StagingStore) -> Result:
    """Upload the staged bytes; every failure becomes a Result, never an exception."""
    key = claim.staging_key
    if key is None or not staging.exists(key):
        return Result(False, "the staged bytes are gone", "StagingError", retryable=False)
    payload = Payload(
        open=lambda: staging.open(key),
        size=claim.size,
        sha256=claim.sha256,
        content_type=claim.content_type,
        path=claim.path,
        metadata=claim.metadata,
        identity=claim.identity,
    )
    try:
        build_client(claim.kind, claim.settings, claim.secrets).deliver(payload)
    except DestinationError as exc:
        return Result(False, str(exc), type(exc).__name__, exc.retryable, exc.retry_after)
    except Exception as exc:  # a bug or an unexpected library error: counted and retried, not lost
        log.exception("delivery %s raised unexpectedly", claim.delivery_id)
        return Result(False, f"{type(exc).__name__}: {exc}", type(exc).__name__)
    return Result(True)


def finish(
    session: Session, claim: Claim, result: Result, *, now: dt.datetime, rand: Callable[[], float]
) -> list[tuple[str, str]]:
    """Record the attempt and the verdict, roll the document up; return deliveries to wake now."""
    delivery = session.scalars(
        select(Delivery).where(Delivery.id == claim.delivery_id).execution_options(populate_existing=True)
    ).one()
    document = _locked_document(session, delivery.document_id)
    attempt = session.scalars(
        select(DeliveryAttempt).where(
            DeliveryAttempt.delivery_id == delivery.id, DeliveryAttempt.number == claim.attempt
        )
    ).one()
    attempt.finished_at = now
    attempt.outcome = "delivered" if result.ok else "failed"
    attempt.error_class, attempt.error_message = result.error_class, result.error
    attempt.bytes_sent = claim.size if result.ok else None
    if delivery.status != DeliveryStatus.DELIVERING or delivery.attempts != claim.attempt:
        # The lease ran out and the delivery moved on without us; our upload was an idempotent overwrite.
        attempt.outcome = "superseded"
        return []
    wake: list[tuple[str, str]] = []
    delivery.lease_until = None
    delivery.updated_at = now
    policy = policy_for(document.repository.workspace, delivery.destination)
    if document.generation != claim.generation:
        # SAP replaced the content while we worked on the old one. Whether our upload succeeded or
        # failed (the old bytes may already be gone), the new content goes out next, in a fresh cycle.
        start_cycle(delivery, policy, status=DeliveryStatus.PENDING, now=now)
        delivery.enqueued_at = now
        wake.append((delivery.id, claim.kind))
    elif result.ok:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = now
        delivery.delivered_generation = claim.generation
        delivery.path = claim.path
        delivery.sha256 = claim.sha256
        delivery.next_attempt_at = None
        delivery.last_error = None
    else:
        verdict = after_failure(
            policy,
            cycle_attempts=delivery.cycle_attempts,
            expires_at=delivery.expires_at,
            now=now,
            retryable=result.retryable,
            retry_after=result.retry_after,
            rand=rand,
        )
        delivery.status = verdict.status
        delivery.next_attempt_at = verdict.next_attempt_at
        delivery.enqueued_at = None
        delivery.last_error = result.error
    document.status = rollup(d.status for d in document.deliveries)
    document.updated_at = now
    session.flush()
    return wake


def verdict(session: Session, claim: Claim) -> str | None:
    """After `finish`: delivered, retry (another attempt follows) or failed (given up); None when the
    attempt was superseded (its lease ran out and the delivery moved on without it)."""
    outcome = session.scalar(
        select(DeliveryAttempt.outcome).where(
            DeliveryAttempt.delivery_id == claim.delivery_id, DeliveryAttempt.number == claim.attempt
        )
    )
    if outcome == "superseded":
        return None
    status = session.get_one(Delivery, claim.delivery_id).status  # loaded by finish: no query
    if status == DeliveryStatus.DELIVERED:
        return "delivered"
    return "failed" if status == DeliveryStatus.FAILED else "retry"


def run(runtime: Runtime, delivery_id: str, *, rand: Callable[[], float] = random.random) -> bool:
    """Claim, perform and finish one delivery. False when there was nothing to claim."""
    with log_context(delivery_id=delivery_id):  # every line about this delivery carries its ids
        with session_scope(runtime.sessions) as session:
            taken = claim(
                session,
                delivery_id=delivery_id,
                now=runtime.clock.now(),
                lease_seconds=runtime.settings.lease_seconds,
            )
        if taken is None:
            log.info("delivery %s: nothing to claim (done, held elsewhere, or not due)", delivery_id)
            return False
        with log_context(document_id=taken.document_id, attempt=taken.attempt):
            started = time.perf_counter()  # a duration: the monotonic clock, not the (injectable) wall clock
            result = perform(taken, runtime.staging)
            metrics.ATTEMPT_SECONDS.labels(kind=taken.kind).observe(time.perf_counter() - started)
            with session_scope(runtime.sessions) as session:
                wake = finish(session, taken, result, now=runtime.clock.now(), rand=rand)
                outcome = verdict(session, taken)
            # Counted once committed: a rolled-back verdict will be decided (and counted) again.
            if outcome is not None:
                metrics.count_delivery(taken.destination_id, taken.kind, outcome, taken.size)
            runtime.enqueuer.enqueue(wake)
            log.info(
                "delivery %s attempt %d: %s%s",
                delivery_id,
                taken.attempt,
                outcome or "superseded (the lease ran out meanwhile)",
                "" if result.ok else f" ({result.error})",
            )
    return True


def read_back(session: Session, document: Document, start: int, length: int) -> Iterator[bytes] | None:
    """The document's bytes from the first destination that delivered its current content and can
    be read (staging was purged). None when no destination can give them back."""
    if length == 0:
        return iter(())
    for delivery in document.deliveries:
        if delivery.status != DeliveryStatus.DELIVERED or delivery.delivered_generation != document.generation:
            continue
        destination = delivery.destination
        try:
            client = build_client(destination.kind, destination.settings, destination.secrets)
            chunks = client.read(delivery.path or path_for(document, destination), start, length)
            first = next(chunks, b"")
        except (DestinationError, NotImplementedError) as exc:
            log.warning("cannot read %s back from %s: %s", document.id, destination.public_id, exc)
            continue
        return itertools.chain([first], chunks)
    return None
