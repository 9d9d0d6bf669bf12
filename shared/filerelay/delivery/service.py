"""Running one delivery: claim it with a lease, upload from staging (the lease kept by a heartbeat),
record the outcome.

Three short transactions around the upload, so no transaction is held open while bytes move:
claim (conditional UPDATE; a duplicate message finds nothing to claim), the upload itself, and
finish (attempt row, delivery verdict and document roll-up together). Every state change is
filerelay.delivery.transitions'; this module fetches rows, moves bytes and commits.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update
from sqlalchemy.orm import Session

from filerelay import metrics
from filerelay.db import rows
from filerelay.db.models import (
    Delivery,
    DeliveryAttempt,
    DeliveryStatus,
    Destination,
    Document,
    Repository,
    Workspace,
    resequenced,
)
from filerelay.db.session import session_scope
from filerelay.delivery import health, transitions
from filerelay.delivery.heartbeat import Heartbeat, guarded
from filerelay.delivery.landing import recorder
from filerelay.delivery.paths import path_for
from filerelay.delivery.rules import BreakerPolicy, policy_for
from filerelay.delivery.transitions import AttemptResult, Finished, Wake
from filerelay.destinations.base import Client, Clients, DestinationError, Payload, already_holds
from filerelay.egress import scrub
from filerelay.logs import log_context
from filerelay.runtime import Runtime
from filerelay.staging import StagingStore

log = logging.getLogger(__name__)

# The attempt's result, as `perform` reports it.
Result = AttemptResult
# The circuit breaker's settings when the caller passes none (the worker passes the configured ones).
DEFAULT_BREAKER = BreakerPolicy()


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
    # The previous attempt may have landed unseen: ask the destination before sending again.
    unsure: bool = False
    # What the last attempt recorded of its upload (filerelay.delivery.landing), for that question.
    landed: str | None = None


_DELIVERIES = rows.table(Delivery)
_DOCUMENTS = rows.table(Document)
_ATTEMPTS = rows.table(DeliveryAttempt)
_ALL_DELIVERY = rows.keys(Delivery)
_ALL_DOCUMENT = rows.keys(Document)
# What a claim reads of the destination, and what a finish reads of the document, the destinations of its
# deliveries (the retry policy and the breaker's counters) and the workspace (the retry policy).
_CLAIMED_DESTINATION = ("id", "public_id", "kind", "settings", "secrets", "path_template")
_FINISHED_DOCUMENT = ("id", "generation", "status", "updated_at")
_FINISHED_DESTINATION = (
    "id",
    "public_id",
    "kind",
    "max_retries",
    "retry_ttl_seconds",
    "probe_delivery_id",
    "consecutive_failures",
)
_WORKSPACE_POLICY = ("max_retries", "retry_ttl_seconds", "backoff_base_seconds", "backoff_max_seconds")
# The columns each statement reads, labelled once here rather than on every claim and finish.
_TAKEN = rows.columns(Delivery, "", _ALL_DELIVERY)
_CLAIMED = (
    *rows.columns(Document, "doc_", _ALL_DOCUMENT),
    Repository.repo_id.label("repo_id"),
    Workspace.owner_slug.label("ws_owner"),
    Workspace.slug.label("ws_slug"),
    *rows.columns(Destination, "dest_", _CLAIMED_DESTINATION),
)
_FINISHING = (
    *rows.columns(Delivery, "dlv_", _ALL_DELIVERY),
    *rows.columns(Document, "doc_", _FINISHED_DOCUMENT),
    *rows.columns(Destination, "dest_", _FINISHED_DESTINATION),
    *rows.columns(Workspace, "ws_", _WORKSPACE_POLICY),
)
# The attempt log's row as a claim starts it, and what finishing the attempt sets on it.
_ATTEMPT_START = ("delivery_id", "number", "generation", "started_at", "outcome")
_ATTEMPT_RESULT = ("finished_at", "outcome", "error_class", "error_message", "bytes_sent")


def _take(
    session: Session, delivery_id: str, now: dt.datetime, lease_seconds: int, status: DeliveryStatus
) -> Delivery | None:
    """The claim in one conditional UPDATE … RETURNING: only a due, unheld delivery in `status` of an
    enabled push destination is taken, and the row comes back with it (in no session)."""
    row = (
        session.connection()
        .execute(
            update(_DELIVERIES)
            .where(
                _DELIVERIES.c.id == delivery_id,
                _DELIVERIES.c.status == status,
                or_(_DELIVERIES.c.next_attempt_at.is_(None), _DELIVERIES.c.next_attempt_at <= now),
                # A switched-off destination keeps its deliveries waiting (until their TTL) instead, a
                # paused one or one whose breaker is open too (but its probe); a pull destination's
                # deliveries are moved by its integration, never by a worker.
                _DELIVERIES.c.destination_id.in_(select(Destination.id).where(health.attemptable(delivery_id))),
            )
            .values(
                transitions.claim_changes(
                    now=now,
                    lease_seconds=lease_seconds,
                    attempts=_DELIVERIES.c.attempts,
                    cycle_attempts=_DELIVERIES.c.cycle_attempts,
                )
            )
            .returning(*_TAKEN)
        )
        .one_or_none()
    )
    return None if row is None else rows.detached(Delivery, rows.values(row._mapping, "", _ALL_DELIVERY))


def claim(session: Session, *, delivery_id: str, now: dt.datetime, lease_seconds: int) -> Claim | None:
    """Take the delivery if it is due and nobody holds it; None means there is nothing to do.

    Most claims take a pending delivery, which cannot change the document's roll-up (pending and
    delivering count alike), so they neither lock nor write the document; only a retrying one can
    (the document may go from retrying to pending), and that one is rolled up under the lock. A
    pending one takes three statements: the claim, one joined read, the attempt row."""
    delivery = _take(session, delivery_id, now, lease_seconds, DeliveryStatus.PENDING)
    if delivery is None:
        delivery = _take(session, delivery_id, now, lease_seconds, DeliveryStatus.RETRYING)
        if delivery is None:
            return None
        transitions.settle(session, [delivery.document_id], now=now, stamp_unchanged=False)
        session.flush()
    row = (
        session.connection()
        .execute(
            select(*_CLAIMED)
            .join_from(_DOCUMENTS, Repository, Repository.id == _DOCUMENTS.c.repository_id)
            .join(Workspace, Workspace.id == _DOCUMENTS.c.workspace_id)
            .join(Destination, Destination.id == delivery.destination_id)
            .where(_DOCUMENTS.c.id == delivery.document_id)
        )
        .one()
        ._mapping
    )
    document = rows.detached(Document, rows.values(row, "doc_", _ALL_DOCUMENT))
    document.repository = Repository(repo_id=row["repo_id"])
    workspace = f"{row['ws_owner']}/{row['ws_slug']}"
    destination = rows.detached(Destination, rows.values(row, "dest_", _CLAIMED_DESTINATION))
    attempt = transitions.attempt_started(delivery, generation=document.generation, now=now)
    session.connection().execute(insert(_ATTEMPTS).values({name: getattr(attempt, name) for name in _ATTEMPT_START}))
    return _claim_of(delivery, document, destination, workspace)


def _claim_of(delivery: Delivery, document: Document, destination: Destination, workspace: str) -> Claim:
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
        identity={
            "doc_id": document.doc_id,
            "repo_id": document.repository.repo_id,
            "comp_id": document.comp_id,
            "document_id": document.id,
            "workspace": workspace,
        },
        unsure=transitions.outcome_unknown(delivery),
        landed=delivery.landed_version,
    )


def perform(
    claim: Claim,
    staging: StagingStore,
    clients: Clients,
    *,
    lost: threading.Event | None = None,
    link: Callable[[], tuple[str, dt.datetime]] | None = None,
    landing: Callable[[str], None] | None = None,
) -> Result:
    """Upload the staged bytes; every failure becomes a Result, never an exception. `clients` reuses
    the destination's client across deliveries, built under the process's operator policy. Once `lost`
    is set (the heartbeat found the lease gone) the staged bytes stop being readable: the upload stops."""
    key = claim.staging_key
    if key is None or not staging.exists(key):
        return Result(False, "the staged bytes are gone", "StagingError", retryable=False)
    payload = _payload(claim, key, staging, lost, link, landing)
    try:
        client = clients.get(claim.kind, claim.settings, claim.secrets)
        if claim.unsure and _already_there(client, claim):
            return Result(True, found=True)  # nothing sent: the attempt records 0 bytes
        landed = client.deliver(payload)
    except DestinationError as exc:
        return Result(False, str(exc), type(exc).__name__, exc.retryable, exc.retry_after)
    except Exception as exc:  # a bug or an unexpected library error: counted and retried, not lost
        log.exception("delivery %s raised unexpectedly", claim.delivery_id)
        # Recorded and shown to the workspace: no URL's user:password@ (filerelay.egress.scrub).
        return Result(False, f"{type(exc).__name__}: {scrub(str(exc))}", type(exc).__name__)
    return Result(True, size=claim.size, path=landed)


def _payload(
    claim: Claim,
    key: str,
    staging: StagingStore,
    lost: threading.Event | None,
    link: Callable[[], tuple[str, dt.datetime]] | None,
    landing: Callable[[str], None] | None = None,
) -> Payload:
    return Payload(
        open=lambda: guarded(staging.open(key), lost),
        size=claim.size,
        sha256=claim.sha256,
        content_type=claim.content_type,
        path=claim.path,
        metadata=claim.metadata,
        identity=claim.identity,
        delivery_key=f"{claim.delivery_id}.{claim.generation}",
        link=link,
        landing=landing,
    )


def _already_there(client: Client, claim: Claim) -> bool:
    """After an attempt nobody saw end: does the destination hold exactly this content already? A
    second upload would be harmless to the bytes, but not to what reacts to it (S3 events, versions)."""
    try:
        found = already_holds(client, claim.path, sha256=claim.sha256, size=claim.size, landed=claim.landed)
    except DestinationError as exc:
        log.warning("cannot tell whether %s already holds %s: %s", claim.destination_id, claim.path, exc)
        return False
    if found:
        log.info("%s already holds the identical content at %s: not sent again", claim.destination_id, claim.path)
    return found


@dataclass(frozen=True)
class Finish:
    """What `finish` decided (None: the attempt was superseded), and the deliveries to wake now."""

    verdict: Finished | None
    wake: list[Wake]


def finish(
    session: Session,
    claim: Claim,
    result: Result,
    *,
    now: dt.datetime,
    rand: Callable[[], float],
    breaker: BreakerPolicy = DEFAULT_BREAKER,
) -> Finish:
    """Record the attempt and the verdict, roll the document up, count the attempt for the destination's
    circuit breaker; one transaction, no read-back. In the common case five statements: the document's
    lock, one joined read, and one UPDATE each for the delivery, the document (if its status changed)
    and the attempt row."""
    document, delivery, workspace = _finishing(session, claim)
    before = {key: getattr(delivery, key) for key in _ALL_DELIVERY}
    # What the transition decides for the attempt row, written below with one UPDATE (the row itself is
    # never read): only its number, the claim's, is needed to decide.
    attempt = DeliveryAttempt(number=claim.attempt)
    verdict, wake = _decided(delivery, attempt, document, workspace, claim, result, now=now, rand=rand)
    connection = session.connection()
    if changed := rows.changes(delivery, before):
        connection.execute(update(_DELIVERIES).where(_DELIVERIES.c.id == delivery.id).values(changed))
    if verdict is not None:
        _roll_up(connection, document, now)
        wake += health.counted(
            session, delivery.destination, delivery_id=delivery.id, result=result, policy=breaker, now=now
        )
    connection.execute(
        update(_ATTEMPTS)
        .where(_ATTEMPTS.c.delivery_id == delivery.id, _ATTEMPTS.c.number == claim.attempt)
        .values({name: getattr(attempt, name) for name in _ATTEMPT_RESULT})
    )
    return Finish(verdict, wake)


def _roll_up(connection: Connection, document: Document, now: dt.datetime) -> None:
    """The document's status from its deliveries, written only if it changed."""
    stamped = {"status": document.status, "updated_at": document.updated_at}
    transitions.rolled_up(document, now=now, stamp_unchanged=False)
    if changed := resequenced(rows.changes(document, stamped)):
        connection.execute(update(_DOCUMENTS).where(_DOCUMENTS.c.id == document.id).values(changed))


