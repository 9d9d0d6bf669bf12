"""The delivery engine end to end: SAP → API → Redis → worker processes → S3 (SeaweedFS) and a folder."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import signal
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
import redis
from sqlalchemy import func, select

from filerelay.clock import as_utc
from filerelay.db.models import Delivery, DeliveryAttempt, Destination, Document
from filerelay.db.session import session_scope
from filerelay.queue import DELIVER_TASK, DRAIN_TASK, Enqueuer, make_producer, queue_name
from tests.support.relay import Relay, relay_config, wait_until
from tests.support.s3server import S3Server
from tests.support.s3stub import S3Refusal, refusing_s3
from tests.support.wakeups import redis_wakeups

pytestmark = pytest.mark.slow


def body(n: int, size: int) -> bytes:
    seed = hashlib.sha256(str(n).encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def statuses(relay: Relay) -> dict[str, str]:
    with session_scope(relay.runtime.sessions) as session:
        return {doc_id: status for doc_id, status in session.execute(select(Document.doc_id, Document.status))}


def deliveries(relay: Relay) -> list[tuple[str, str, str, int, dt.datetime | None, str | None]]:
    """(doc_id, destination public id, status, attempts, next_attempt_at, path) for every delivery."""
    with session_scope(relay.runtime.sessions) as session:
        rows = session.execute(
            select(
                Document.doc_id,
                Destination.public_id,
                Delivery.status,
                Delivery.attempts,
                Delivery.next_attempt_at,
                Delivery.path,
            )
            .join(Document, Document.id == Delivery.document_id)
            .join(Destination, Destination.id == Delivery.destination_id)
            .order_by(Document.doc_id, Destination.public_id)
        )
        return [(a, b, c, d, e, f) for a, b, c, d, e, f in rows]


def all_delivered(relay: Relay, count: int) -> Callable[[], bool]:
    def check() -> bool:
        found = statuses(relay)
        return len(found) == count and set(found.values()) == {"delivered"}

    return check


def s3_objects(s3: S3Server, bucket: str) -> dict[str, bytes]:
    client = s3.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def versioned(s3: S3Server, bucket: str) -> None:
    """Keep every upload as a version, so a second PUT of the same key shows instead of overwriting."""
    s3.client().put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})


def uploads_per_key(s3: S3Server, bucket: str) -> Counter[str]:
    client = s3.client()
    found: Counter[str] = Counter()
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        found.update(v["Key"] for v in page.get("Versions", []))
    return found


def test_documents_land_in_s3_and_a_folder_byte_identical(make_relay: Callable[..., Relay], s3: S3Server) -> None:
    relay = make_relay()
    relay.start("worker", "worker", "--queues", "s3,folder", "--concurrency", "2")
    # One body above the 16 MiB multipart threshold, so both S3 upload paths are exercised.
    sizes = {"DOC1": 10, "DOC2": 300_000, "DOC3": 20 * 1024 * 1024, "DOC4": 0}
    for n, (doc_id, size) in enumerate(sizes.items()):
        assert relay.sap.create(doc_id, "data", body(n, size), "application/pdf").status == 201
    wait_until(all_delivered(relay, len(sizes)), what="every document delivered")

    with session_scope(relay.runtime.sessions) as session:
        today = session.scalars(select(Document.received_at)).first().strftime("%Y/%m/%d")  # type: ignore[union-attr]
    objects = s3_objects(s3, relay.bucket)
    assert sorted(objects) == sorted(f"{today}/{d}.pdf" for d in sizes)
    for n, (doc_id, size) in enumerate(sizes.items()):
        expected = hashlib.sha256(body(n, size)).hexdigest()
        assert hashlib.sha256(objects[f"{today}/{doc_id}.pdf"]).hexdigest() == expected
        assert hashlib.sha256((relay.out / "Z1" / f"{doc_id}_data.pdf").read_bytes()).hexdigest() == expected
    rows = deliveries(relay)
    assert {(r[1], r[2], r[3]) for r in rows} == {("dest_folder", "delivered", 1), ("dest_s3prod", "delivered", 1)}
    assert {r[5] for r in rows if r[1] == "dest_folder"} == {f"/Z1/{d}_data.pdf" for d in sizes}
    with session_scope(relay.runtime.sessions) as session:
        outcomes = session.execute(select(DeliveryAttempt.outcome, func.count()).group_by(DeliveryAttempt.outcome))
        assert {outcome: n for outcome, n in outcomes} == {"delivered": 2 * len(sizes)}


@pytest.fixture
def slow_down() -> Iterator[S3Refusal]:
    """An S3 that answers every request 503 SlowDown: worth retrying (a wrong key or a missing bucket is not)."""
    with refusing_s3(503, "SlowDown") as stub:
        yield stub


def test_a_refusing_s3_is_retried_with_growing_delays_then_fails(
    slow_down: S3Refusal, make_relay: Callable[..., Relay]
) -> None:
    stub, refusing = slow_down, S3Server(slow_down.endpoint)
    relay = make_relay(config_for=lambda bucket, out: relay_config(refusing, bucket, out, secret="x", max_retries=2))
    relay.start("worker", "worker", "--queues", "s3,folder", "--concurrency", "2")
    relay.start("sweeper", "sweeper")
    assert relay.sap.create("DOC1", "data", b"%PDF-1.4 invoice", "application/pdf").status == 201

    seen: list[tuple[int, dt.datetime]] = []

    def s3_state() -> str:
        row = next(r for r in deliveries(relay) if r[1] == "dest_s3prod")
        if row[2] == "retrying" and row[4] is not None and (row[3], row[4]) not in seen:
            seen.append((row[3], row[4]))
        return row[2]

    wait_until(lambda: s3_state() == "retrying", what="S3 retrying")
    assert statuses(relay) == {"DOC1": "retrying"}
    wait_until(lambda: s3_state() == "failed", timeout=90, what="S3 failed")
    assert statuses(relay) == {"DOC1": "failed"}

    rows = {r[1]: r for r in deliveries(relay)}
    assert rows["dest_s3prod"][3] == 3  # 1 attempt + max_retries 2
    assert (rows["dest_folder"][2], rows["dest_folder"][3]) == ("delivered", 1)  # never re-sent
    assert [a for a, _ in seen] == [1, 2]
    with session_scope(relay.runtime.sessions) as session:
        delivery = session.scalars(
            select(Delivery).join(Destination).where(Destination.public_id == "dest_s3prod")
        ).one()
        finished = {a.number: a.finished_at for a in delivery.attempt_log}
    # Each delay is counted from the end of the attempt that failed. Equal jitter waits between half
    # and all of min(backoff_max, backoff_base * 2^(n-1)): 0.5-1 s after the first failure, 1-2 s after
    # the second, so the delays grow whatever the random half; a backoff that stopped doubling would
    # put the second delay below 1 s.
    delays = [(as_utc(due) - as_utc(finished[number] or due)).total_seconds() for number, due in seen]
    assert 0.5 <= delays[0] <= 1.0 <= delays[1] <= 2.0, delays
    assert delays[0] < delays[1], delays
    with session_scope(relay.runtime.sessions) as session:
        delivery = session.scalars(
            select(Delivery).join(Destination).where(Destination.public_id == "dest_s3prod")
        ).one()
        assert "SlowDown (HTTP 503)" in (delivery.last_error or "")
        assert [a.outcome for a in delivery.attempt_log] == ["failed", "failed", "failed"]
    assert len([r for r in stub.requests if r.method == "PUT"]) >= 3


def test_duplicate_wake_ups_upload_once(make_relay: Callable[..., Relay], s3: S3Server) -> None:
    relay = make_relay()
    versioned(s3, relay.bucket)
    client = relay_redis(relay)
    for doc_id in ("DOC1", "DOC2"):
        assert relay.sap.create(doc_id, "data", doc_id.encode(), "application/pdf").status == 201
    # Coalesced: one wake-up waits per kind, however many documents, and another enqueuer sends none more.
    assert redis_wakeups(client) == {"folder": (True, 1), "s3": (True, 1)}
    settings = relay.runtime.settings
    ids = [(d.id, d.destination.kind) for d in _all_deliveries(relay)]
    assert Enqueuer(settings).enqueue(ids) == 0
    assert redis_wakeups(client) == {"folder": (True, 1), "s3": (True, 1)}
    # Duplicates anyway, before any worker runs: a kind's wake-up again (a redelivered message), and one
    # per delivery as earlier versions sent them (left in the queues by an upgrade).
    app = make_producer(settings)
    for delivery_id, kind in ids:
        app.send_task(DRAIN_TASK, args=(kind,), queue=queue_name(kind))
        app.send_task(DELIVER_TASK, args=(delivery_id,), queue=queue_name(kind))
    assert redis_wakeups(client) == {"folder": (True, 5), "s3": (True, 5)}
    relay.start("worker", "worker", "--queues", "s3,folder", "--concurrency", "2")
    wait_until(all_delivered(relay, 2), what="delivered")
    wait_until(lambda: _queue_empty(relay), what="duplicates consumed")
    with session_scope(relay.runtime.sessions) as session:
        assert session.scalar(select(func.count()).select_from(DeliveryAttempt)) == 4
    assert {r[3] for r in deliveries(relay)} == {1}
    assert uploads_per_key(s3, relay.bucket) == Counter({key: 1 for key in s3_objects(s3, relay.bucket)})
    assert len(s3_objects(s3, relay.bucket)) == 2


def _all_deliveries(relay: Relay) -> list[Delivery]:
    with session_scope(relay.runtime.sessions) as session:
        found = list(session.scalars(select(Delivery)))
        for d in found:
            _ = d.destination.kind
        return found


def _queue_empty(relay: Relay) -> bool:
    client = redis.Redis.from_url(relay.runtime.settings.broker_url)
    try:
        return redis_wakeups(client) == {} and not client.hlen("unacked")
    finally:
        client.close()


def test_killed_worker_and_flushed_redis_still_deliver_exactly_once(
    make_relay: Callable[..., Relay], s3: S3Server
) -> None:
    relay = make_relay(lease_seconds=3)
    versioned(s3, relay.bucket)
    count = 30
    for n in range(count):
        assert relay.sap.create(f"DOC{n:03}", "data", body(n, 2 * 1024 * 1024), "application/pdf").status == 201
    worker = relay.start("worker", "worker", "--queues", "s3,folder", "--concurrency", "2")
    wait_until(lambda: any(r[2] == "delivered" for r in deliveries(relay)), what="the first delivery")
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait()
    done_at_kill = sum(r[2] == "delivered" for r in deliveries(relay))
    assert done_at_kill < 2 * count, "the worker finished everything before it could be killed"
    # Only what the killed worker held may go out twice: its upload may have landed before it died,
    # and nobody can know, so the recovered delivery sends it again. Everything else goes out once.
    in_flight = {(r[0], r[1]) for r in deliveries(relay) if r[2] == "delivering"}
    redis_client = relay_redis(relay)
    redis_client.flushdb()  # every wake-up message and every unacked reservation is gone
    assert redis_client.dbsize() == 0

    relay.start("worker2", "worker", "--queues", "s3,folder", "--concurrency", "2")
    relay.start("sweeper", "sweeper")
    wait_until(all_delivered(relay, count), timeout=120, what="every document delivered after the crash")

    objects = s3_objects(s3, relay.bucket)
    assert len(objects) == count
    for n in range(count):
        key = next(k for k in objects if k.endswith(f"DOC{n:03}.pdf"))
        assert objects[key] == body(n, 2 * 1024 * 1024)
        assert (relay.out / "Z1" / f"DOC{n:03}_data.pdf").read_bytes() == body(n, 2 * 1024 * 1024)
    assert len(list((relay.out / "Z1").iterdir())) == count  # no stray temporary files
    assert all(r[2] == "delivered" for r in deliveries(relay))
    expected_attempts = {(r[0], r[1]): 2 if (r[0], r[1]) in in_flight else 1 for r in deliveries(relay)}
    assert {(r[0], r[1]): r[3] for r in deliveries(relay)} == expected_attempts
    uploads = uploads_per_key(s3, relay.bucket)
    assert sorted(uploads) == sorted(objects)
    for key, n in uploads.items():
        doc_id = key.rsplit("/", 1)[1].removesuffix(".pdf")
        assert n in ({1, 2} if (doc_id, "dest_s3prod") in in_flight else {1}), (key, n, sorted(in_flight))


def relay_redis(relay: Relay) -> redis.Redis:
    return redis.Redis.from_url(relay.runtime.settings.broker_url)


def test_get_after_staging_was_purged_reads_back_from_a_destination(
    make_relay: Callable[..., Relay], s3: S3Server
) -> None:
    relay = make_relay()
    relay.runtime.settings = relay.runtime.settings.with_overrides(staging_retention_seconds=1)
    relay.env["FILERELAY_STAGING_RETENTION_SECONDS"] = "1"
    content = body(7, 100_000)
    assert relay.sap.create("DOC1", "data", content, "application/pdf").status == 201
    relay.start("worker", "worker", "--queues", "s3,folder")
    relay.start("sweeper", "sweeper")
    wait_until(all_delivered(relay, 1), what="delivered")

    def purged() -> bool:
        with session_scope(relay.runtime.sessions) as session:
            return session.scalar(select(Document.staging_key)) is None

    wait_until(purged, what="staging purged")
    assert not any(p.is_file() for p in (relay.runtime.settings.home / "staging" / "objects").rglob("*"))
    reply = relay.sap.get("DOC1", "data")
    assert reply.status == 200
    assert reply.body == content
    ranged = relay.sap.get("DOC1", "data", fromOffset="10", toOffset="19")
    assert ranged.body == content[10:20]
    # The folder copy gone too: the next delivered destination (S3) answers.
    (relay.out / "Z1" / "DOC1_data.pdf").unlink()
    assert relay.sap.get("DOC1", "data").body == content
