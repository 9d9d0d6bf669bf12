"""A live installation upgraded without downtime (docs/operations.md#upgrades): the processes of one release
keep accepting creates (201) and delivering while the next release's migration runs, the next release's
processes start beside them and take over, and no API in service answers 5xx or turns unready.

This code plays the previous release; the next release is this code with one expand migration more
(tests/support/next_release.py: a column on deliveries, an index on documents built CONCURRENTLY), run
from a copy of `filerelay.db` put first on its processes' PYTHONPATH, so its head is that migration."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import redis
from sqlalchemy import text

from filerelay.db.migrate import current_revision, head_revision, upgrade
from filerelay.db.session import make_engine
from filerelay.settings import Settings
from tests.support.databases import TEST_ENCRYPTION_KEY, own_database
from tests.support.next_release import NEXT, next_release_path
from tests.support.processes import environment, free_port, wait_ready
from tests.support.relay import REDIS_URL, wait_until
from tests.support.sapclient import SapClient

pytestmark = pytest.mark.slow

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 20 + b"\n%%EOF\n"


@pytest.fixture
def database(tmp_path: Path) -> Iterator[str]:
    """A database of this test's own: its schema moves past this code's head."""
    with own_database(tmp_path / "relay.db", prefix="upgrade") as url:
        yield url


class Release:
    """The processes of one release: API, worker, sweeper, started with one environment."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.port = free_port()
        self.processes: list[subprocess.Popen[bytes]] = []

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "filerelay.cli", *args], env=self.env, capture_output=True, text=True, timeout=120
        )

    def start(self) -> None:
        for args in (
            ["api", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            ["worker", "--queues", "folder", "--concurrency", "2"],
            ["sweeper"],
        ):
            self.processes.append(
                subprocess.Popen([sys.executable, "-m", "filerelay.cli", *args], env=self.env, start_new_session=True)
            )
        wait_ready(f"http://127.0.0.1:{self.port}", self.processes[0])

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Traffic:
    """SAP's creates to whichever API is in service, and a load balancer's readiness probes of every API
    in service, both recording every answer."""

    def __init__(self, port: int) -> None:
        self.serving: list[int] = [port]  # creates go to the last
        self.created: Counter[int] = Counter()  # creates answered 201, by port
        self.answers: Counter[int] = Counter()
        self.readiness: Counter[str] = Counter()
        self.doc_ids: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._create), threading.Thread(target=self._probe)]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()

    def _create(self) -> None:
        n = 0
        while not self._stop.is_set():
            port = self.serving[-1]
            doc_id = f"UPGRADE{n:05}"
            status = (
                SapClient(f"http://127.0.0.1:{port}/archivelink/acme/production")
                .create(doc_id, "data", PDF, "application/pdf")
                .status
            )
            self.answers[status] += 1
            if status == 201:
                self.created[port] += 1
                self.doc_ids.append(doc_id)
            n += 1
            time.sleep(0.02)

    def _probe(self) -> None:
        while not self._stop.is_set():
            for port in list(self.serving):
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as reply:
                        self.readiness[f"{reply.status}"] += 1
                except urllib.error.HTTPError as exc:
                    self.readiness[f"{exc.code} {exc.read().decode()}"] += 1
            time.sleep(0.1)

    def until_created(self, port: int, count: int) -> None:
        wait_until(lambda: self.created[port] >= count, what=f"{count} creates on :{port}")


def statuses(url: str) -> Counter[str]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return Counter(dict(conn.execute(text("SELECT status, count(*) FROM deliveries GROUP BY status")).all()))
    finally:
        engine.dispose()


def revision_of(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return current_revision(conn)
    finally:
        engine.dispose()


@contextmanager
def releases(previous: Release, following: Release) -> Iterator[None]:
    with ExitStack() as stack:
        stack.callback(following.stop)
        stack.callback(previous.stop)
        yield


def test_an_installation_upgrades_while_it_accepts_and_delivers(database: str, tmp_path: Path) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    extra = {"FILERELAY_BROKER_URL": REDIS_URL, "FILERELAY_SWEEP_INTERVAL_SECONDS": "1"}
    # One host's home: the staged bytes the API keeps are read by the workers of either release.
    env = environment(tmp_path / "home", database, **extra)
    upgrade(database, settings=Settings.from_env(env | {"FILERELAY_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY}))
    previous = Release(env)
    applied = previous.run("config", "apply", env["FILERELAY_CONFIG"])
    assert applied.returncode == 0, applied.stderr
    path = next_release_path(tmp_path / "next-release")
    following = Release(env | {"PYTHONPATH": os.pathsep.join(filter(None, [str(path), env.get("PYTHONPATH")]))})

    with releases(previous, following):
        previous.start()
        with Traffic(previous.port) as traffic:
            traffic.until_created(previous.port, 20)

            # The next release's migration, while the previous release serves.
            migrated = following.run("migrate")
            assert migrated.returncode == 0, migrated.stderr
            assert revision_of(database) == NEXT
            # The previous release knows it still runs against this schema.
            check = previous.run("migrate", "--check")
            assert (check.returncode, check.stdout) == (
                0,
                f"database schema is at {NEXT}, a newer release's, which this code ({head_revision()}) runs against\n",
            )
            # ... and keeps accepting and delivering: what it accepts from now on lands by its own worker.
            after_migration = traffic.created[previous.port]
            traffic.until_created(previous.port, after_migration + 20)
            wait_until(
                lambda: statuses(database)["delivered"] >= after_migration + 20,
                what="the previous release's worker delivering after the migration",
            )

            # The next release starts beside it (ready: the schema is at its head), takes the traffic, and the
            # previous release stops.
            following.start()
            traffic.serving.append(following.port)
            traffic.until_created(following.port, 1)
            traffic.serving.remove(previous.port)
            previous.stop()
            traffic.until_created(following.port, 20)

        created = len(traffic.doc_ids)
        wait_until(lambda: statuses(database)["delivered"] == created, what="every document delivered")

    assert traffic.answers == Counter({201: created}), traffic.answers
    assert set(traffic.readiness) == {"200"}, traffic.readiness
    assert statuses(database) == Counter({"delivered": created})
    out = tmp_path / "home" / "out"
    assert sum(1 for p in out.rglob("*") if p.is_file()) == created
    client.close()