def _finishing(session: Session, claim: Claim) -> tuple[Document, Delivery, Workspace]:
    """The claimed delivery, its document with all its deliveries (for the roll-up), their destinations
    and the workspace, row-locked and fresh, as instances in no session.

    The lock comes first, in a statement of its own: a statement that waits for the lock reads the
    other tables as they were when it started, so a sibling delivery finished meanwhile would look
    unfinished and the roll-up would be stale (PostgreSQL, READ COMMITTED). The read after it sees
    everything committed before the lock was granted."""
    connection = session.connection()
    connection.execute(select(_DOCUMENTS.c.id).where(_DOCUMENTS.c.id == claim.document_id).with_for_update())
    found = connection.execute(
        select(*_FINISHING)
        .join_from(_DELIVERIES, _DOCUMENTS, _DOCUMENTS.c.id == _DELIVERIES.c.document_id)
        .join(Destination, Destination.id == _DELIVERIES.c.destination_id)
        .join(Workspace, Workspace.id == _DOCUMENTS.c.workspace_id)
        .where(_DELIVERIES.c.document_id == claim.document_id)
    ).all()
    first = found[0]._mapping
    document = rows.detached(Document, rows.values(first, "doc_", _FINISHED_DOCUMENT))
    workspace = rows.detached(Workspace, rows.values(first, "ws_", _WORKSPACE_POLICY))
    deliveries = []
    for row in found:
        sibling = rows.detached(Delivery, rows.values(row._mapping, "dlv_", _ALL_DELIVERY))
        sibling.destination = rows.detached(Destination, rows.values(row._mapping, "dest_", _FINISHED_DESTINATION))
        deliveries.append(sibling)
    document.deliveries = deliveries
    return document, next(d for d in deliveries if d.id == claim.delivery_id), workspace


