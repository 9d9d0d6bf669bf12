"""A worker told to stop (SIGTERM, as Kubernetes does) finishes the delivery it holds, then exits."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

import pytest
from sqlalchemy import select

from filerelay.db.models import Delivery, Destination
from filerelay.db.session import session_scope
from tests.support.relay import Relay, wait_until
from tests.support.s3server import S3Server

pytestmark = pytest.mark.slow


def s3_delivery(relay: Relay) -> tuple[str, int]:
    with session_scope(relay.runtime.sessions) as session:
        status, attempts = session.execute(
            select(Delivery.status, Delivery.attempts).join(Destination).where(Destination.public_id == "dest_s3prod")
        ).one()
        return str(status), int(attempts)


def stored(s3: S3Server, relay: Relay) -> bytes:
    (key,) = [o["Key"] for o in s3.client().list_objects_v2(Bucket=relay.bucket)["Contents"]]
    return bytes(s3.client().get_object(Bucket=relay.bucket, Key=key)["Body"].read())


# Long enough to still be uploading when the signal comes.
SIZE = 120 * 1024 * 1024


def start_slow_delivery(relay: Relay, content: bytes) -> int:
    assert relay.sap.create("SLOW1", "data", content, "application/pdf").status == 201
    worker = relay.start("worker", "worker", "--queues", "s3", "--concurrency", "1")
    wait_until(lambda: s3_delivery(relay)[0] == "delivering", timeout=60, what="the upload to start")
    return worker.pid


@pytest.mark.parametrize(
    "send",
    [
        # What Kubernetes does: SIGTERM to PID 1 only.
        pytest.param(os.kill, id="to-the-main-process"),
        # A signal to the whole process group (Ctrl-C, some supervisors): the pool process does not die
        # mid-upload; the main process's warm shutdown lets it finish.
        pytest.param(os.killpg, id="to-every-process"),
    ],
)
def test_sigterm_finishes_the_delivery_then_exits(
    make_relay: Callable[..., Relay], s3: S3Server, send: Callable[[int, int], None]
) -> None:
    relay = make_relay()
    content = os.urandom(SIZE)
    pid = start_slow_delivery(relay, content)
    send(pid, signal.SIGTERM)
    assert relay.processes["worker"].wait(timeout=120) == 0
    assert s3_delivery(relay) == ("delivered", 1)
    assert stored(s3, relay) == content
