"""The delivery state machine: the only code that changes a delivery's state, its attempt log, a
document's rolled-up status, or a destination's pause and circuit breaker.

One function per event. Each takes the rows it changes and `now`, refuses an event the state does
not allow (IllegalTransition: never silently applied), and returns the wake-ups to send after commit
as (delivery id, kind). `settle` then rolls the touched documents up under a row lock.

    pending ──claimed──▶ delivering ──delivered──▶ delivered
    retrying ─┘               │ └──failed / lease expired──▶ retrying (later) | failed
                              ⟲ lease renewed: the running attempt's heartbeat
    pending, retrying ──TTL expired──▶ failed ──retried (manual)──▶ retrying, due now
    any but delivering ──wired (new or replaced content)──▶ pending, fresh cycle (due now, or held
                                                                 back for the document's metadata)
    pending, held back ──metadata arrived──▶ pending, due now
    pull deliveries: moved by the integration's export reports (docs/architecture.md#pull-deliveries)

Nothing here talks to a network or reads a clock; the database is touched only by `settle`.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from filerelay.db.models import AttemptOutcome, Delivery, DeliveryAttempt, DeliveryStatus, Destination, Document
from filerelay.delivery.rollup import rollup
from filerelay.delivery.rules import BreakerPolicy, RetryPolicy, Verdict, after_failure
from filerelay.destinations.base import DestinationError, is_pushed

Wake = tuple[str, str]

# Waiting for an attempt: a worker may claim these once due, and the sweeper wakes them.
WAITING = frozenset({DeliveryStatus.PENDING, DeliveryStatus.RETRYING})
LEASE_EXPIRED = "the worker stopped before finishing (lease expired)"


class IllegalTransition(Exception):
    """The event is not allowed in the delivery's state; nothing was changed."""


class Superseded(IllegalTransition):
    """An attempt finished after its lease ran out and the delivery moved on without it."""


class LeaseLost(IllegalTransition, DestinationError):
    """The attempt no longer holds the delivery (the sweeper took it back while it ran). One error for both
    ends: the state machine refuses the attempt's lease renewal with it, and the upload's next read of the
    staged bytes raises it, a retryable DestinationError, so the kind's own failure path cleans up."""

    def __init__(self, message: str = "the lease was lost (the delivery was taken back while it ran): upload stopped"):
        DestinationError.__init__(self, message)


class ExportStatus(enum.StrEnum):
    """What a pull integration reports (docs/architecture.md#pull-deliveries)."""

    EXPORTING = "exporting"
    COMPLETED = "completed"
    ERROR = "error"
    EMPTY = "empty"


class Finished(enum.StrEnum):
    """What an attempt's finish decided."""

    DELIVERED = "delivered"
    RETRY = "retry"  # another attempt follows, later
    FAILED = "failed"  # given up
    RESTARTED = "restarted"  # the content was replaced meanwhile: the new content goes out now


@dataclass(frozen=True)
class AttemptResult:
    ok: bool
    error: str | None = None
    error_class: str | None = None
    retryable: bool = True
    retry_after: float | None = None
    size: int | None = None
    # Where the content landed, when the destination put it elsewhere than the template said (a
    # SharePoint name made acceptable); recorded as the delivery's path.
    path: str | None = None
    # The destination already held the identical content (after an attempt whose outcome was unknown):
    # delivered, with nothing sent.
    found: bool = False


def _require(delivery: Delivery, event: str, allowed: Iterable[str | None]) -> None:
    if delivery.status not in allowed:
        raise IllegalTransition(f"{event}: delivery {delivery.id} is {delivery.status}")


def _fresh_cycle(delivery: Delivery, policy: RetryPolicy, status: DeliveryStatus, now: dt.datetime) -> None:
    """A fresh retry cycle, due now: the attempts counted against max_retries and the TTL start again,
    while the cumulative `attempts` keeps counting."""
    delivery.status = status
    delivery.cycle_attempts = 0
    delivery.cycle_started_at = now
    delivery.expires_at = now + dt.timedelta(seconds=policy.ttl_seconds)
    delivery.next_attempt_at = now
    delivery.lease_until = None
    delivery.updated_at = now