def _decided(
    delivery: Delivery,
    attempt: DeliveryAttempt,
    document: Document,
    workspace: Workspace,
    claim: Claim,
    result: Result,
    *,
    now: dt.datetime,
    rand: Callable[[], float],
) -> tuple[Finished | None, list[Wake]]:
    """The state machine's verdict on the attempt; None when it was superseded."""
    try:
        return transitions.finished(
            delivery,
            attempt,
            result,
            content=transitions.Delivered(claim.generation, result.path or claim.path, claim.sha256),
            current_generation=document.generation,
            kind=claim.kind,
            policy=policy_for(workspace, delivery.destination),
            now=now,
            rand=rand,
        )
    except transitions.Superseded:
        return None, []


def run(runtime: Runtime, delivery_id: str, *, rand: Callable[[], float] = random.random) -> bool:
    """Claim, perform and finish one delivery. False when there was nothing to claim."""
    with log_context(delivery_id=delivery_id):  # every line about this delivery carries its ids
        with session_scope(runtime.sessions) as session:
            taken = claim(
                session, delivery_id=delivery_id, now=runtime.clock.now(), lease_seconds=runtime.settings.lease_seconds
            )
        if taken is None:
            log.info("delivery %s: nothing to claim (done, held elsewhere, or not due)", delivery_id)
            return False
        with log_context(document_id=taken.document_id, attempt=taken.attempt):
            _attempt(runtime, taken, rand)
    return True


