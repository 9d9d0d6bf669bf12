"""The heartbeat's parts on their own: the renewal statement, the guarded payload, a database that
does not answer. (The races it exists for run through the engine in tests/destinations/test_sharepoint.py.)"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import logging
import threading
import time

import pytest
from sqlalchemy import create_engine

from filerelay.clock import FrozenClock
from filerelay.db.session import make_session_factory, session_scope
from filerelay.delivery import heartbeat, service, transitions
from filerelay.runtime import Runtime
from tests.support.documents import accept, delivery


def claimed(runtime: Runtime, doc_id: str) -> tuple[str, str]:
    """A document's folder and S3 deliveries, both claimed: attempt 1 each."""
    outcome, _ = accept(runtime, doc_id, b"%PDF-1.4 beat")
    ids = {kind: delivery_id for delivery_id, kind in outcome.enqueue}
    for delivery_id in ids.values():
        with session_scope(runtime.sessions) as session:
            assert service.claim(session, delivery_id=delivery_id, now=runtime.clock.now(), lease_seconds=60)
    return ids["folder"], ids["s3"]


def renew(runtime: Runtime, delivery_id: str, attempt: int) -> bool:
    with session_scope(runtime.sessions) as session:
        return heartbeat.renew(
            session, delivery_id=delivery_id, attempt=attempt, now=runtime.clock.now(), lease_seconds=60
        )


def test_a_renewal_moves_only_its_own_deliverys_lease(configured: Runtime, clock: FrozenClock) -> None:
    folder, s3 = claimed(configured, "DOC1")
    sibling = delivery(configured, s3).lease_until
    clock.advance(30)

    assert renew(configured, folder, attempt=1) is True

    assert delivery(configured, folder).lease_until == clock.now() + dt.timedelta(seconds=60)
    assert delivery(configured, s3).lease_until == sibling  # the same attempt number, another delivery


def test_a_renewal_by_an_attempt_that_no_longer_holds_the_delivery_changes_nothing(configured: Runtime) -> None:
    folder, _ = claimed(configured, "DOC1")
    lease = delivery(configured, folder).lease_until
    assert renew(configured, folder, attempt=2) is False
    assert delivery(configured, folder).lease_until == lease


def test_a_guarded_payload_reads_until_the_lease_is_lost() -> None:
    lost = threading.Event()
    with heartbeat.guarded(io.BytesIO(b"0123456789"), lost) as stream:
        assert stream.read(4) == b"0123"
        buffer = bytearray(2)
        assert stream.readinto(buffer) == 2  # type: ignore[attr-defined]
        assert bytes(buffer) == b"45"
        assert stream.tell() == 6  # the rest is the staged file's own
        with pytest.raises(io.UnsupportedOperation, match=r"^a guarded payload has no file descriptor$"):
            stream.fileno()
        lost.set()
        with pytest.raises(transitions.LeaseLost, match=r"^the lease was lost \(the delivery was taken back"):
            stream.read(4)
        with pytest.raises(transitions.LeaseLost):
            stream.readinto(buffer)  # type: ignore[attr-defined]


def test_without_a_heartbeat_the_payload_is_the_staged_file_itself() -> None:
    staged = io.BytesIO(b"x")
    assert heartbeat.guarded(staged, None) is staged


def test_a_database_that_does_not_answer_is_retried_and_does_not_stop_the_upload(
    configured: Runtime, tmp_path: object, caplog: pytest.LogCaptureFixture
) -> None:
    """A renewal that fails is logged and tried again: the lease may still run out, and then the sweeper
    decides; the heartbeat itself never declares the lease lost on an error."""
    engine = create_engine("sqlite:////nonexistent/dir/filerelay.db")
    down = dataclasses.replace(
        configured,
        settings=configured.settings.with_overrides(lease_seconds=1),
        sessions=make_session_factory(engine),
    )
    caplog.set_level(logging.WARNING, logger="filerelay.delivery.heartbeat")
    with heartbeat.Heartbeat(down, delivery_id="dlv_x", attempt=1) as beat:
        deadline = time.monotonic() + 15
        while sum("cannot renew its lease" in m for m in caplog.messages) < 2:
            assert time.monotonic() < deadline, "no two renewals tried"
            time.sleep(0.05)
        assert not beat.lost.is_set()
    engine.dispose()
    assert caplog.messages[0].startswith("delivery dlv_x: cannot renew its lease: (sqlite3.OperationalError)")


def test_a_lease_is_renewed_three_times_over_its_length() -> None:
    """Two renewals may fail (a database blip) before a live worker's lease runs out."""
    assert heartbeat.renewal_interval(60) == 20
    assert heartbeat.renewal_interval(1) == pytest.approx(1 / 3)
