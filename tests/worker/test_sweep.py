"""The sweeper: wake the kinds whose wake-up was lost or whose retry is due, recover expired leases,
fail what outlived its TTL, release staged bytes nobody needs; and do it through the status indexes.

Z1 is wired to dest_folder and dest_s3prod (which always fails); TTL 1h, backoff 1s..10s.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from filerelay.clock import FrozenClock
from filerelay.db.models import Delivery, DeliveryAttempt, Destination
from filerelay.db.session import session_scope
from filerelay.delivery import service, sweep
from filerelay.queue import FolderMarks
from filerelay.runtime import Runtime
from tests.support.clock import half
from tests.support.documents import create_document, delivery, document
from tests.support.sql_capture import executed, sqlite_plan

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
GRACE = 30


def set_s3(runtime: Runtime, **values: Any) -> None:
    with session_scope(runtime.sessions) as session:
        session.execute(update(Destination).where(Destination.public_id == "dest_s3prod").values(**values))


def claim(runtime: Runtime, delivery_id: str, *, lease_seconds: int) -> None:
    with session_scope(runtime.sessions) as session:
        taken = service.claim(session, delivery_id=delivery_id, now=runtime.clock.now(), lease_seconds=lease_seconds)
    assert taken is not None


def due_kinds(runtime: Runtime) -> list[str]:
    with session_scope(runtime.sessions) as session:
        return sweep.due_kinds(session, now=runtime.clock.now())


def woken(runtime: Runtime) -> list[str]:
    """The kinds with a wake-up outstanding (the embedded broker's files)."""
    return FolderMarks(runtime.settings.broker_dir / "wake").waiting()


def taken(runtime: Runtime, *kinds: str) -> None:
    """What a worker does with the wake-ups it takes: clears them."""
    for kind in kinds:
        runtime.enqueuer.taken(kind)


# --- due_kinds and the wake-ups ---------------------------------------------------------------------


def test_due_kinds_names_each_kind_with_a_due_delivery_once(configured: Runtime) -> None:
    created = create_document(configured, "ONE", PDF, enqueue=True)
    create_document(configured, "TWO", PDF, enqueue=True)
    assert due_kinds(configured) == ["folder", "s3"]
    assert service.run(configured, created.folder, rand=half)
    assert due_kinds(configured) == ["folder", "s3"]  # TWO's folder delivery still waits


def test_creates_wake_each_kind_once_however_many_documents(configured: Runtime) -> None:
    for n in range(5):
        create_document(configured, f"DOC{n}", PDF, enqueue=True)
    assert woken(configured) == ["folder", "s3"]
    taken(configured, "folder", "s3")
    create_document(configured, "AFTER", PDF, enqueue=True)  # after a worker took them: woken again
    assert woken(configured) == ["folder", "s3"]


def test_due_kinds_waits_for_a_retry_to_be_due(configured: Runtime, clock: FrozenClock) -> None:
    created = create_document(configured, "DOC", PDF, enqueue=True)
    assert service.run(configured, created.folder, rand=half)
    assert created.s3 is not None
    assert service.run(configured, created.s3, rand=half)
    row = delivery(configured, created.s3)
    assert row.status == "retrying"
    assert row.next_attempt_at == clock.now() + dt.timedelta(seconds=0.75)

    assert due_kinds(configured) == []
    clock.advance(0.5)
    assert due_kinds(configured) == []
    clock.advance(0.25)
    assert due_kinds(configured) == ["s3"]


def test_the_sweep_wakes_a_kind_whose_wake_up_a_worker_took_and_lost(configured: Runtime) -> None:
    """A worker took the wake-ups and died before claiming: the next sweep wakes the kinds again, and
    while those wait, no sweep sends another."""
    create_document(configured, "DOC", PDF, enqueue=True)
    assert sweep.sweep(configured).enqueued == 0  # the create's wake-ups are outstanding
    taken(configured, "folder", "s3")
    assert woken(configured) == []

    report = sweep.sweep(configured)

    assert report.enqueued == 2
    assert woken(configured) == ["folder", "s3"]
    assert sweep.sweep(configured).enqueued == 0
    assert woken(configured) == ["folder", "s3"]


def test_due_kinds_leaves_disabled_destinations_and_settled_deliveries_alone(configured: Runtime) -> None:
    created = create_document(configured, "DOC", PDF, enqueue=True)
    assert service.run(configured, created.folder, rand=half)  # delivered: nothing more to wake
    set_s3(configured, enabled=False)  # switched off by an admin: its due delivery waits
    assert due_kinds(configured) == []
    set_s3(configured, enabled=True)
    assert due_kinds(configured) == ["s3"]


def set_delivery(runtime: Runtime, delivery_id: str, **values: Any) -> None:
    with session_scope(runtime.sessions) as session:
        session.execute(update(Delivery).where(Delivery.id == delivery_id).values(**values))


def test_due_kinds_leaves_a_delivery_a_worker_holds(configured: Runtime) -> None:
    """A claim leaves the delivery's old next_attempt_at in place: only its status keeps it from a wake-up."""
    created = create_document(configured, "HELD", PDF, enqueue=True)
    claim(configured, created.folder, lease_seconds=3600)
    assert due_kinds(configured) == ["s3"]
    assert delivery(configured, created.folder).status == "delivering"


def test_due_kinds_counts_due_to_the_instant(configured: Runtime, clock: FrozenClock) -> None:
    created = create_document(configured, "DOC", PDF, enqueue=True)
    set_s3(configured, enabled=False)
    set_delivery(configured, created.folder, next_attempt_at=clock.now() + dt.timedelta(seconds=1))
    clock.advance(0.999)
    assert due_kinds(configured) == []
    clock.advance(0.001)  # exactly due
    assert due_kinds(configured) == ["folder"]


# --- recover_expired_leases -----------------------------------------------------------------------


def test_recover_expired_leases_retries_a_delivery_whose_worker_died(configured: Runtime, clock: FrozenClock) -> None:
    created = create_document(configured, "DOC", PDF, enqueue=True)
    assert created.s3 is not None
    claim(configured, created.folder, lease_seconds=5)
    claim(configured, created.s3, lease_seconds=60)
    clock.advance(6)

    with session_scope(configured.sessions) as session:
        recovered = sweep.recover_expired_leases(session, now=clock.now(), limit=100, rand=half)

    assert recovered == 1
    row = delivery(configured, created.folder)
    assert row.status == "retrying"
    assert row.lease_until is None
    assert row.next_attempt_at == clock.now() + dt.timedelta(seconds=0.75)
    assert row.attempts == 1
    assert row.last_error is not None
    assert "lease expired" in row.last_error
    with session_scope(configured.sessions) as session:
        [attempt] = session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == created.folder))
        assert (attempt.outcome, attempt.finished_at) == ("abandoned", clock.now())
        [other] = session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == created.s3))
        assert other.outcome == "running"
    # The unexpired lease is left alone.
    s3 = delivery(configured, created.s3)
    assert s3.status == "delivering"
    assert s3.lease_until is not None
    assert s3.lease_until > clock.now()
    assert document(configured, created.document_id).status == "retrying"

    # The recovered delivery runs again once due; the superseded worker's late finish changes nothing.
    assert row.next_attempt_at is not None
    clock.advance((row.next_attempt_at - clock.now()).total_seconds())
    assert service.run(configured, created.folder, rand=half)
    row = delivery(configured, created.folder)
    assert (row.status, row.attempts) == ("delivered", 2)