def _wake(delivery: Delivery, kind: str, now: dt.datetime) -> list[Wake]:
    if not is_pushed(kind):  # its integration fetches it; no worker ever will
        return []
    delivery.enqueued_at = now
    return [(delivery.id, kind)]


def _mark_delivered(delivery: Delivery, *, generation: int, path: str, sha256: str, now: dt.datetime) -> None:
    delivery.status = DeliveryStatus.DELIVERED
    delivery.delivered_at = now
    delivery.delivered_generation = generation
    delivery.path = path
    delivery.sha256 = sha256
    delivery.next_attempt_at = None
    delivery.lease_until = None
    delivery.last_error = None
    delivery.updated_at = now


def _apply_verdict(delivery: Delivery, verdict: Verdict, error: str | None, now: dt.datetime) -> None:
    delivery.status = verdict.status
    delivery.next_attempt_at = verdict.next_attempt_at
    delivery.lease_until = None
    delivery.enqueued_at = None
    delivery.last_error = error
    delivery.updated_at = now


# --- events -------------------------------------------------------------------------------------------


def wired(
    delivery: Delivery,
    *,
    kind: str,
    policy: RetryPolicy,
    now: dt.datetime,
    metadata_wait: dt.timedelta | None = None,
) -> list[Wake]:
    """New content for the destination: a new delivery row, or the document's content replaced.

    A running upload of the previous content is left alone: its finish sees the new generation and
    sends the new content after it, so the two never land out of order.

    With a `metadata_wait` (the document has no business context yet and its repository waits for it),
    the delivery is held back: not due until the wait ends or `metadata_arrived`, so no worker claims it
    and nothing wakes it before; its TTL counts from the end of the wait. Pull deliveries never wait."""
    if delivery.status == DeliveryStatus.DELIVERING:
        return []
    _fresh_cycle(delivery, policy, DeliveryStatus.PENDING, now)
    delivery.delivered_at = None
    delivery.last_error = None
    if metadata_wait and is_pushed(kind):
        delivery.next_attempt_at = now + metadata_wait
        delivery.expires_at += metadata_wait
        delivery.enqueued_at = None
        return []
    return _wake(delivery, kind, now)


def held_for_metadata(delivery: Delivery, *, kind: str, now: dt.datetime) -> bool:
    """Whether `wired` holds the delivery back for its document's business context: pending, no attempt
    in this cycle, and not due yet (nothing else makes a pending delivery not due)."""
    return (
        is_pushed(kind)
        and delivery.status == DeliveryStatus.PENDING
        and not delivery.cycle_attempts
        and delivery.next_attempt_at is not None
        and delivery.next_attempt_at > now
    )


def metadata_arrived(delivery: Delivery, *, kind: str, now: dt.datetime) -> list[Wake]:
    """The document's business context arrived while the delivery was held back for it: due now, woken
    (its TTL deadline moves back by the wait it did not use). Refused for a delivery not held back."""
    if not held_for_metadata(delivery, kind=kind, now=now):
        raise IllegalTransition(f"metadata arrived: delivery {delivery.id} is not waiting for it")
    assert delivery.next_attempt_at is not None  # held_for_metadata checked it
    delivery.expires_at -= delivery.next_attempt_at - now
    delivery.next_attempt_at = now
    delivery.updated_at = now
    return _wake(delivery, kind, now)


def due(status: Any, next_attempt_at: Any, now: dt.datetime) -> Any:
    """Whether a delivery is due for an attempt (its destination permitting): waiting, and its next
    attempt's time come (every waiting delivery has one: a fresh cycle sets it to now). The one rule:
    with a row's values it answers for the row; with the columns it is the SQL condition of the claim and
    of the sweeper, which walks the (status, next_attempt_at) index."""
    if isinstance(status, str):  # a row's status (DeliveryStatus is a str)
        return status in WAITING and next_attempt_at is not None and next_attempt_at <= now
    return and_(status.in_(WAITING), next_attempt_at <= now)


