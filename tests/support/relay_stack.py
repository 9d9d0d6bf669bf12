"""FileRelay on PostgreSQL + Redis with one `s3` destination, for the relay benchmarks (bench.relay,
bench.scaleout): documents go in through the real ArchiveLink `create`, workers are started on demand, and
progress is read from the database (the source of truth), never from the queue.
"""

from __future__ import annotations

import datetime as dt
import http.client
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psutil
import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from filerelay.queue import WAKE_KEY
from tests.support.bench_processes import clean_environ, filerelay_command, run_command, started
from tests.support.databases import scratch_database
from tests.support.processes import free_port, peak_rss_bytes
from tests.support.s3server import S3Server

SCRIPT_PATH = "/archivelink/acme/production"
CONFIG = """
workspaces:
  - owner: acme
    slug: production
    destinations:
      - id: dest_s3
        name: S3
        kind: s3
        bucket: BUCKET
        endpoint_url: ENDPOINT
        region: us-east-1
        access_key_id: ACCESS_KEY
        secret_access_key: "${BENCH_S3_SECRET}"
        path: "/{doc_id}{ext}"
    repositories:
      - {id: Z1, description: Invoices, signature: none, destinations: [dest_s3]}
"""
# The wake-ups FileRelay's producer leaves in Redis (a worker may not take them all), and their mark: a mark
# left without its message would keep the next run's creates from sending one (no sweeper runs here).
QUEUE_KEYS = (
    WAKE_KEY + "s3",
    "deliver.s3",
    "_kombu.binding.deliver.s3",
    "_kombu.binding_permanent.deliver.s3",
    "unacked",
    "unacked_index",
    "unacked_mutex",
)
PROGRESS = text(
    "SELECT d.status, count(*) FROM deliveries d JOIN documents doc ON doc.id = d.document_id "
    "WHERE doc.doc_id LIKE :prefix GROUP BY d.status"
)
WINDOW = text(
    "SELECT min(a.started_at), max(d.delivered_at), count(DISTINCT d.id) FROM deliveries d "
    "JOIN documents doc ON doc.id = d.document_id JOIN delivery_attempts a ON a.delivery_id = d.id "
    "WHERE doc.doc_id LIKE :prefix"
)
STAGED = text("SELECT doc_id, staging_key, sha256, size_bytes FROM documents WHERE doc_id LIKE :prefix ORDER BY doc_id")
DELIVERED_AT = text(
    "SELECT d.delivered_at FROM deliveries d JOIN documents doc ON doc.id = d.document_id "
    "WHERE doc.doc_id = :doc_id AND d.status = 'delivered'"
)
LAST_ERROR = text(
    "SELECT d.last_error FROM deliveries d JOIN documents doc ON doc.id = d.document_id "
    "WHERE doc.doc_id LIKE :prefix AND d.last_error IS NOT NULL LIMIT 1"
)


class DeliveryFailed(RuntimeError):
    """A delivery went to retrying or failed: a benchmark of a failing relay measures nothing."""


@dataclass(frozen=True)
class Staged:
    doc_id: str
    path: Path
    sha256: str
    size: int


@dataclass(frozen=True)
class Drain:
    """How a worker drained `count` deliveries: from its start (process launch) and from its first attempt."""

    count: int
    since_launch_s: float
    since_first_attempt_s: float

    @property
    def docs_per_second(self) -> float:
        return self.count / self.since_first_attempt_s if self.since_first_attempt_s > 0 else float("nan")


class Window(Protocol):
    """Measures a drain once the worker is delivering (its start-up left out): what it spent per document."""

    def begin(self, worker_pid: int) -> None: ...

    def end(self, documents: int) -> None: ...