def test_a_worker_finishing_after_its_lease_was_recovered_is_superseded(
    configured: Runtime, clock: FrozenClock
) -> None:
    created = create_document(configured, "DOC", PDF, enqueue=True)
    with session_scope(configured.sessions) as session:
        taken = service.claim(session, delivery_id=created.folder, now=clock.now(), lease_seconds=5)
    assert taken is not None
    clock.advance(6)
    with session_scope(configured.sessions) as session:
        assert sweep.recover_expired_leases(session, now=clock.now(), limit=100, rand=half) == 1

    result = service.perform(taken, configured.staging, configured.clients)
    with session_scope(configured.sessions) as session:
        assert service.finish(session, taken, result, now=clock.now(), rand=half).verdict is None  # superseded

    row = delivery(configured, created.folder)
    assert (row.status, row.attempts) == ("retrying", 1)
    with session_scope(configured.sessions) as session:
        [attempt] = session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == created.folder))
        assert attempt.outcome == "superseded"


def test_recovery_takes_a_lease_only_once_it_is_over_and_closes_only_the_running_attempt(
    configured: Runtime, clock: FrozenClock
) -> None:
    created = create_document(configured, "DOC", PDF, enqueue=True)
    assert created.s3 is not None
    assert service.run(configured, created.s3, rand=half)  # attempt 1 fails (the S3 here refuses)
    clock.advance((delivery(configured, created.s3).next_attempt_at - clock.now()).total_seconds())  # type: ignore[operator]
    claim(configured, created.s3, lease_seconds=5)  # attempt 2: its worker dies
    clock.advance(5)
    with session_scope(configured.sessions) as session:
        assert sweep.recover_expired_leases(session, now=clock.now(), limit=100, rand=half) == 0  # lease ends now
    clock.advance(0.001)
    with session_scope(configured.sessions) as session:
        assert sweep.recover_expired_leases(session, now=clock.now(), limit=100, rand=half) == 1
    with session_scope(configured.sessions) as session:
        attempts = session.scalars(
            select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == created.s3).order_by(DeliveryAttempt.number)
        ).all()
        assert [(a.number, a.outcome) for a in attempts] == [(1, "failed"), (2, "abandoned")]


