"""A drain's claim on each database: one statement takes at most as many due deliveries as it has free
threads, the longest-due first (the limit is a subquery of the UPDATE, which a database may not evaluate
only once)."""

from __future__ import annotations

from sqlalchemy import func, select

from filerelay.clock import FrozenClock
from filerelay.db.models import Delivery, Destination
from filerelay.db.session import session_scope
from filerelay.delivery import service
from filerelay.runtime import Runtime
from tests.support.documents import accept


def waiting(runtime: Runtime) -> int:
    with session_scope(runtime.sessions) as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Delivery)
                .join(Destination)
                .where(Destination.kind == "folder", Delivery.status == "pending")
            )
            or 0
        )


def test_a_claim_takes_no_more_than_its_limit_the_longest_due_first(configured: Runtime, clock: FrozenClock) -> None:
    for n in range(10):
        accept(configured, f"DOC{n}", b"%PDF-1.4")
        clock.advance(1)  # each due a second after the one before
    claimed = []
    for _ in range(2):
        with session_scope(configured.sessions) as session:
            claims = service.claim_due(session, kinds=["folder"], now=configured.clock.now(), lease_seconds=60, limit=2)
        assert len(claims) == 2
        claimed += [claim.delivery_id for claim in claims]
    assert waiting(configured) == 6
    with session_scope(configured.sessions) as session:
        oldest = session.scalars(
            select(Delivery.id).join(Destination).where(Destination.kind == "folder").order_by(Delivery.next_attempt_at)
        ).all()
    assert sorted(claimed) == sorted(oldest[:4])
