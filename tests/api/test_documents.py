"""The Documents API against seed 003, field for field, plus filters, paging, retry and isolation."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from filerelay.api import create_app
from filerelay.clock import FrozenClock
from filerelay.config_file import apply, load
from filerelay.db.models import Delivery, Destination
from filerelay.db.session import session_scope
from filerelay.delivery import service
from filerelay.runtime import Runtime
from tests.conftest import ADMIN_KEY
from tests.support.sapclient import SapClient
from tests.support.seeds import assert_same_shape, examples

VIEWER_KEY = "fr_live_viewer_0123456789abcdef"
MEMBER_KEY = "fr_live_member_0123456789abcdef"
OTHER_KEY = "fr_live_other_0123456789abcdefgh"
BASE = "/api/acme/production/documents"

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
        apply(session, load(MORE, env), now=configured.clock.now())
    return configured


@pytest.fixture
def client(relay: Runtime) -> FlaskClient:
    return create_app(runtime=relay).test_client()


def headers(key: str = ADMIN_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def deliver_all(runtime: Runtime) -> None:
    """What the workers do, in-process: one attempt for every waiting delivery."""
    with session_scope(runtime.sessions) as session:
        ids = list(session.scalars(select(Delivery.id).where(Delivery.status == "pending")))
    for delivery_id in ids:
        service.run(runtime, delivery_id, rand=lambda: 0.5)


def make_documents(server: str, clock: FrozenClock, *doc_ids: str, workspace: str = "acme/production") -> None:
    sap = SapClient(f"{server}/archivelink/{workspace}")
    for doc_id in doc_ids:
        assert sap.create(doc_id, "data", f"%PDF {doc_id}".encode(), "application/pdf").status == 201
        clock.advance(60)


@pytest.fixture
def populated(relay: Runtime, server: str, clock: FrozenClock) -> Runtime:
    make_documents(server, clock, "4A3F8B2C1D7E9F0A", "7B2E9C4D5F1A3E8B", "9C1D3E5F7A2B4D6E")
    make_documents(server, clock, "GLOBEX1", workspace="globex/main")
    deliver_all(relay)
    return relay


def body(response: Any) -> Any:
    assert response.is_json, response.data
    return response.get_json()


# --- the seed's shapes ------------------------------------------------------------------------------


def test_list_has_the_seed_shape(populated: Runtime, client: FlaskClient) -> None:
    seed_list = examples("003")[0]
    reply = client.get(f"{BASE}?repo_id=Z1&per_page=10", headers=headers())
    assert reply.status_code == 200
    data = body(reply)
    assert_same_shape(data, seed_list)
    assert data["meta"] == {"current_page": 1, "per_page": 10, "total": 3}
    first = data["data"][0]
    assert first["type"] == "document"
    assert first["id"].startswith("doc_")
    assert first["attributes"]["received_at"] == "2026-04-04T10:32:00Z"
    assert first["attributes"]["size_bytes"] == len(b"%PDF 9C1D3E5F7A2B4D6E")
    deliveries = {d["destination_id"]: d for d in first["attributes"]["deliveries"]}
    assert deliveries["dest_folder"] == {
        "destination_id": "dest_folder",
        "destination_name": "Local Folder",
        "status": "delivered",
        "delivered_at": "2026-04-04T10:34:00Z",  # after the 4th create (globex), when workers ran
        "attempts": 1,
    }
    assert deliveries["dest_s3prod"]["status"] == "failed"
    assert deliveries["dest_s3prod"]["delivered_at"] is None


def test_get_has_the_seed_shape_with_metadata_and_paths(populated: Runtime, client: FlaskClient) -> None:
    seed_get = examples("003")[1]
    listed = body(client.get(BASE, headers=headers()))["data"]
    document_id = next(d["id"] for d in listed if d["attributes"]["doc_id"] == "4A3F8B2C1D7E9F0A")
    data = body(client.get(f"{BASE}/{document_id}", headers=headers(VIEWER_KEY)))
    # The seed shows SAP metadata; ArchiveLink itself carries none, so ours is an empty object.
    seed_get["data"]["attributes"]["metadata"] = {}
    assert_same_shape(data, seed_get)
    attributes = data["data"]["attributes"]
    assert attributes["metadata"] == {}
    paths = {d["destination_id"]: d["path"] for d in attributes["deliveries"]}
    assert paths == {"dest_folder": "/Z1/4A3F8B2C1D7E9F0A_data.pdf", "dest_s3prod": None}


def test_retry_has_the_seed_shape_and_only_resends_failures(populated: Runtime, client: FlaskClient) -> None:
    seed_retry = examples("003")[2]
    listed = body(client.get(f"{BASE}?status=failed", headers=headers()))["data"]
    assert len(listed) == 3
    document_id = listed[0]["id"]
    reply = client.post(f"{BASE}/{document_id}/retry", headers=headers(MEMBER_KEY))
    assert reply.status_code == 200
    data = body(reply)
    assert_same_shape(data, seed_retry)
    attributes = data["data"]["attributes"]
    assert attributes["status"] == "retrying"
    states = {d["destination_id"]: (d["status"], d["attempts"]) for d in attributes["deliveries"]}
    assert states == {"dest_folder": ("delivered", 1), "dest_s3prod": ("retrying", 1)}
    # It fails again (max_retries 0), and attempts keep counting across retries.
    deliver_all_due(populated)
    again = body(client.post(f"{BASE}/{document_id}/retry", headers=headers(MEMBER_KEY)))
    states = {d["destination_id"]: (d["status"], d["attempts"]) for d in again["data"]["attributes"]["deliveries"]}
    assert states == {"dest_folder": ("delivered", 1), "dest_s3prod": ("retrying", 2)}


def deliver_all_due(runtime: Runtime) -> None:
    with session_scope(runtime.sessions) as session:
        ids = list(session.scalars(select(Delivery.id).where(Delivery.status == "retrying")))
    for delivery_id in ids:
        service.run(runtime, delivery_id, rand=lambda: 0.5)


def test_retry_with_nothing_failed_is_409(relay: Runtime, server: str, clock: FrozenClock, client: FlaskClient) -> None:
    make_documents(server, clock, "PENDING1")
    document_id = body(client.get(BASE, headers=headers()))["data"][0]["id"]
    reply = client.post(f"{BASE}/{document_id}/retry", headers=headers(MEMBER_KEY))
    assert reply.status_code == 409
    (error,) = body(reply)["errors"]
    assert error["status"] == "409"
    assert error["code"] == "nothing_to_retry"
    assert "no failed delivery" in error["detail"]


def test_bulk_retry_requeues_matching_failures(populated: Runtime, client: FlaskClient) -> None:
    reply = client.post(f"{BASE}/retry?destination_id=dest_folder", headers=headers(MEMBER_KEY))
    assert body(reply)["data"] == {"type": "bulk_retry", "attributes": {"documents": 0, "deliveries": 0}}
    reply = client.post(f"{BASE}/retry?repo_id=Z1&destination_id=dest_s3prod", headers=headers(MEMBER_KEY))
    assert body(reply)["data"]["attributes"] == {"documents": 3, "deliveries": 3}
    assert body(client.get(f"{BASE}?status=retrying", headers=headers()))["meta"]["total"] == 3
    assert body(client.get(f"{BASE}?status=failed", headers=headers()))["meta"]["total"] == 0


# --- filters and paging -------------------------------------------------------------------------------


def test_filters_paging_and_order(populated: Runtime, client: FlaskClient) -> None:
    def doc_ids(query: str) -> list[str]:
        return [d["attributes"]["doc_id"] for d in body(client.get(f"{BASE}?{query}", headers=headers()))["data"]]

    assert doc_ids("") == ["9C1D3E5F7A2B4D6E", "7B2E9C4D5F1A3E8B", "4A3F8B2C1D7E9F0A"]  # newest first
    assert doc_ids("per_page=2&page=2") == ["4A3F8B2C1D7E9F0A"]
    assert doc_ids("per_page=2&page=3") == []
    assert doc_ids("date_from=2026-04-04T10:31:00Z") == ["9C1D3E5F7A2B4D6E", "7B2E9C4D5F1A3E8B"]
    assert doc_ids("date_to=2026-04-04T10:31:00Z") == ["7B2E9C4D5F1A3E8B", "4A3F8B2C1D7E9F0A"]
    assert doc_ids("date_to=2026-04-04") == doc_ids("")  # a date alone includes that whole day
    assert doc_ids("date_to=2026-04-03") == []
    assert doc_ids("repo_id=Z2") == []
    assert doc_ids("status=delivered") == []
    assert body(client.get(f"{BASE}?per_page=2", headers=headers()))["meta"] == {
        "current_page": 1,
        "per_page": 2,
        "total": 3,
    }


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("per_page=0", "per_page"),
        ("per_page=101", "per_page"),
        ("page=0", "page"),
        ("page=abc", "page"),
        ("status=lost", "status"),
        ("date_from=yesterday", "date_from"),
        ("date_to=2026-13-01", "date_to"),
        ("colour=blue", "colour"),
    ],
)
def test_bad_parameters_are_400_in_the_error_shape(
    relay: Runtime, client: FlaskClient, query: str, parameter: str
) -> None:
    reply = client.get(f"{BASE}?{query}", headers=headers())
    assert reply.status_code == 400
    (error,) = body(reply)["errors"]
    assert error["status"] == "400"
    assert error["title"] == "Bad Request"
    assert error["source"] == {"parameter": parameter}
    assert error["code"]
    assert error["detail"].startswith(f"{parameter}: ")


# --- isolation ---------------------------------------------------------------------------------------


def test_another_workspace_never_shows(populated: Runtime, client: FlaskClient) -> None:
    ours = body(client.get(BASE, headers=headers()))["data"]
    assert "GLOBEX1" not in {d["attributes"]["doc_id"] for d in ours}
    theirs = body(client.get("/api/globex/main/documents", headers=headers(OTHER_KEY)))["data"]
    assert [d["attributes"]["doc_id"] for d in theirs] == ["GLOBEX1"]
    # Their key on our URL, and our key on their document: 404, as if nothing were there.
    assert client.get(BASE, headers=headers(OTHER_KEY)).status_code == 404
    assert client.get(f"{BASE}/{theirs[0]['id']}", headers=headers()).status_code == 404
    assert client.post(f"{BASE}/{theirs[0]['id']}/retry", headers=headers()).status_code == 404
    with session_scope(populated.sessions) as session:
        assert session.scalar(select(Destination.name).where(Destination.public_id == "dest_folder").limit(1))


def test_nul_characters_are_refused_before_reaching_the_database(relay: Runtime, client: FlaskClient) -> None:
    assert client.get(f"{BASE}/doc%00x", headers=headers()).status_code == 404
    reply = client.get(f"{BASE}?repo_id=Z%001", headers=headers())
    assert reply.status_code == 400
    assert body(reply)["errors"][0]["source"] == {"parameter": "repo_id"}
    assert client.get("/api/acme/production/files/doc%00x", headers=headers()).status_code == 404
