"""A destination's pause and circuit breaker, around the delivery engine: which deliveries may be
attempted, what a finished attempt does to the breaker, the sweeper's probe, and the release of held
deliveries. The queries are here; every state change is filerelay.delivery.transitions'.

A down SharePoint must not burn every document's retry budget: after `FILERELAY_BREAKER_FAILURES`
retryable failures in a row the breaker opens, its deliveries wait without spending attempts or TTL,
and after `FILERELAY_BREAKER_COOLDOWN_SECONDS` the sweeper lets one probe delivery through; its
success closes the breaker and wakes the rest, its failure starts a new cool-down. An admin's pause
holds the deliveries the same way until resumed.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from filerelay.db.models import Delivery, Destination
from filerelay.delivery import transitions
from filerelay.delivery.rules import BreakerPolicy
from filerelay.delivery.transitions import WAITING, AttemptResult, BreakerState, Wake
from filerelay.destinations.base import pushed_kinds

log = logging.getLogger(__name__)

# Held deliveries read per statement when a destination is released (all are released, batch by batch).
RELEASE_BATCH = 1_000


def attemptable(delivery_id: Any) -> Any:
    """The condition on Destination under which a worker may attempt the delivery `delivery_id` (a value
    or the Delivery.id column): an enabled push destination, not paused, its breaker closed or this
    delivery its probe."""
    return and_(takes_attempts(), breaker_lets(delivery_id))


def takes_attempts() -> Any:
    """The condition on Destination that a worker attempts its deliveries at all: enabled, pushed, not
    paused (its breaker aside)."""
    return and_(Destination.enabled.is_(True), Destination.kind.in_(pushed_kinds()), Destination.paused_at.is_(None))


def breaker_lets(delivery_id: Any) -> Any:
    """The condition that the destination's breaker lets `delivery_id` through: closed, or this its probe."""
    return or_(Destination.breaker_opened_at.is_(None), Destination.probe_delivery_id == delivery_id)


def not_held() -> Any:
    """The condition on Delivery that its destination does not hold it (paused or breaker open)."""
    return Delivery.destination_id.not_in(select(Destination.id).where(Destination.held_since.is_not(None)))


def locked(session: Session, destination_id: int) -> Destination:
    return session.scalars(
        select(Destination)
        .where(Destination.id == destination_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()


def release(session: Session, destination: Destination, held: dt.timedelta | None, *, now: dt.datetime) -> list[Wake]:
    """Nothing holds the destination's deliveries any more: their TTL deadlines move by the time they
    were held (all of them, in batches by id), and those due are woken now."""
    if held is None:
        return []
    wake: list[Wake] = []
    released, after = 0, ""
    while rows := session.scalars(
        select(Delivery)
        .where(Delivery.destination_id == destination.id, Delivery.status.in_(WAITING), Delivery.id > after)
        .order_by(Delivery.id)
        .limit(RELEASE_BATCH)
        .with_for_update()
    ).all():
        for delivery in rows:
            transitions.hold_released(delivery, held, now=now)
            if delivery.next_attempt_at is not None and delivery.next_attempt_at <= now:
                transitions.woken(delivery, kind=destination.kind, now=now)
                wake.append((delivery.id, destination.kind))
        released, after = released + len(rows), rows[-1].id
        session.flush()
    log.info("destination %s released: %d deliveries held for %s", destination.public_id, released, held)
    return wake


def counted(
    session: Session,
    destination: Destination,
    *,
    delivery_id: str,
    result: AttemptResult,
    policy: BreakerPolicy,
    now: dt.datetime,
) -> list[Wake]:
    """A finished attempt at the destination, for its breaker; the common case (a success with no
    failures counted, not the probe) writes nothing."""
    failed = not result.ok and result.retryable
    probe = destination.probe_delivery_id == delivery_id
    if not (probe or failed or (result.ok and destination.consecutive_failures)):
        return []
    row = locked(session, destination.id)
    before = transitions.breaker_state(row)
    held = transitions.attempt_counted(
        row, delivery_id=delivery_id, ok=result.ok, retryable=result.retryable, policy=policy, now=now
    )
    after = transitions.breaker_state(row)
    # The caller's copy follows, so the next attempt of its batch at this destination counts from here.
    destination.consecutive_failures, destination.probe_delivery_id = row.consecutive_failures, row.probe_delivery_id
    if after != before:
        log.warning(
            "destination %s: circuit breaker %s (%d failed attempts in a row)",
            row.public_id,
            "closed" if after == BreakerState.CLOSED else "opened",
            row.consecutive_failures,
        )
    return release(session, row, held, now=now)


def probe_breakers(session: Session, *, now: dt.datetime, policy: BreakerPolicy, limit: int) -> list[Wake]:
    """For each open breaker whose cool-down is over: let its longest-waiting delivery through."""
    destinations = session.scalars(
        select(Destination)
        .where(
            Destination.breaker_opened_at <= policy.cooled_if_opened_by(now),
            Destination.probe_delivery_id.is_(None),
            Destination.paused_at.is_(None),
        )
        .order_by(Destination.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ).all()
    wake: list[Wake] = []
    for destination in destinations:
        candidate = session.scalars(
            select(Delivery)
            .where(Delivery.destination_id == destination.id, Delivery.status.in_(WAITING))
            .order_by(Delivery.next_attempt_at)
            .limit(1)
            .with_for_update(skip_locked=True)
        ).first()
        if candidate is not None:
            wake.append(transitions.probe_chosen(destination, candidate, policy=policy, now=now))
            log.info("destination %s: circuit breaker half-open, probing with %s", destination.public_id, candidate.id)
    return wake