def test_recovery_and_expiry_take_at_most_the_limit_oldest_first(configured: Runtime, clock: FrozenClock) -> None:
    old, new = (
        create_document(configured, "OLD", PDF, enqueue=True),
        create_document(configured, "NEW", PDF, enqueue=True),
    )
    claim(configured, new.folder, lease_seconds=5)
    claim(configured, old.folder, lease_seconds=3)
    clock.advance(6)
    with session_scope(configured.sessions) as session:
        assert sweep.recover_expired_leases(session, now=clock.now(), limit=1, rand=half) == 1
    assert (delivery(configured, old.folder).status, delivery(configured, new.folder).status) == (
        "retrying",
        "delivering",
    )


# --- expire -----------------------------------------------------------------------------------------


def test_expire_fails_a_waiting_delivery_once_its_ttl_ran_out(configured: Runtime, clock: FrozenClock) -> None:
    created = create_document(configured, "DOC", PDF, enqueue=True)
    assert created.s3 is not None
    assert service.run(configured, created.folder, rand=half)
    assert service.run(configured, created.s3, rand=half)
    assert document(configured, created.document_id).status == "retrying"

    clock.advance(3600 - 1)
    with session_scope(configured.sessions) as session:
        assert sweep.expire(session, now=clock.now(), limit=100) == 0
    assert delivery(configured, created.s3).status == "retrying"

    clock.advance(1)  # expires_at = created + ttl 1h
    with session_scope(configured.sessions) as session:
        assert sweep.expire(session, now=clock.now(), limit=100) == 1

    row = delivery(configured, created.s3)
    assert row.status == "failed"
    assert row.next_attempt_at is None
    assert row.last_error is not None
    assert row.last_error.endswith("; retry TTL expired")
    assert delivery(configured, created.folder).status == "delivered"
    assert document(configured, created.document_id).status == "failed"
    with session_scope(configured.sessions) as session:
        assert sweep.expire(session, now=clock.now(), limit=100) == 0


def test_expire_takes_at_most_the_limit_the_longest_expired_first_whatever_its_status(
    configured: Runtime, clock: FrozenClock
) -> None:
    older, younger = (
        create_document(configured, "OLDER", PDF, enqueue=True),
        create_document(configured, "YOUNGER", PDF, enqueue=True),
    )
    set_s3(configured, enabled=False)
    clock.advance(3600 + 100)
    # Before the switched-off S3 deliveries too (expired 100 s ago: they wait for nothing but their TTL).
    set_delivery(configured, older.folder, status="retrying", expires_at=clock.now() - dt.timedelta(seconds=200))
    set_delivery(configured, younger.folder, expires_at=clock.now() - dt.timedelta(seconds=10))
    with session_scope(configured.sessions) as session:
        assert sweep.expire(session, now=clock.now(), limit=1) == 1
    assert (delivery(configured, older.folder).status, delivery(configured, younger.folder).status) == (
        "failed",
        "pending",
    )


