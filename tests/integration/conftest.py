"""Fixtures for end-to-end tests: a real Redis broker, a real S3 server, real worker processes."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from werkzeug.serving import BaseWSGIServer, make_server

from filerelay.api import create_app
from filerelay.config_file import apply, load
from filerelay.db.session import session_scope
from filerelay.runtime import Runtime, build_runtime
from filerelay.settings import Settings
from tests.support.databases import TEST_ENCRYPTION_KEY
from tests.support.policy import LOOPBACK
from tests.support.redis_db import claim_url
from tests.support.s3server import S3Server
from tests.support.sapclient import SapClient

# This run's own database: a second run on the machine must not flush our queues (or we its).
REDIS_URL = claim_url()


@pytest.fixture
def redis_db() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()  # this test's own database, never the whole server
    yield client
    client.flushdb()
    client.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@dataclass
class Relay:
    """A running installation: API (in-process HTTP), worker and sweeper processes, one S3 bucket."""

    runtime: Runtime
    sap: SapClient
    bucket: str
    out: Path
    env: dict[str, str]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([sys.executable, "-m", "filerelay.cli", *args], env=self.env, start_new_session=True)
        self.processes[name] = proc
        return proc

    def stop_all(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def relay_config(s3: S3Server, bucket: str, out: Path, *, secret: str, max_retries: int = 2) -> str:
    return textwrap.dedent(
        f"""
        workspaces:
          - owner: acme
            slug: production
            retry: {{max_retries: {max_retries}, ttl: 1h, backoff_base: 1s, backoff_max: 2s}}
            destinations:
              - {{id: dest_folder, name: Local Folder, kind: folder, root: "{out}",
                 path: "/{{repo_id}}/{{doc_id}}_{{comp_id}}{{ext}}"}}
              - {{id: dest_s3prod, name: S3 Production Archive, kind: s3, bucket: {bucket},
                 endpoint_url: "{s3.endpoint}", access_key_id: {s3.access_key}, secret_access_key: "{secret}",
                 path: "/{{received:%Y/%m/%d}}/{{doc_id}}{{ext}}"}}
            repositories:
              - {{id: Z1, description: Invoices, signature: none, destinations: [dest_folder, dest_s3prod]}}
        """
    )


@pytest.fixture
def make_relay(
    s3: S3Server, redis_db: redis.Redis, db_url: str, engine: object, tmp_path: Path
) -> Iterator[Callable[..., Relay]]:
    made: list[tuple[Relay, BaseWSGIServer, threading.Thread]] = []

    def factory(
        *,
        secret: str | None = None,
        max_retries: int = 2,
        lease_seconds: int = 900,
        config_for: Callable[[str, Path], str] | None = None,
    ) -> Relay:
        """`config_for(bucket, out)` replaces the default folder + S3 configuration."""
        bucket = f"relay-{secrets.token_hex(4)}"
        s3.client().create_bucket(Bucket=bucket)
        out = tmp_path / "out"
        settings = Settings.from_env(
            {
                "FILERELAY_HOME": str(tmp_path / "home"),
                "FILERELAY_DATABASE_URL": db_url,
                "FILERELAY_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
                "FILERELAY_BROKER_URL": REDIS_URL,
                "FILERELAY_LEASE_SECONDS": str(lease_seconds),
                "FILERELAY_SWEEP_INTERVAL_SECONDS": "1",
            }
        ).with_overrides(operator_policy=LOOPBACK)
        runtime = build_runtime(settings)
        with session_scope(runtime.sessions) as session:
            if config_for is not None:
                config = config_for(bucket, out)
            else:
                config = relay_config(s3, bucket, out, secret=secret or s3.secret_key, max_retries=max_retries)
            apply(session, load(config, {}), now=runtime.clock.now(), policy=LOOPBACK)
        server = make_server("127.0.0.1", 0, create_app(runtime=runtime), threaded=True)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        sap = SapClient(f"http://127.0.0.1:{server.server_port}/archivelink/acme/production")
        relay = Relay(runtime, sap, bucket, out, env={**os.environ, **settings.environ()})
        made.append((relay, server, thread))
        return relay

    yield factory
    for relay, server, thread in made:
        relay.stop_all()
        server.shutdown()
        thread.join()
        relay.runtime.close()