def claim_changes(*, now: dt.datetime, lease_seconds: int, attempts: Any, cycle_attempts: Any) -> dict[str, Any]:
    """The claim's new values. With a row's numbers they apply to the row (`claimed`); with the
    columns themselves they are the SET of the conditional UPDATE that claims in one statement."""
    return {
        "status": DeliveryStatus.DELIVERING,
        "lease_until": now + dt.timedelta(seconds=lease_seconds),
        "attempts": attempts + 1,
        "cycle_attempts": cycle_attempts + 1,
        "updated_at": now,
    }


def held_by(attempt: int) -> list[Any]:
    """The delivery is still held by this attempt: delivering, and no later attempt was claimed. The
    condition of a heartbeat's conditional UPDATE, and what `lease_renewed` requires of a row."""
    return [Delivery.status == DeliveryStatus.DELIVERING, Delivery.attempts == attempt]


def renewal(*, now: dt.datetime, lease_seconds: int) -> dict[str, Any]:
    """A heartbeat's new values: only the lease moves (not `updated_at`: nothing anyone sees changed)."""
    return {"lease_until": now + dt.timedelta(seconds=lease_seconds)}


def lease_renewed(delivery: Delivery, *, attempt: int, kind: str, now: dt.datetime, lease_seconds: int) -> None:
    """A live worker's heartbeat extends its attempt's lease. Refused (LeaseLost) once the delivery moved
    on without the attempt: the sweeper took it back, and perhaps another worker claimed it since."""
    _pushed(delivery, "lease renewed", kind)
    if delivery.status != DeliveryStatus.DELIVERING or delivery.attempts != attempt:
        raise LeaseLost(
            f"lease renewed: delivery {delivery.id} ({delivery.status}) is no longer held by attempt {attempt}"
        )
    for name, value in renewal(now=now, lease_seconds=lease_seconds).items():
        setattr(delivery, name, value)


def _pushed(delivery: Delivery, event: str, kind: str) -> None:
    if not is_pushed(kind):
        raise IllegalTransition(f"{event}: delivery {delivery.id} is fetched by its integration, never by a worker")


def claimed(delivery: Delivery, *, kind: str, now: dt.datetime, lease_seconds: int) -> None:
    """A worker takes a due delivery, with a lease."""
    _pushed(delivery, "claimed", kind)
    _require(delivery, "claimed", WAITING)
    if not due(delivery.status, delivery.next_attempt_at, now):
        raise IllegalTransition(f"claimed: delivery {delivery.id} is not due until {delivery.next_attempt_at}")
    for name, value in claim_changes(
        now=now, lease_seconds=lease_seconds, attempts=delivery.attempts, cycle_attempts=delivery.cycle_attempts
    ).items():
        setattr(delivery, name, value)


def attempt_started(delivery: Delivery, *, generation: int, now: dt.datetime) -> DeliveryAttempt:
    """The attempt log's row for the claim just made; the caller adds it to the session."""
    _require(delivery, "attempt started", {DeliveryStatus.DELIVERING})
    return DeliveryAttempt(
        delivery_id=delivery.id,
        number=delivery.attempts,
        generation=generation,
        started_at=now,
        outcome=AttemptOutcome.RUNNING,
    )


def _close_attempt(attempt: DeliveryAttempt, result: AttemptResult, now: dt.datetime) -> None:
    attempt.finished_at = now
    if result.found:
        attempt.outcome, attempt.bytes_sent = AttemptOutcome.FOUND, 0
    else:
        attempt.outcome = AttemptOutcome.DELIVERED if result.ok else AttemptOutcome.FAILED
        attempt.bytes_sent = result.size if result.ok else None
    attempt.error_class, attempt.error_message = result.error_class, result.error


def outcome_unknown(delivery: Delivery) -> bool:
    """Whether an earlier attempt may have landed although nobody saw it succeed: its worker stopped (the
    sweeper took the lease back), or it failed, which does not prove nothing landed (the connection broke
    after the server stored the object, a client library's own retry met a landed first try). The next
    attempt asks the destination first: one cheap question per retry, where sending again would make a
    second version, event or notification."""
    return delivery.last_error is not None


