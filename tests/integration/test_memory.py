"""The API streams bodies: its memory does not grow with the size of the document."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from tests.support.processes import (
    environment,
    filerelay,
    free_port,
    gunicorn_workers,
    peak_rss_bytes,
    stream_put,
)

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
