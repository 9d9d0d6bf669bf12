"""Shared fixtures: a real database (SQLite, or PostgreSQL via FILERELAY_TEST_DATABASE_URL), a real
HTTP server around the real app, and a configured workspace.

Isolation: each run gets its own database (a scratch database on the PostgreSQL server, or a SQLite
file), built by the real Alembic migrations; every test starts from empty tables. Tests that spawn processes need committed data, so every test uses the same mechanism
(rows deleted after each test) rather than savepoint rollback, which only covers in-process tests.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from werkzeug.serving import BaseWSGIServer, make_server

from filerelay.api import create_app
from filerelay.clock import FrozenClock
from filerelay.db.migrate import upgrade
from filerelay.db.models import Base
from filerelay.db.session import make_engine
from filerelay.runtime import Runtime, build_runtime
from filerelay.settings import Settings
from tests.support.databases import TEST_ENCRYPTION_KEY, scratch_database
from tests.support.keys import ADMIN_KEY
from tests.support.policy import LOOPBACK
from tests.support.s3server import S3Server, seaweedfs
from tests.support.sapclient import SapClient
from tests.support.workspaces import CONFIG, configure


@pytest.fixture(scope="session")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server_url = os.environ.get("FILERELAY_TEST_DATABASE_URL")
    with ExitStack() as stack:
        if server_url:
            url = stack.enter_context(scratch_database(server_url))
        else:
            url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'filerelay-test.db'}"
        upgrade(url)  # the real migrations build the schema
        yield url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    engine.dispose()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 server (SeaweedFS) on loopback, started on first use and shared by the run."""
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def settings(home: Path, db_url: str, engine: Engine) -> Settings:
    settings = Settings.from_env(
        {
            "FILERELAY_HOME": str(home),
            "FILERELAY_DATABASE_URL": db_url,
            "FILERELAY_ENCRYPTION_KEYS": TEST_ENCRYPTION_KEY,
        }
    )
    return settings.with_overrides(operator_policy=LOOPBACK)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(dt.datetime(2026, 4, 4, 10, 30, tzinfo=dt.UTC))


@pytest.fixture
def runtime(settings: Settings, clock: FrozenClock) -> Iterator[Runtime]:
    rt = build_runtime(settings, clock=clock)
    yield rt
    rt.close()


@pytest.fixture
def configured(runtime: Runtime, tmp_path: Path) -> Runtime:
    """The workspace acme/production with Z1 wired to a folder and an S3 bucket, Z2 wired to nothing."""
    env = {"ADMIN_KEY": ADMIN_KEY, "OUT_DIR": str(tmp_path / "out"), "S3_SECRET": "s3cr3t"}
    return configure(runtime, CONFIG, env)


@pytest.fixture
def server(configured: Runtime) -> Iterator[str]:
    """The real app behind a real (threaded) HTTP server on loopback."""
    app = create_app(runtime=configured)
    srv: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}"
    srv.shutdown()
    thread.join()


@pytest.fixture
def sap(server: str) -> SapClient:
    return SapClient(server + "/archivelink/acme/production")
