"""A bulk retry hands `retry_deliveries` a batch read a moment earlier; by the time it runs, some of
those deliveries may have moved on (delivered, or retried by someone else). Those are left alone,
and every still-failed delivery after them in the batch is retried all the same."""

from __future__ import annotations

from sqlalchemy import select, update

from filerelay.clock import FrozenClock
from filerelay.db.models import Delivery, Document
from filerelay.db.session import session_scope
from filerelay.delivery.retry import retry_deliveries
from filerelay.runtime import Runtime
from tests.support.documents import create_document, delivery_to

PDF = b"%PDF-1.4\n%%EOF\n"


def s3_delivery_id(runtime: Runtime, document_id: str) -> str:
    return delivery_to(runtime, document_id, "dest_s3prod")


def set_status(runtime: Runtime, delivery_id: str, status: str) -> None:
    with session_scope(runtime.sessions) as session:
        session.execute(update(Delivery).where(Delivery.id == delivery_id).values(status=status))


def test_deliveries_that_moved_on_are_skipped_and_the_rest_of_the_batch_is_retried(
    configured: Runtime, clock: FrozenClock
) -> None:
    first, second, third = (create_document(configured, f"DOC{n}", PDF).document_id for n in (1, 2, 3))
    batch = [s3_delivery_id(configured, d) for d in (first, second, third)]
    set_status(configured, batch[0], "delivered")  # delivered since the batch was read
    set_status(configured, batch[1], "failed")
    set_status(configured, batch[2], "failed")
    clock.advance(60)

    with session_scope(configured.sessions) as session:
        rows = [session.get_one(Delivery, delivery_id) for delivery_id in batch]
        wake = retry_deliveries(session, rows, now=clock.now())

    assert wake == [(batch[1], "s3"), (batch[2], "s3")]
    with session_scope(configured.sessions) as session:
        statuses = [session.get_one(Delivery, delivery_id).status for delivery_id in batch]
        retried = session.get_one(Delivery, batch[2])
        assert (retried.next_attempt_at, retried.enqueued_at) == (clock.now(), clock.now())
        # Only the documents of retried deliveries are rolled up again.
        updated = {d.id: d.updated_at for d in session.scalars(select(Document))}
    assert statuses == ["delivered", "retrying", "retrying"]
    assert updated[second] == updated[third] == clock.now()
    assert updated[first] < clock.now()


def test_a_batch_with_nothing_failed_left_changes_nothing(configured: Runtime, clock: FrozenClock) -> None:
    delivery_id = s3_delivery_id(configured, create_document(configured, "DOC1", PDF).document_id)
    set_status(configured, delivery_id, "delivered")
    with session_scope(configured.sessions) as session:
        assert retry_deliveries(session, [session.get_one(Delivery, delivery_id)], now=clock.now()) == []
    with session_scope(configured.sessions) as session:
        assert session.get_one(Delivery, delivery_id).status == "delivered"