class RelayStack:
    def __init__(self, work: Path, env: dict[str, str], engine: Engine, api_port: int, redis_url: str) -> None:
        self.work = work
        self.env = env
        self.engine = engine
        self.api_port = api_port
        self.redis_url = redis_url
        self.home = Path(env["FILERELAY_HOME"])

    # ---- documents in, through ArchiveLink `create`

    def create(self, doc_ids: Sequence[str], body: bytes, threads: int = 8) -> dict[str, float]:
        """PUT each document; return doc_id -> wall-clock time (time.time) its 201 arrived."""
        local = threading.local()

        def one(doc_id: str) -> tuple[str, float]:
            conn: http.client.HTTPConnection | None = getattr(local, "conn", None)
            if conn is None:
                conn = local.conn = http.client.HTTPConnection("127.0.0.1", self.api_port, timeout=120)
            path = f"{SCRIPT_PATH}?create&pVersion=0047&contRep=Z1&docId={doc_id}&compId=data"
            conn.request("PUT", path, body=body, headers={"Content-Type": "application/pdf"})
            reply = conn.getresponse()
            reply.read()
            at = time.time()
            if reply.status != 201:
                raise RuntimeError(f"create {doc_id} answered {reply.status} {reply.getheader('X-ErrorDescription')}")
            return doc_id, at

        with ThreadPoolExecutor(max_workers=threads) as pool:
            return dict(pool.map(one, doc_ids))

    # ---- workers

    @contextmanager
    def worker(self, concurrency: int, name: str, processes: int = 1) -> Iterator[subprocess.Popen[bytes]]:
        """`filerelay worker --queues s3 --processes P --concurrency C`, the production command (C deliveries in
        flight in each of P processes), stopped on the way out."""
        args = filerelay_command(
            "worker", "--queues", "s3", "--processes", str(processes), "--concurrency", str(concurrency)
        )
        with started(args, self.env, self.work / f"worker-{name}.log") as proc, profiled(proc.pid, name):
            yield proc

    # ---- progress, from the database

    def progress(self, prefix: str) -> dict[str, int]:
        with self.engine.connect() as conn:
            return {str(status): int(n) for status, n in conn.execute(PROGRESS, {"prefix": f"{prefix}%"})}

    def wait_delivered(self, prefix: str, count: int, timeout: float, proc: subprocess.Popen[bytes]) -> float:
        """Poll until `count` deliveries of documents named `prefix…` are delivered; return the monotonic time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = self.progress(prefix)
            if seen.get("delivered", 0) >= count:
                return time.monotonic()
            if seen.get("retrying") or seen.get("failed"):
                with self.engine.connect() as conn:
                    error = conn.execute(LAST_ERROR, {"prefix": f"{prefix}%"}).scalar()
                raise DeliveryFailed(f"deliveries not delivering: {seen}; e.g. {error}")
            if proc.poll() is not None:
                raise RuntimeError(f"the worker exited with {proc.returncode}; see {self.work}/worker-*.log")
            time.sleep(0.1)
        raise TimeoutError(f"not all {count} deliveries done within {timeout} s: {self.progress(prefix)}")

    def drain(
        self,
        prefix: str,
        count: int,
        concurrency: int,
        timeout: float,
        window: Window | None = None,
        processes: int = 1,
    ) -> tuple[Drain, dict[str, float]]:
        """Start a worker on `count` waiting deliveries, time it until all are delivered; also return the
        peak RSS (MiB) of each of its processes ("main", "pool 1", …), read before it stops. A `window`
        runs from the first delivered document to the last."""
        with self.worker(concurrency, f"{prefix}-c{concurrency}", processes) as proc:
            launched = time.monotonic()
            if window is not None:
                self.wait_delivered(prefix, 1, timeout, proc)
                window.begin(proc.pid)
                first = self.progress(prefix).get("delivered", 0)
            done = self.wait_delivered(prefix, count, timeout, proc)
            if window is not None:
                window.end(count - first)
            rss = worker_rss(proc)
        with self.engine.connect() as conn:
            first, last, n = conn.execute(WINDOW, {"prefix": f"{prefix}%"}).one()
        assert isinstance(first, dt.datetime)
        assert isinstance(last, dt.datetime)
        return Drain(int(n), done - launched, (last - first).total_seconds()), rss

    def staged(self, prefix: str) -> list[Staged]:
        """The staged bytes of the documents named `prefix…`, where FileRelay keeps them (local staging)."""
        objects = self.home / "staging" / "objects"
        with self.engine.connect() as conn:
            rows = conn.execute(STAGED, {"prefix": f"{prefix}%"}).all()
        return [Staged(doc_id, objects / key[-2:] / key, sha, size) for doc_id, key, sha, size in rows]

    def delivered_at(self, doc_id: str) -> dt.datetime | None:
        with self.engine.connect() as conn:
            value = conn.execute(DELIVERED_AT, {"doc_id": doc_id}).scalar()
        assert value is None or isinstance(value, dt.datetime)
        return value


@contextmanager
def profiled(pid: int, name: str) -> Iterator[None]:
    """With BENCH_PROFILE=DIR, py-spy samples the process while the block runs and writes its collapsed
    stacks (one line per stack, then the sample count) to DIR/NAME.txt: where the time goes, greppable."""
    folder = os.environ.get("BENCH_PROFILE")
    if not folder:
        yield
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    out = Path(folder) / f"{name}.txt"
    spy = subprocess.Popen(
        [
            shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--pid",
            str(pid),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(out),
            # BENCH_PROFILE_GIL=1: only the thread holding the GIL, i.e. where the CPU goes, not the waits.
            *(["--gil"] if os.environ.get("BENCH_PROFILE_GIL") else []),
            *(["--idle"] if os.environ.get("BENCH_PROFILE_IDLE") else []),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        spy.wait(timeout=60)


def worker_rss(proc: subprocess.Popen[bytes]) -> dict[str, float]:
    """Peak RSS (VmHWM, MiB) of the worker's main process and each pool process."""
    main = psutil.Process(proc.pid)
    found = {"main": peak_rss_bytes(main.pid) / 2**20}
    for n, child in enumerate(sorted(main.children(recursive=True), key=lambda p: p.pid), start=1):
        try:
            found[f"pool {n}"] = peak_rss_bytes(child.pid) / 2**20
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a small sample."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1] if q < 100 else ordered[-1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _clean_redis(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(*QUEUE_KEYS)
    finally:
        client.close()


