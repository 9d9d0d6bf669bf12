"""Fixtures for end-to-end tests: a real Redis broker, a real S3 server, real worker processes."""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from werkzeug.serving import BaseWSGIServer, make_server

from filerelay.api import create_app
from filerelay.runtime import build_runtime
from filerelay.settings import Settings
from tests.support.databases import TEST_ENCRYPTION_KEY
from tests.support.policy import LOOPBACK
from tests.support.relay import REDIS_URL, Relay, relay_config
from tests.support.s3server import S3Server
from tests.support.sapclient import SapClient
from tests.support.workspaces import configure


@pytest.fixture
def redis_db() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()  # this test's own database, never the whole server
    yield client
    client.flushdb()
    client.close()


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
        if config_for is not None:
            config = config_for(bucket, out)
        else:
            config = relay_config(s3, bucket, out, secret=secret or s3.secret_key, max_retries=max_retries)
        configure(runtime, config)
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
