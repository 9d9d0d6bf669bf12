"""The broker is only a wake-up call: with Redis unreachable SAP still gets its 201, the rows are the
truth, and the sweeper sends the wake-ups once the broker answers again
(docs/architecture.md#how-a-document-is-accepted, step 4)."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import redis
from sqlalchemy import func, select

from filerelay.db.models import Delivery, Destination, Document
from filerelay.db.session import session_scope
from filerelay.delivery import sweep
from filerelay.runtime import Runtime, build_runtime
from tests.support.app_server import serving
from tests.support.processes import free_port
from tests.support.relay import Relay, wait_until
from tests.support.s3server import S3Server
from tests.support.wakeups import redis_wakeups

pytestmark = pytest.mark.slow

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 100 + b"\n%%EOF\n"


def delivery_rows(runtime: Runtime) -> dict[str, tuple[str, int]]:
    with session_scope(runtime.sessions) as session:
        rows = session.execute(
            select(Destination.public_id, Delivery.status, Delivery.attempts).join(
                Destination, Destination.id == Delivery.destination_id
            )
        )
        return {public_id: (status, attempts) for public_id, status, attempts in rows}


def test_create_with_the_broker_down_answers_201_and_the_sweeper_delivers_it_later(
    make_relay: Callable[..., Relay], s3: S3Server, redis_db: redis.Redis
) -> None:
    relay = make_relay()
    # A closed loopback port: the connection is refused, as with Redis down.
    unreachable = relay.runtime.settings.with_overrides(broker_url=f"redis://127.0.0.1:{free_port()}/0")
    api = build_runtime(unreachable)
    try:
        with serving(api) as sap:
            reply = sap.create("DOC1", "data", PDF, "application/pdf")
    finally:
        api.close()

    assert reply.status == 201, reply.error
    with session_scope(relay.runtime.sessions) as session:
        document = session.scalars(select(Document).where(Document.doc_id == "DOC1")).one()
        assert (document.status, document.sha256) == ("pending", hashlib.sha256(PDF).hexdigest())
    assert delivery_rows(relay.runtime) == {"dest_folder": ("pending", 0), "dest_s3prod": ("pending", 0)}
    assert redis_wakeups(redis_db) == {}  # no wake-up got through, none marked outstanding

    # The broker is back (the relay's own Redis). A sweep finds both kinds with due deliveries and no
    # wake-up outstanding, and wakes them at once (no grace: no wake-up can be on its way).
    sweeper = build_runtime(relay.runtime.settings)
    try:
        report = sweep.sweep(sweeper)
    finally:
        sweeper.close()
    assert report.enqueued == 2
    assert redis_wakeups(redis_db) == {"folder": (True, 1), "s3": (True, 1)}
    relay.start("worker", "worker", "--queues", "s3,folder", "--concurrency", "2")

    wait_until(
        lambda: delivery_rows(relay.runtime) == {"dest_folder": ("delivered", 1), "dest_s3prod": ("delivered", 1)},
        what="both deliveries delivered after the sweep",
    )
    assert (relay.out / "Z1" / "DOC1_data.pdf").read_bytes() == PDF
    client = s3.client()
    [key] = [o["Key"] for o in client.list_objects_v2(Bucket=relay.bucket)["Contents"]]
    assert key.endswith("/DOC1.pdf")
    assert client.get_object(Bucket=relay.bucket, Key=key)["Body"].read() == PDF


@contextmanager
def closing_broker() -> Iterator[tuple[str, list[int]]]:
    """A "Redis" on loopback that takes each connection and drops it at once: every wake-up fails, and
    each connection attempt is counted."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = [0]

    def drop() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted[0] += 1
            conn.close()

    thread = threading.Thread(target=drop, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0", accepted
    finally:
        listener.close()
        thread.join(timeout=5)


def test_creates_with_the_broker_failing_try_it_once_then_skip_it(configured: Runtime) -> None:
    # SAP waits for the 201 in a work process; the wake-up is not needed for it. kombu's connection
    # retries (3 connections and ~6 s of pauses per create) made each create wait on a dead broker.
    with closing_broker() as (url, accepted):
        api = build_runtime(configured.settings.with_overrides(broker_url=url), clock=configured.clock)
        try:
            with serving(api) as sap:
                replies = [sap.create(f"DOC{n}", "data", PDF, "application/pdf") for n in range(3)]
        finally:
            api.close()
        assert [r.status for r in replies] == [201, 201, 201]
        assert accepted[0] == 1  # one try; the next creates skip the broker for a while
    with session_scope(configured.sessions) as session:
        assert session.scalar(select(func.count()).select_from(Delivery).where(Delivery.status == "pending")) == 6


def test_a_wake_up_lost_with_its_mark_left_is_sent_again_once_the_grace_has_passed(
    make_relay: Callable[..., Relay], redis_db: redis.Redis
) -> None:
    relay = make_relay()
    assert relay.sap.create("DOC1", "data", PDF, "application/pdf").status == 201
    assert redis_wakeups(redis_db) == {"folder": (True, 1), "s3": (True, 1)}
    # The messages are lost (a Redis failover that kept the keys but not the lists): each kind's mark
    # still says a wake-up is on its way, so creates and sweeps send none.
    redis_db.delete("deliver.folder", "deliver.s3")
    assert relay.sap.create("DOC2", "data", PDF, "application/pdf").status == 201
    grace = 1
    sweeper = build_runtime(relay.runtime.settings.with_overrides(wake_grace_seconds=grace))
    try:
        assert sweep.sweep(sweeper).enqueued == 0  # within the grace a wake-up may still be on its way
        assert redis_wakeups(redis_db) == {"folder": (True, 0), "s3": (True, 0)}
        time.sleep(grace + 0.2)
        assert sweep.sweep(sweeper).enqueued == 2  # past it, a marked kind with an empty queue is woken again
        assert redis_wakeups(redis_db) == {"folder": (True, 1), "s3": (True, 1)}
        assert sweep.sweep(sweeper).enqueued == 0  # and only once: its queue holds the wake-up now
    finally:
        sweeper.close()
    relay.start("worker", "worker", "--queues", "s3,folder", "--concurrency", "2")
    wait_until(
        lambda: set(delivery_statuses(relay.runtime)) == {"delivered"} and redis_wakeups(redis_db) == {},
        what="both documents delivered and the wake-ups taken",
    )
    assert len(delivery_statuses(relay.runtime)) == 4


def delivery_statuses(runtime: Runtime) -> list[str]:
    with session_scope(runtime.sessions) as session:
        return list(session.scalars(select(Delivery.status)))
