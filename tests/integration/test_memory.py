"""The API streams bodies, and the worker relays them: neither process's memory grows with the size of
the document."""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path

import psutil
import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from tests.support.policy import LOOPBACK
from tests.support.processes import (
    environment,
    filerelay,
    filerelay_command,
    free_port,
    gunicorn_workers,
    peak_rss_bytes,
    stream_put,
)
from tests.support.s3server import S3Server
from tests.support.sharepoint_emulator import sharepoint_emulator

pytestmark = pytest.mark.slow

MB = 1024 * 1024


def test_a_large_create_does_not_grow_the_api_process(tmp_path: Path, db_url: str, engine: Engine) -> None:
    """The same mechanism as bench/create_rss.py (500 MB), with a body small enough for CI."""
    size = 128 * MB
    port = free_port()
    env = environment(tmp_path / "home", db_url)
    with filerelay(["up", "--port", str(port)], env, port) as proc:
        (worker,) = gunicorn_workers(proc)
        path = "/archivelink/acme/production?create&pVersion=0047&contRep=Z1&docId=BIG1&compId=data"
        # Warm the worker up with a small create so imports and pools are in place before measuring.
        warm = stream_put(port, path.replace("BIG1", "WARM"), MB)
        assert warm.recv(4096).startswith(b"HTTP/1.1 201")
        warm.close()
        before = peak_rss_bytes(worker.pid)
        sock = stream_put(port, path, size)
        reply = sock.recv(4096)
        sock.close()
        assert reply.startswith(b"HTTP/1.1 201"), reply[:200]
        after = peak_rss_bytes(worker.pid)
    staged = list((tmp_path / "home" / "staging" / "objects").rglob("doc_*"))
    assert sorted(p.stat().st_size for p in staged) == [MB, size]
    # A buffering server would grow by the body size (128 MB); streaming keeps growth to a few chunks.
    assert after - before < 32 * MB, f"peak RSS grew by {(after - before) / MB:.1f} MB"
    assert after < 150 * MB, f"peak RSS {after / MB:.1f} MB"


CREATE = "/archivelink/acme/production?create&pVersion=0047&contRep=Z1&docId={}&compId=data"
STATUSES = text("SELECT d.status FROM deliveries d JOIN documents c ON c.id = d.document_id WHERE c.doc_id = :doc")


def test_one_worker_relaying_to_s3_and_sharepoint_at_once_stays_small(
    tmp_path: Path, db_url: str, engine: Engine, s3: S3Server
) -> None:
    """bench/deliver_rss.py --together (2 GiB) with a body small enough for CI: one worker process uploads
    the same document to S3 (multipart) and SharePoint (an upload session) at the same time."""
    size = 160 * MB
    bucket = f"mem-{secrets.token_hex(4)}"
    s3.client().create_bucket(Bucket=bucket)
    port = free_port()
    with sharepoint_emulator() as sp:
        env = environment(tmp_path / "home", db_url, **LOOPBACK.environ())
        (tmp_path / "home" / "filerelay.yaml").write_text(
            "workspaces:\n"
            "  - owner: acme\n"
            "    slug: production\n"
            "    destinations:\n"
            f'      - {{id: dest_s3, name: S3, kind: s3, bucket: {bucket}, endpoint_url: "{s3.endpoint}", '
            f'access_key_id: {s3.access_key}, secret_access_key: "{s3.secret_key}", path: "/{{doc_id}}{{ext}}"}}\n'
            f'      - {{id: dest_sp, name: SharePoint, kind: sharepoint, site_url: "{sp.site_url}", '
            f'access_token: "{sp.token}", path: "/{{doc_id}}{{ext}}"}}\n'
            "    repositories:\n"
            "      - {id: Z1, description: Invoices, signature: none, destinations: [dest_s3, dest_sp]}\n"
        )
        with filerelay(["up", "--port", str(port)], env, port) as proc:
            worker = _worker(proc)
            # A small document first: imports, clients and pools are in place before measuring.
            _create(port, "WARM", MB)
            _wait_delivered(engine, "WARM", timeout=90)
            before = peak_rss_bytes(worker.pid)
            _create(port, "BIG", size)
            _wait_delivered(engine, "BIG", timeout=120)
            after = peak_rss_bytes(worker.pid)
        landed = sp.files.get("/sites/team/Shared Documents/BIG.pdf")
        assert landed is not None
        assert len(landed) == size
    assert s3.client().head_object(Bucket=bucket, Key="BIG.pdf")["ContentLength"] == size
    # Each upload holds one part or chunk (8 MiB) while it is sent: two uploads at once, 16 MiB. A part
    # read anew each time (and the one before still held while it is read) grows it by twice as much.
    assert after - before < 24 * MB, f"peak RSS grew by {(after - before) / MB:.1f} MB"
    assert after < 150 * MB, f"peak RSS {after / MB:.1f} MB"


def _worker(proc: subprocess.Popen[bytes]) -> psutil.Process:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = [p for p in psutil.Process(proc.pid).children() if filerelay_command(p) == "worker"]
        if found:
            return found[0]
        time.sleep(0.1)
    raise RuntimeError("no worker process found")


def _create(port: int, doc_id: str, size: int) -> None:
    sock = stream_put(port, CREATE.format(doc_id), size)
    try:
        reply = sock.recv(4096)
    finally:
        sock.close()
    assert reply.startswith(b"HTTP/1.1 201"), reply[:200]


def _wait_delivered(engine: Engine, doc_id: str, *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            statuses = conn.execute(STATUSES, {"doc": doc_id}).scalars().all()
        if statuses and all(status == "delivered" for status in statuses):
            return
        assert not {"retrying", "failed"} & set(statuses), f"{doc_id}: {statuses}"
        time.sleep(0.2)
    raise AssertionError(f"{doc_id} not delivered within {timeout} s")