def test_expire_leaves_a_delivery_a_worker_holds(configured: Runtime, clock: FrozenClock) -> None:
    """Past its TTL, a delivery under a live lease is the worker's: its finish decides."""
    created = create_document(configured, "DOC", PDF, enqueue=True)
    claim(configured, created.folder, lease_seconds=7200)
    clock.advance(3601)
    with session_scope(configured.sessions) as session:
        expired = sweep.expire(session, now=clock.now(), limit=100)
    assert delivery(configured, created.folder).status == "delivering"
    assert expired == 1  # only the waiting S3 delivery


# --- purging staged bytes ---------------------------------------------------------------------------


def test_sweep_purges_staged_bytes_only_of_documents_delivered_everywhere_after_the_retention(
    configured: Runtime, clock: FrozenClock
) -> None:
    configured.settings = dataclasses.replace(configured.settings, staging_retention_seconds=10)
    # A document that fails for good on S3 (max_retries 0 on the destination: one attempt).
    set_s3(configured, max_retries=0)
    failed = create_document(configured, "FAILED", PDF, enqueue=True)
    assert failed.s3 is not None
    assert service.run(configured, failed.folder, rand=half)
    assert service.run(configured, failed.s3, rand=half)
    assert document(configured, failed.document_id).status == "failed"
    # A document delivered everywhere (S3 disabled before it arrived, so only the folder is wired).
    set_s3(configured, enabled=False)
    delivered = create_document(configured, "DELIVERED", PDF, enqueue=True)
    assert sorted(delivered.by_kind) == ["folder"]
    assert service.run(configured, delivered.folder, rand=half)
    assert document(configured, delivered.document_id).status == "delivered"

    clock.advance(5)
    assert sweep.sweep(configured).purged == 0
    assert configured.staging.exists(delivered.staging_key)

    clock.advance(5)
    report = sweep.sweep(configured)

    assert report.purged == 1
    assert not configured.staging.exists(delivered.staging_key)
    assert document(configured, delivered.document_id).staging_key is None
    # Failed documents keep their bytes for a retry.
    assert configured.staging.exists(failed.staging_key)
    assert document(configured, failed.document_id).staging_key == failed.staging_key
    clock.advance(3600 * 24)
    assert sweep.sweep(configured).purged == 0
    assert configured.staging.exists(failed.staging_key)


def test_purgeable_ignores_documents_still_waiting_for_a_destination(configured: Runtime, clock: FrozenClock) -> None:
    created = create_document(configured, "DOC", PDF, enqueue=True)
    assert service.run(configured, created.folder, rand=half)  # S3 still pending
    clock.advance(7200)
    with session_scope(configured.sessions) as session:
        assert sweep.purgeable(session, now=clock.now(), retention_seconds=10, limit=100) == []
    assert document(configured, created.document_id).staging_key == created.staging_key


# --- the whole pass ---------------------------------------------------------------------------------


def test_sweep_report_counts_what_one_pass_did(configured: Runtime, clock: FrozenClock) -> None:
    configured.settings = dataclasses.replace(configured.settings, staging_retention_seconds=10)
    start = clock.now()
    # EXPIRED: folder delivered, S3 still pending (its message lost) when the 1h TTL runs out.
    expired = create_document(configured, "EXPIRED", PDF, enqueue=True)
    assert service.run(configured, expired.folder, rand=half)
    set_s3(configured, enabled=False)  # the documents below are wired to the folder only
    # PURGE: delivered everywhere, well past the 10 s retention at sweep time.
    clock.advance(3500)
    purge = create_document(configured, "PURGE", PDF, enqueue=True)
    assert service.run(configured, purge.folder, rand=half)
    # LOST: its wake-up never arrived, and the grace has passed.
    clock.advance(60)
    create_document(configured, "LOST", PDF, enqueue=True)
    # CRASHED: a worker claimed it with a 5 s lease and died.
    clock.advance(34)
    crashed = create_document(configured, "CRASHED", PDF, enqueue=True)
    claim(configured, crashed.folder, lease_seconds=5)
    clock.advance(6)
    assert clock.now() == start + dt.timedelta(hours=1)
    taken(configured, "folder", "s3")  # LOST's wake-up: taken by a worker that died

    report = sweep.sweep(configured)

    assert (report.recovered, report.expired, report.enqueued, report.purged) == (1, 1, 1, 1)
    assert report.errors == []
    assert report.busy
    assert woken(configured) == ["folder"]  # LOST and CRASHED; EXPIRED's s3 delivery failed
    assert expired.s3 is not None
    assert delivery(configured, expired.s3).status == "failed"  # expired, so not woken
    assert delivery(configured, crashed.folder).status == "retrying"
    assert document(configured, purge.document_id).staging_key is None
    assert document(configured, expired.document_id).staging_key == expired.staging_key

    # The Files feed's numbers, given last: every document, with this pass's own changes.
    assert report.sequenced == 4

    again = sweep.sweep(configured)
    assert (again.recovered, again.expired, again.enqueued, again.purged, again.sequenced) == (0, 0, 0, 0, 0)
    assert not again.busy
    assert woken(configured) == ["folder"]