@dataclass(frozen=True)
class Delivered:
    """Where the attempt put the content: recorded on the delivery once it succeeded."""

    generation: int
    path: str
    sha256: str


def finished(
    delivery: Delivery,
    attempt: DeliveryAttempt,
    result: AttemptResult,
    *,
    content: Delivered,
    current_generation: int,
    kind: str,
    policy: RetryPolicy,
    now: dt.datetime,
    rand: Callable[[], float],
) -> tuple[Finished, list[Wake]]:
    """An attempt ended: delivered, or failed (retried later or given up), or, when SAP replaced the
    content meanwhile, restarted for the new content whatever the upload did. Raises Superseded (the
    attempt row marked so) when the lease ran out and the delivery moved on without this attempt."""
    _pushed(delivery, "finished", kind)
    _close_attempt(attempt, result, now)
    if delivery.status != DeliveryStatus.DELIVERING or delivery.attempts != attempt.number:
        attempt.outcome = AttemptOutcome.SUPERSEDED
        raise Superseded(f"attempt {attempt.number} of {delivery.id} finished after its lease ran out")
    if current_generation != content.generation:
        _fresh_cycle(delivery, policy, DeliveryStatus.PENDING, now)
        return Finished.RESTARTED, _wake(delivery, kind, now)
    if result.ok:
        _mark_delivered(delivery, generation=content.generation, path=content.path, sha256=content.sha256, now=now)
        return Finished.DELIVERED, []
    return _failed(delivery, result, policy, now, rand), []


def _failed(
    delivery: Delivery, result: AttemptResult, policy: RetryPolicy, now: dt.datetime, rand: Callable[[], float]
) -> Finished:
    verdict = after_failure(
        policy,
        cycle_attempts=delivery.cycle_attempts,
        expires_at=delivery.expires_at,
        now=now,
        retryable=result.retryable,
        retry_after=result.retry_after,
        rand=rand,
    )
    _apply_verdict(delivery, verdict, result.error, now)
    return Finished.FAILED if verdict.status == DeliveryStatus.FAILED else Finished.RETRY


def lease_expired(
    delivery: Delivery,
    attempt: DeliveryAttempt | None,
    *,
    policy: RetryPolicy,
    now: dt.datetime,
    rand: Callable[[], float],
) -> None:
    """The worker died mid-attempt: the attempt counts, the retry rules decide what follows."""
    _require(delivery, "lease expired", {DeliveryStatus.DELIVERING})
    if delivery.lease_until is None or delivery.lease_until >= now:
        raise IllegalTransition(f"lease expired: delivery {delivery.id} holds a lease until {delivery.lease_until}")
    if attempt is not None and attempt.outcome == AttemptOutcome.RUNNING:
        attempt.outcome = AttemptOutcome.ABANDONED
        attempt.finished_at = now
        attempt.error_message = LEASE_EXPIRED
    verdict = after_failure(
        policy,
        cycle_attempts=delivery.cycle_attempts,
        expires_at=delivery.expires_at,
        now=now,
        retryable=True,
        retry_after=None,
        rand=rand,
    )
    _apply_verdict(delivery, verdict, LEASE_EXPIRED, now)


def ttl_expired(delivery: Delivery, *, now: dt.datetime) -> None:
    """A waiting delivery, or a pull delivery its integration left exporting (no lease), ran out of time."""
    exporting = delivery.status == DeliveryStatus.DELIVERING and delivery.lease_until is None
    if not exporting:
        _require(delivery, "TTL expired", WAITING)
    if delivery.expires_at > now:
        raise IllegalTransition(f"TTL expired: delivery {delivery.id} has until {delivery.expires_at}")
    delivery.status = DeliveryStatus.FAILED
    delivery.next_attempt_at = None
    delivery.last_error = (delivery.last_error or "not delivered") + "; retry TTL expired"
    delivery.updated_at = now


