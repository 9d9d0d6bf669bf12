"""Two API processes and two workers, each with its own home and its own S3 staging client, share one
staging bucket, one database and one Redis: what pods on different hosts do. Every document lands."""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from filerelay.clock import SystemClock
from filerelay.config_file import apply, load
from filerelay.db.models import Document
from filerelay.db.session import make_engine, make_session_factory, session_scope
from filerelay.secrets_box import Keyring
from tests.support.databases import TEST_ENCRYPTION_KEY
from tests.support.policy import LOOPBACK
from tests.support.processes import free_port, wait_ready
from tests.support.relay import REDIS_URL, relay_config, wait_until
from tests.support.s3server import S3Server
from tests.support.sapclient import SapClient

pytestmark = pytest.mark.slow


@pytest.fixture
def cleanup() -> Iterator[ExitStack]:
    """Closes what the test opened, even when it fails."""
    with ExitStack() as stack:
        yield stack


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        proc.terminate()
    for proc in started:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_two_apis_and_two_workers_share_s3_staging(
    s3: S3Server,
    db_url: str,
    engine: object,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
    cleanup: ExitStack,
) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    cleanup.callback(client.close)
    client.flushdb()
    staging_bucket, archive_bucket = f"staging-{secrets.token_hex(4)}", f"archive-{secrets.token_hex(4)}"
    for bucket in (staging_bucket, archive_bucket):
        s3.client().create_bucket(Bucket=bucket)
    out = tmp_path / "out"
    engine_ = make_engine(db_url, keyring=Keyring.from_texts([TEST_ENCRYPTION_KEY]))
    cleanup.callback(engine_.dispose)  # a pooled connection left open warns when collected
    session_factory = make_session_factory(engine_)
    with session_scope(session_factory) as session:
        apply(
            session,
            load(relay_config(s3, archive_bucket, out, secret=s3.secret_key), {}),
            now=SystemClock().now(),
            policy=LOOPBACK,
        )

    def env(name: str) -> dict[str, str]:
        return {
            **os.environ,
            "FILERELAY_HOME": str(tmp_path / name),  # nothing shared on disk between "hosts"
            "FILERELAY_DATABASE_URL": db_url,
            # Hosts that share nothing share the key, as they share the database.
            "FILERELAY_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
            "FILERELAY_BROKER_URL": REDIS_URL,
            "FILERELAY_STAGING_URL": f"s3://{staging_bucket}/filerelay",
            "FILERELAY_STAGING_S3_ENDPOINT_URL": s3.endpoint,
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "FILERELAY_SWEEP_INTERVAL_SECONDS": "1",
            # The folder destination writes to `out`, beside the homes, and the workers deliver to the archive
            # bucket on loopback: the tests' policy allows both (the staging bucket, the installation's own,
            # is not a destination: the egress guard does not apply to it).
            **LOOPBACK.environ(),
        }

    def start(name: str, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-m", "filerelay.cli", *args], env=env(name))
        processes.append(proc)
        return proc

    ports = [free_port(), free_port()]
    apis = [
        start(f"api{n}", "api", "--host", "127.0.0.1", "--port", str(p), "--workers", "1") for n, p in enumerate(ports)
    ]
    for n in (1, 2):
        start(f"worker{n}", "worker", "--queues", "s3,folder", "--concurrency", "1")
    start("sweeper", "sweeper")
    for api, port in zip(apis, ports, strict=True):
        wait_ready(f"http://127.0.0.1:{port}", api)
    saps = [SapClient(f"http://127.0.0.1:{p}/archivelink/acme/production") for p in ports]

    count = 16
    bodies = {f"SHARED{n:03}": hashlib.sha256(str(n).encode()).digest() * (4000 + n) for n in range(count)}
    for n, (doc_id, content) in enumerate(bodies.items()):
        assert saps[n % 2].create(doc_id, "data", content, "application/pdf").status == 201
    # The other API reads what its twin accepted: the bytes are in the shared bucket, not on a disk.
    assert saps[1].get("SHARED000").body == bodies["SHARED000"]

    def delivered() -> bool:
        with session_scope(session_factory) as session:
            return set(session.scalars(select(Document.status))) == {"delivered"}

    wait_until(delivered, timeout=120, what="every document delivered")
    archive = s3.client().list_objects_v2(Bucket=archive_bucket).get("Contents", [])
    assert len(archive) == count
    for doc_id, content in bodies.items():
        assert (out / "Z1" / f"{doc_id}_data.pdf").read_bytes() == content
    staged = s3.client().list_objects_v2(Bucket=staging_bucket).get("Contents", [])
    assert len(staged) == count  # staged in S3, nowhere else
    assert not any((tmp_path / f"api{n}" / "staging" / "objects").exists() for n in (0, 1))