# --- the queries walk the status indexes (SQLite) ---------------------------------------------------


def _due_kinds(session: Session, now: dt.datetime) -> object:
    return sweep.due_kinds(session, now=now)


def _recover(session: Session, now: dt.datetime) -> object:
    return sweep.recover_expired_leases(session, now=now, limit=10)


def _expire(session: Session, now: dt.datetime) -> object:
    return sweep.expire(session, now=now, limit=10)


@pytest.mark.parametrize(
    ("call", "index"),
    [
        (_due_kinds, "ix_deliveries_status_next_attempt"),
        (_recover, "ix_deliveries_status_lease"),
        (_expire, "ix_deliveries_status_expires"),
    ],
    ids=["due_kinds", "recover_expired_leases", "expire"],
)
def test_sweeper_queries_walk_a_status_index_on_sqlite(
    configured: Runtime, call: Callable[[Session, dt.datetime], object], index: str
) -> None:
    if configured.engine.dialect.name != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's")
    create_document(configured, "DOC", PDF, enqueue=True)
    with executed(configured.engine) as captured, session_scope(configured.sessions) as session:
        call(session, configured.clock.now() + dt.timedelta(hours=2))

    selects = [(s, p) for s, p in captured if s.lstrip().upper().startswith("SELECT") and "FROM deliveries" in s]
    assert selects, captured
    statement, parameters = selects[0]
    details = " | ".join(sqlite_plan(configured.engine, statement, parameters))
    assert "USING INDEX ix_deliveries_status_" in details, details
    assert f"USING INDEX {index} " in details, details


# --- two sweepers at once (PostgreSQL: SQLite has no row locks) ------------------------------------


def _due_for(runtime: Runtime, clock: FrozenClock, step: str) -> str:
    created = create_document(runtime, "LOCKED")
    if step == "recover_expired_leases":
        claim(runtime, created.folder, lease_seconds=5)
        clock.advance(6)
    else:
        clock.advance(3600 + GRACE)  # due for a wake-up, and past the TTL
    return created.folder


STEPS: dict[str, Callable[[Session, dt.datetime], object]] = {
    "recover_expired_leases": lambda s, now: sweep.recover_expired_leases(s, now=now, limit=10, rand=half),
    "expire": lambda s, now: sweep.expire(s, now=now, limit=10),
}


@pytest.mark.parametrize("step", list(STEPS))
def test_a_second_sweeper_skips_rows_the_first_holds_instead_of_waiting(
    configured: Runtime, clock: FrozenClock, step: str
) -> None:
    if configured.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has no row locks: one writer at a time")
    set_s3(configured, enabled=False)
    delivery_id = _due_for(configured, clock, step)
    before = delivery(configured, delivery_id)
    with configured.engine.connect() as first:
        first.execute(select(Delivery.id).where(Delivery.id == delivery_id).with_for_update())
        with session_scope(configured.sessions) as session:
            # Waiting would be an error here, not a hang.
            session.execute(text("SET LOCAL lock_timeout = '2s'"))
            STEPS[step](session, clock.now())
        first.rollback()
    row = delivery(configured, delivery_id)
    assert (row.status, row.enqueued_at, row.attempts) == (before.status, before.enqueued_at, before.attempts)
    # ... and once the first lets go, the row is the second's to take.
    with session_scope(configured.sessions) as session:
        STEPS[step](session, clock.now())
    after = delivery(configured, delivery_id)
    assert (after.status, after.enqueued_at) != (before.status, before.enqueued_at)