@contextmanager
def relay_stack(
    work: Path, s3: S3Server, endpoint: str, bucket: str, database_url: str, redis_url: str
) -> Iterator[RelayStack]:
    """Migrate a scratch database, apply a config with one `s3` destination (at `endpoint`, which may be a
    proxy in front of `s3`) wired to Z1, and run `filerelay api` (2 x 8, as in production). No worker yet."""
    home = work / "home"
    home.mkdir(parents=True)
    s3.client().create_bucket(Bucket=bucket)
    config = home / "filerelay.yaml"
    config.write_text(
        CONFIG.replace("BUCKET", bucket).replace("ENDPOINT", endpoint).replace("ACCESS_KEY", s3.access_key)
    )
    port = free_port()
    log = work / "api.log"
    with ExitStack() as stack:
        url = stack.enter_context(scratch_database(database_url, prefix="bench_relay"))
        stack.callback(_clean_redis, redis_url)
        env = clean_environ(
            FILERELAY_HOME=str(home),
            FILERELAY_DATABASE_URL=url,
            FILERELAY_BROKER_URL=redis_url,
            BENCH_S3_SECRET=s3.secret_key,
            # The S3 server (or the delay proxy in front of it) listens on loopback, which the egress
            # defaults refuse: allowed as the tests allow it (tests/support/policy.py).
            FILERELAY_EGRESS_ALLOW="127.0.0.0/8,::1",
        )
        run_command(filerelay_command("migrate"), env, log)
        run_command(filerelay_command("config", "apply", str(config)), env, log)
        args = filerelay_command("api", "--host", "127.0.0.1", "--port", str(port), "--workers", "2", "--threads", "8")
        stack.enter_context(started(args, env, log, ready_url=f"http://127.0.0.1:{port}"))
        engine = create_engine(url, pool_size=2)
        stack.callback(engine.dispose)
        yield RelayStack(work, env, engine, port, redis_url)
