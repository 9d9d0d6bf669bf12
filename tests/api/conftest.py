"""The API tests' workspaces: acme/production with viewer and member keys, and globex/main beside it,
with documents made the way SAP makes them and delivered in-process (folder delivered, S3 failed)."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from filerelay.api import create_app
from filerelay.clock import FrozenClock
from filerelay.config_file import apply, load
from filerelay.db.models import Delivery
from filerelay.db.session import session_scope
from filerelay.delivery import service
from filerelay.runtime import Runtime
from tests.conftest import ADMIN_KEY
from tests.support.policy import LOOPBACK
from tests.support.sapclient import SapClient

VIEWER_KEY = "fr_live_viewer_0123456789abcdef"
MEMBER_KEY = "fr_live_member_0123456789abcdef"
OTHER_KEY = "fr_live_other_0123456789abcdefgh"

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
    with session_scope(configured.sessions) as session:
        apply(session, load(MORE, env), now=configured.clock.now(), policy=LOOPBACK)
    return configured


@pytest.fixture
def client(relay: Runtime) -> FlaskClient:
    return create_app(runtime=relay).test_client()


def headers(key: str = ADMIN_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def deliver_all(runtime: Runtime, status: str = "pending") -> None:
    """What the workers do, in-process (the real delivery service): one attempt for every delivery in `status`."""
    with session_scope(runtime.sessions) as session:
        ids = list(session.scalars(select(Delivery.id).where(Delivery.status == status)))
    for delivery_id in ids:
        service.run(runtime, delivery_id, rand=lambda: 0.5)


def make_documents(
    server: str, clock: FrozenClock, *doc_ids: str, workspace: str = "acme/production"
) -> dict[str, dt.datetime]:
    """Create each document the way SAP does, a minute apart; when each was sent."""
    sap = SapClient(f"{server}/archivelink/{workspace}")
    sent: dict[str, dt.datetime] = {}
    for doc_id in doc_ids:
        sent[doc_id] = clock.now()
        assert sap.create(doc_id, "data", f"%PDF {doc_id}".encode(), "application/pdf").status == 201
        clock.advance(60)
    return sent


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