def retried(delivery: Delivery, *, kind: str, policy: RetryPolicy, now: dt.datetime) -> list[Wake]:
    """A manual retry of a failed delivery: a fresh cycle under today's settings, due now (its TTL
    counts from the retry); `attempts` keeps counting. A pull delivery waits for its integration."""
    _require(delivery, "retried", {DeliveryStatus.FAILED})
    if not is_pushed(kind):
        _fresh_cycle(delivery, policy, DeliveryStatus.PENDING, now)
        return []
    _fresh_cycle(delivery, policy, DeliveryStatus.RETRYING, now)
    return _wake(delivery, kind, now)


def woken(delivery: Delivery, *, kind: str, now: dt.datetime) -> None:
    """The sweeper sent a wake-up for a due delivery: none is sent again within the grace."""
    _pushed(delivery, "woken", kind)
    _require(delivery, "woken", WAITING)
    delivery.enqueued_at = now


def export_reported(
    delivery: Delivery,
    status: ExportStatus,
    *,
    kind: str,
    messages: Sequence[str],
    content: Delivered,
    policy: RetryPolicy,
    now: dt.datetime,
) -> None:
    """A pull integration's report moves its delivery: exporting → delivering (without a lease, so
    lease recovery never touches it), completed → delivered, error → failed, empty → waiting again.
    The integration is the authority on its copy, so a report is taken in any state."""
    if is_pushed(kind):
        raise IllegalTransition(f"export reported: delivery {delivery.id} is pushed by a worker ({kind})")
    if status == ExportStatus.EMPTY:  # waiting for the integration again; the TTL counts from now
        _fresh_cycle(delivery, policy, DeliveryStatus.PENDING, now)
        delivery.delivered_at = None
        delivery.last_error = None
        return
    if status == ExportStatus.EXPORTING:
        delivery.status = DeliveryStatus.DELIVERING
        delivery.lease_until = None
    elif status == ExportStatus.COMPLETED:
        _mark_delivered(delivery, generation=content.generation, path=content.path, sha256=content.sha256, now=now)
    else:
        delivery.status = DeliveryStatus.FAILED
        delivery.last_error = "; ".join(messages) or "the integration reported an error"
    delivery.next_attempt_at = None
    delivery.updated_at = now


# --- destinations: pause and circuit breaker ---------------------------------------------------------
#
#   running ──paused──▶ paused ──resumed──▶ running
#   running ──N retryable failures in a row──▶ open ──cool-down, probe chosen──▶ probing
#   probing ──probe delivered──▶ running;  probing ──probe failed──▶ open (a new cool-down)
#
# While paused or open, the destination's deliveries are held: not claimed (but the probe) and not
# expired; when it is released, their TTL deadlines move by the time they were held.


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    PROBING = "probing"  # half-open: one delivery is let through


def breaker_state(destination: Destination) -> BreakerState:
    if destination.breaker_opened_at is None:
        return BreakerState.CLOSED
    return BreakerState.OPEN if destination.probe_delivery_id is None else BreakerState.PROBING


def _hold(destination: Destination, now: dt.datetime) -> None:
    if destination.held_since is None:
        destination.held_since = now


def _release(destination: Destination, now: dt.datetime) -> dt.timedelta | None:
    """The time the deliveries were held, when nothing holds them any more (None: still held)."""
    if destination.paused_at is not None or destination.breaker_opened_at is not None:
        return None
    since, destination.held_since = destination.held_since, None
    return None if since is None else max(now - since, dt.timedelta(0))


def paused(destination: Destination, *, now: dt.datetime) -> None:
    """An admin pauses the destination: nothing is attempted until resumed, and no TTL runs out."""
    if destination.paused_at is not None:
        raise IllegalTransition(f"paused: destination {destination.public_id} is paused since {destination.paused_at}")
    destination.paused_at = now
    _hold(destination, now)


def resumed(destination: Destination, *, now: dt.datetime) -> dt.timedelta | None:
    """An admin resumes it; returns how long its deliveries were held, if they are released now (an
    open breaker still holds them)."""
    if destination.paused_at is None:
        raise IllegalTransition(f"resumed: destination {destination.public_id} is not paused")
    destination.paused_at = None
    return _release(destination, now)


