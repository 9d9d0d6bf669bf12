"""A worker whose Redis is SIGKILLed twice in a row, with documents arriving around the kills, delivers
every document once Redis is back, without being restarted (issue: "After Redis restarts, the worker can
stop taking work for good").

What made it stop: Redis died while the worker held its full prefetch (a backlog of wake-ups), so its
BRPOP connection was idle and kombu dropped it without raising; the acks of the deliveries it then
finished failed (`Couldn't ack ..., reason: network:ConnectionError`) and each kept its prefetch slot.
With every slot lost the channel never polled Redis again and the worker sat idle for good. One worker
thread (a prefetch of 4) and a backlog make that state the usual one at the moment of each kill: before
the fix the worker stopped in 4 of 5 runs of this test, each time at its first kill (25 to 37 of 210
delivered, 4 acks lost); a kill that finds a BRPOP out is noticed by Celery and does no harm.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from filerelay.config_file import apply, load
from filerelay.db.models import Delivery
from filerelay.db.session import session_scope
from filerelay.runtime import Runtime, build_runtime
from filerelay.settings import Settings
from tests.support.app_server import serving
from tests.support.databases import TEST_ENCRYPTION_KEY
from tests.support.policy import LOOPBACK
from tests.support.private_servers import PrivateRedis, private_redis
from tests.support.processes import kill_group
from tests.support.relay import acme_config
from tests.support.sapclient import SapClient

pytestmark = pytest.mark.slow

BACKLOG = 150  # documents waiting before the worker starts: several seconds of work for one thread
DURING = 60  # more, one every 0.25 s, from the first kill on
DOWN_SECONDS = 3.0  # long enough for the deliveries the worker holds to finish, and their acks to fail


def config(out: Path) -> str:
    """Z1 wired to a folder, with retries enough to outlast every restart."""
    folder = {
        "id": "dest_folder",
        "name": "Folder",
        "kind": "folder",
        "root": str(out),
        "path": "/{repo_id}/{doc_id}{ext}",
    }
    return acme_config([folder], max_retries=50)


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "filerelay.cli", *args], env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        yield proc
    finally:
        if proc.poll() is None:
            kill_group(proc)


def delivered(runtime: Runtime) -> int:
    with session_scope(runtime.sessions) as session:
        return int(session.scalar(select(func.count()).where(Delivery.status == "delivered")) or 0)


def until(check: Callable[[], bool], timeout: float) -> bool:
    """Poll `check()` every 0.2 s for up to `timeout` s; whether it came true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return False


def kill_and_restart(redis_server: PrivateRedis) -> None:
    redis_server.kill()  # every queued and unacknowledged wake-up is gone with it
    time.sleep(DOWN_SECONDS)
    redis_server.start()


def test_a_worker_whose_redis_is_killed_twice_in_a_row_delivers_everything(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    with private_redis(tmp_path) as redis_server:
        settings = Settings.from_env(
            {
                "FILERELAY_HOME": str(tmp_path / "home"),
                "FILERELAY_DATABASE_URL": db_url,
                "FILERELAY_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,  # required with PostgreSQL
                "FILERELAY_BROKER_URL": redis_server.url,
                "FILERELAY_LEASE_SECONDS": "15",
                # The sweeper sends the wake-ups Redis lost soon after it is back.
                "FILERELAY_SWEEP_INTERVAL_SECONDS": "1",
                "FILERELAY_WAKE_GRACE_SECONDS": "2",
            }
        ).with_overrides(operator_policy=LOOPBACK)
        runtime = build_runtime(settings)
        try:
            with session_scope(runtime.sessions) as session:
                apply(session, load(config(tmp_path / "out"), {}), now=runtime.clock.now(), policy=LOOPBACK)
            env = {**os.environ, **settings.environ()}
            with serving(runtime) as sap:
                for n in range(BACKLOG):
                    assert sap.create(f"B{n:04d}", "data", b"%PDF-" + os.urandom(2048)).status == 201
                worker_log = tmp_path / "worker.log"
                # No watchdog: the worker must recover by itself, not by being started again.
                worker_args = ["worker", "--queues", "folder", "--concurrency", "1", "--stall-seconds", "0"]
                with (
                    process(worker_args, env, worker_log) as worker,
                    process(["sweeper"], env, tmp_path / "sweeper.log"),
                ):
                    assert until(lambda: delivered(runtime) >= 20, timeout=60), "the worker never started delivering"
                    more = threading.Thread(target=_create, args=(sap, DURING), daemon=True)
                    more.start()
                    kill_and_restart(redis_server)
                    # Back to work (the sweeper re-sent what Redis lost) and holding a full prefetch again.
                    before = delivered(runtime)
                    until(lambda: delivered(runtime) >= before + 10, timeout=30)
                    kill_and_restart(redis_server)
                    more.join(timeout=60)
                    total = BACKLOG + DURING
                    everything = until(lambda: delivered(runtime) == total, timeout=90)
                    lost_acks = worker_log.read_text(errors="replace").count("Couldn't ack")
                    assert everything, (
                        f"{delivered(runtime)} of {total} delivered 90 s after Redis came back; "
                        f"{lost_acks} lost acks in the worker's log"
                    )
                    assert worker.poll() is None  # recovered, not exited
        finally:
            runtime.close()


def _create(sap: SapClient, count: int) -> None:
    # SAP gets its 201 with Redis down too (the rows are the truth); the sweeper sends the wake-ups.
    for n in range(count):
        assert sap.create(f"D{n:04d}", "data", b"%PDF-" + os.urandom(2048)).status == 201
        time.sleep(0.25)
