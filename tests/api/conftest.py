"""The API tests' workspaces: acme/production with viewer and member keys, and globex/main beside it,
with documents made the way SAP makes them and delivered in-process (folder delivered, S3 failed)."""

from __future__ import annotations

import datetime as dt
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from playwright.sync_api import Browser

from filerelay.api import create_app
from filerelay.clock import FrozenClock
from filerelay.runtime import Runtime
from tests.support.browser import launched
from tests.support.documents import deliver_all, make_documents
from tests.support.keys import ADMIN_KEY, MEMBER_KEY, OTHER_KEY, VIEWER_KEY
from tests.support.workspaces import configure

MORE = textwrap.dedent(
    """
    workspaces:
      - owner: acme
        slug: production
        retry: {max_retries: 0, ttl: 1h, backoff_base: 1s, backoff_max: 10s}
        api_keys:
          - {name: ops, role: admin, key: "${ADMIN_KEY}"}
          - {name: dashboard, role: viewer, key: "%s"}
          - {name: clerk, role: member, key: "%s"}
      - owner: globex
        slug: main
        api_keys:
          - {name: ops, role: admin, key: "%s"}
        destinations:
          - {id: dest_folder, name: Their Folder, kind: folder, root: "${OUT_DIR}/globex"}
        repositories:
          - {id: Z1, description: Theirs, signature: none, destinations: [dest_folder]}
    """
) % (VIEWER_KEY, MEMBER_KEY, OTHER_KEY)


@pytest.fixture
def relay(configured: Runtime, tmp_path: Path) -> Runtime:
    """acme/production (Z1 → folder + an S3 that refuses; max_retries 0, so S3 fails at once) with
    viewer and member keys, and a second workspace globex/main with a document of its own."""
    env = {"ADMIN_KEY": ADMIN_KEY, "OUT_DIR": str(tmp_path / "out"), "S3_SECRET": "s3cr3t"}
    return configure(configured, MORE, env)


@pytest.fixture
def client(relay: Runtime) -> FlaskClient:
    return create_app(runtime=relay).test_client()


@pytest.fixture
def received(relay: Runtime, server: str, clock: FrozenClock) -> dict[str, dt.datetime]:
    """Three documents in acme/production and one in globex/main, one attempt each; when each was sent."""
    sent = make_documents(server, clock, "4A3F8B2C1D7E9F0A", "7B2E9C4D5F1A3E8B", "9C1D3E5F7A2B4D6E")
    sent |= make_documents(server, clock, "GLOBEX1", workspace="globex/main")
    deliver_all(relay)
    return sent


@pytest.fixture
def populated(relay: Runtime, received: dict[str, dt.datetime]) -> Runtime:
    return relay


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Chromium, started once for the run's browser tests (skipped where there is none)."""
    with launched() as started:
        yield started