def attempt_counted(
    destination: Destination, *, delivery_id: str, ok: bool, retryable: bool, policy: BreakerPolicy, now: dt.datetime
) -> dt.timedelta | None:
    """An attempt at the destination ended. The probe's outcome closes or re-opens the breaker; other
    retryable failures count toward opening it, a success resets the count. Returns how long the
    deliveries were held when this released them."""
    if destination.probe_delivery_id == delivery_id:
        destination.probe_delivery_id = None
        if ok:
            destination.consecutive_failures, destination.breaker_opened_at = 0, None
            return _release(destination, now)
        destination.consecutive_failures += 1
        destination.breaker_opened_at = now  # a new cool-down
        return None
    if ok:
        destination.consecutive_failures = 0
    elif retryable:
        destination.consecutive_failures += 1
        if destination.breaker_opened_at is None and destination.consecutive_failures >= policy.failures:
            destination.breaker_opened_at = now
            _hold(destination, now)
    return None


def probe_chosen(destination: Destination, delivery: Delivery, *, policy: BreakerPolicy, now: dt.datetime) -> Wake:
    """The cool-down is over: one waiting delivery is let through, due now."""
    opened = destination.breaker_opened_at
    if opened is None or destination.probe_delivery_id is not None or destination.paused_at is not None:
        raise IllegalTransition(f"probe chosen: destination {destination.public_id} is {breaker_state(destination)}")
    if not policy.cooled(opened, now):
        raise IllegalTransition(f"probe chosen: destination {destination.public_id} cools down until later")
    _require(delivery, "probe chosen", WAITING)
    destination.probe_delivery_id = delivery.id
    delivery.next_attempt_at = now
    delivery.enqueued_at = now
    delivery.updated_at = now
    return (delivery.id, destination.kind)


def hold_released(delivery: Delivery, held: dt.timedelta, *, now: dt.datetime) -> None:
    """The destination held the delivery for `held`: its TTL deadline moves by as much."""
    _require(delivery, "hold released", WAITING)
    if delivery.expires_at is not None:
        delivery.expires_at += held
    delivery.updated_at = now


# --- documents ----------------------------------------------------------------------------------------


def rolled_up(document: Document, *, now: dt.datetime, stamp_unchanged: bool = True) -> None:
    """A document's status from its deliveries, on a row the caller holds (locked, or new). It is
    stamped changed (updated_at, which the Files feed follows) unless `stamp_unchanged` is False and the
    status stayed as it was: a worker's attempt that leaves it so changes nothing a reader sees."""
    status = rollup(d.status for d in document.deliveries)
    if stamp_unchanged or status != document.status:
        document.status = status
        document.updated_at = now


def export_settled(document: Document) -> None:
    """The document's status after its integration's report, on a row the caller holds. Not stamped
    changed: the report is the integration's own news, so the Files feed does not hand the file back to
    it (docs/architecture.md#pull-deliveries)."""
    document.status = rollup(d.status for d in document.deliveries)


def export_reset(document: Document, *, now: dt.datetime) -> None:
    """The integration is asked to export again (new content, or its failed delivery retried): the last
    report describes what it had before, so it is cleared as an `empty` report clears it."""
    if document.export_status is None and not document.export_messages:
        return  # never reported: nothing to clear
    document.export_status = ExportStatus.EMPTY.value
    document.export_messages = []
    document.export_updated_at = now


def locked(session: Session, document_ids: Iterable[str]) -> list[Document]:
    """The documents, row-locked in id order (so two callers never deadlock) and freshly read: two
    deliveries of one document finishing at once must not roll up from stale views."""
    wanted = sorted(set(document_ids))
    if not wanted:
        return []
    return list(
        session.scalars(
            select(Document)
            .where(Document.id.in_(wanted))
            .order_by(Document.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )


def settle(
    session: Session, document_ids: Iterable[str], *, now: dt.datetime, stamp_unchanged: bool = True
) -> list[Document]:
    """Lock each document and roll its status up from its deliveries."""
    documents = locked(session, document_ids)
    for document in documents:
        rolled_up(document, now=now, stamp_unchanged=stamp_unchanged)
    return documents