def _link(runtime: Runtime, taken: Claim) -> Callable[[], tuple[str, dt.datetime]]:
    """A signed download link to the claimed document, made (and its clock read) only if the kind asks."""

    def make() -> tuple[str, dt.datetime]:
        return runtime.links.make(
            workspace=taken.identity["workspace"], document_id=taken.document_id, now=runtime.clock.now()
        )

    return make


def _attempt(runtime: Runtime, taken: Claim, rand: Callable[[], float]) -> None:
    started = time.perf_counter()  # a duration: the monotonic clock, not the (injectable) wall clock
    with Heartbeat(runtime, delivery_id=taken.delivery_id, attempt=taken.attempt) as heartbeat:
        result = perform(
            taken,
            runtime.staging,
            runtime.clients,
            lost=heartbeat.lost,
            link=_link(runtime, taken),
            landing=recorder(runtime.sessions, taken.delivery_id),
        )
    metrics.ATTEMPT_SECONDS.labels(kind=taken.kind).observe(time.perf_counter() - started)
    with session_scope(runtime.sessions) as session:
        done = finish(session, taken, result, now=runtime.clock.now(), rand=rand, breaker=runtime.settings.breaker)
    # Counted once committed: a rolled-back verdict will be decided (and counted) again.
    if done.verdict is not None:
        outcome = "retry" if done.verdict == Finished.RESTARTED else done.verdict.value
        metrics.count_delivery(taken.destination_id, taken.kind, outcome, taken.size)
    runtime.enqueuer.enqueue(done.wake)
    log.info(
        "delivery %s attempt %d: %s%s",
        taken.delivery_id,
        taken.attempt,
        done.verdict or "superseded (the lease ran out meanwhile)",
        "" if result.ok else f" ({result.error})",
    )
