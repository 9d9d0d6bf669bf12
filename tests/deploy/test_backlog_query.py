"""The query KEDA scales each worker Deployment on, run against a real PostgreSQL: it counts what a worker
of the kind would claim now, plus what runs."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import text, update

from filerelay.clock import FrozenClock
from filerelay.db.models import Delivery, Destination
from filerelay.db.session import session_scope
from filerelay.delivery import service
from filerelay.delivery.backlog import backlog_query
from filerelay.runtime import Runtime
from tests.support.documents import accept


def backlog(runtime: Runtime, kind: str) -> int:
    with runtime.engine.connect() as conn:
        return int(conn.execute(text(backlog_query(kind))).scalar_one())


def claim_all(runtime: Runtime, kind: str, now: dt.datetime) -> int:
    with session_scope(runtime.sessions) as session:
        return len(service.claim_due(session, kinds=[kind], now=now, lease_seconds=60, limit=1000))


def test_the_backlog_is_what_a_worker_would_claim_plus_what_runs(configured: Runtime, clock: FrozenClock) -> None:
    if configured.engine.dialect.name != "postgresql":
        pytest.skip("KEDA's PostgreSQL scaler runs it on PostgreSQL")
    # The query reads the database's clock: the frozen clock must stand a little before it.
    with configured.engine.connect() as conn:
        database_now = conn.execute(text("SELECT now()")).scalar_one()
    clock.advance((database_now - dt.timedelta(seconds=5) - clock.now()).total_seconds())
    ids = []
    for n in range(5):
        outcome, _ = accept(configured, f"DOC{n}", b"%PDF-1.4 " + bytes([n]))
        ids += [(d, kind) for d, kind in outcome.enqueue]
    s3 = [d for d, kind in ids if kind == "s3"]
    folder = [d for d, kind in ids if kind == "folder"]
    with session_scope(configured.sessions) as session:
        # One s3 retry not due for an hour; one folder delivery delivered; the s3 destination's breaker open.
        session.execute(
            update(Delivery).where(Delivery.id == s3[0]).values(next_attempt_at=clock.now() + dt.timedelta(hours=1))
        )
        session.execute(update(Delivery).where(Delivery.id == folder[0]).values(status="delivered"))
    with session_scope(configured.sessions) as session:
        assert service.claim(session, delivery_id=folder[2], now=clock.now(), lease_seconds=60) is not None

    assert backlog(configured, "folder") == 1 + 3  # running, and the three a worker would claim
    assert backlog(configured, "s3") == 4
    assert backlog(configured, "email") == 0

    with session_scope(configured.sessions) as session:
        session.execute(
            update(Destination).where(Destination.public_id == "dest_s3prod").values(breaker_opened_at=clock.now())
        )
    assert backlog(configured, "s3") == 0  # held: nothing a worker may take, nothing runs

    # By construction of the claim: what it counted as waiting is exactly what a worker claims now, and
    # once claimed it still counts (running) until it ends.
    before = backlog(configured, "folder")
    assert claim_all(configured, "folder", clock.now()) == before - 1
    assert backlog(configured, "folder") == before
    assert claim_all(configured, "s3", clock.now()) == 0
