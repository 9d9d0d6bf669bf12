"""Wake-ups on Redis: however long the backlog and however often the sweeper runs, at most one wake-up per
kind waits in the broker; one a worker took and lost is sent again once the grace has passed."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator

import pytest
import redis

from filerelay.clock import FrozenClock
from filerelay.delivery import sweep
from filerelay.queue import WAKE_KEY, queue_name
from filerelay.runtime import Runtime, build_runtime
from tests.support.delay_proxy import delaying_proxy
from tests.support.documents import accept
from tests.support.relay import REDIS_URL, Relay, relay_config, wait_until
from tests.support.s3server import S3Server


@pytest.fixture
def on_redis(configured: Runtime, clock: FrozenClock, redis_db: redis.Redis) -> Iterator[Runtime]:
    runtime = build_runtime(configured.settings.with_overrides(broker_url=REDIS_URL), clock=clock)
    try:
        yield runtime
    finally:
        runtime.close()


def waiting(client: redis.Redis) -> dict[str, int]:
    return {kind: int(client.llen(queue_name(kind))) for kind in ("folder", "s3")}


def test_a_backlog_and_a_sweeper_every_pass_leave_one_wake_up_per_kind(
    on_redis: Runtime, redis_db: redis.Redis
) -> None:
    for n in range(300):  # each wired to the folder and to s3: 600 due deliveries
        outcome, _ = accept(on_redis, f"DOC{n}", b"%PDF-1.4 backlog")
        on_redis.enqueuer.enqueue(outcome.enqueue)  # as the API does after each commit
    assert waiting(redis_db) == {"folder": 1, "s3": 1}

    for _ in range(60):
        sweep.sweep(on_redis)
    # Marks older than the grace while their wake-up still waits in the queue: not lost, nothing more sent.
    for kind in ("folder", "s3"):
        redis_db.set(WAKE_KEY + kind, repr(time.time() - 3600))
    sweep.sweep(on_redis)

    assert waiting(redis_db) == {"folder": 1, "s3": 1}


def test_a_wake_up_taken_and_lost_is_sent_again_after_the_grace(on_redis: Runtime, redis_db: redis.Redis) -> None:
    outcome, _ = accept(on_redis, "DOC", b"%PDF-1.4 lost")
    on_redis.enqueuer.enqueue(outcome.enqueue)
    # A worker took the folder's wake-up off the queue and died before clearing its mark.
    assert redis_db.rpop(queue_name("folder")) is not None
    sweep.sweep(on_redis)
    assert waiting(redis_db) == {"folder": 0, "s3": 1}  # within the grace: maybe still on its way

    redis_db.set(WAKE_KEY + "folder", repr(time.time() - on_redis.settings.wake_grace_seconds - 1))
    assert sweep.sweep(on_redis).enqueued == 1

    assert waiting(redis_db) == {"folder": 1, "s3": 1}


@pytest.mark.slow
def test_a_process_whose_drain_slot_is_busy_leaves_the_next_wake_up_to_an_idle_one(
    make_relay: Callable[..., Relay], s3: S3Server, redis_db: redis.Redis
) -> None:
    """A drain is acknowledged as it starts; with prefetch the busy process then took the next wake-up (its
    own call for help) and held it until its drain ended, while the kind's other processes idled."""
    with delaying_proxy(s3.endpoint, UPLOAD_SECONDS) as proxy:
        far = dataclasses.replace(s3, endpoint=proxy.url)
        relay = make_relay(config_for=lambda bucket, out: relay_config(far, bucket, out, secret=s3.secret_key))
        assert relay.sap.create("SLOW1", "data", b"%PDF-1.4 slow", "application/pdf").status == 201
        relay.start("busy", "worker", "--queues", "s3", "--processes", "1", "--concurrency", "1")
        wait_until(lambda: proxy.arrived > 0, timeout=60, what="the upload to start")

        assert relay.runtime.enqueuer.wake(["s3"]) == 1  # the drain cleared the mark when it took its wake-up
        time.sleep(1)  # time for the busy process to take it, as it did
        assert waiting(redis_db)["s3"] == 1

        relay.start("idle", "worker", "--queues", "s3", "--processes", "1", "--concurrency", "1")
        wait_until(lambda: waiting(redis_db)["s3"] == 0, timeout=60, what="the idle process to take the wake-up")
        assert proxy.forwarded == 0  # taken while the busy process's upload was still held
        relay.stop_all()  # the busy process finishes its upload first, through the proxy


# The proxy holds the upload this long: the busy process's drain outlasts the test's steps.
UPLOAD_SECONDS = 20.0
