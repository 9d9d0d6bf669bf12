"""The Documents API against its reference shapes (tests/support/shapes/documents.json), field for field, plus filters, paging, retry and isolation."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from filerelay.clock import FrozenClock
from filerelay.db.models import Delivery, DeliveryAttempt, Destination, Document
from filerelay.db.session import session_scope
from filerelay.delivery import service, sweep
from filerelay.runtime import Runtime
from tests.support.api_shapes import assert_same_shape, examples
from tests.support.documents import make_documents
from tests.support.keys import MEMBER_KEY, OTHER_KEY, VIEWER_KEY, headers

BASE = "/api/acme/production/documents"
# SAP business context of the kind the reference shows (object type and key, ArchiveLink document type).
LIFECYCLE_FIELDS = {"staging_expires_at", "staging_released_at", "staging_released_reason", "record_expires_at"}
METADATA = {"sap_object_type": "BKPF", "sap_object_id": "1000012345672026", "ar_object": "ZCUSTOMINV"}


def body(response: Any) -> Any:
    assert response.is_json, response.data
    return response.get_json()


# --- the seed's shapes ------------------------------------------------------------------------------


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_list_has_the_seed_shape(populated: Runtime, received: dict[str, dt.datetime], client: FlaskClient) -> None:
    seed_list = examples("documents")[0]
    reply = client.get(f"{BASE}?repo_id=Z1&per_page=10", headers=headers())
    assert reply.status_code == 200
    data = body(reply)
    # Beyond the seed: whether the total is exact, and where the next page starts (keyset paging).
    assert_same_shape(data, seed_list, additions={"$.meta": {"total_exact", "next_cursor"}})
    assert data["meta"] == {"current_page": 1, "per_page": 10, "total": 3, "total_exact": True, "next_cursor": None}
    first = data["data"][0]
    assert first["type"] == "document"
    assert first["id"].startswith("doc_")
    assert first["attributes"]["received_at"] == iso(received["9C1D3E5F7A2B4D6E"])
    assert first["attributes"]["size_bytes"] == len(b"%PDF 9C1D3E5F7A2B4D6E")
    deliveries = {d["destination_id"]: d for d in first["attributes"]["deliveries"]}
    assert deliveries["dest_folder"] == {
        "destination_id": "dest_folder",
        "destination_name": "Local Folder",
        "status": "delivered",
        # The workers ran a minute after the last create (globex's).
        "delivered_at": iso(received["GLOBEX1"] + dt.timedelta(seconds=60)),
        "attempts": 1,
    }
    assert deliveries["dest_s3prod"]["status"] == "failed"
    assert deliveries["dest_s3prod"]["delivered_at"] is None


def test_get_has_the_seed_shape_with_metadata_and_paths(
    populated: Runtime, received: dict[str, dt.datetime], client: FlaskClient
) -> None:
    seed_get = examples("documents")[1]
    listed = body(client.get(BASE, headers=headers()))["data"]
    document_id = next(d["id"] for d in listed if d["attributes"]["doc_id"] == "4A3F8B2C1D7E9F0A")
    # ArchiveLink carries no business metadata; what an enrichment stores is free JSON on the row.
    with session_scope(populated.sessions) as session:
        session.get_one(Document, document_id).metadata_ = dict(METADATA)
    data = body(client.get(f"{BASE}/{document_id}", headers=headers(VIEWER_KEY)))
    # Beyond the seed: the data lifecycle's moments (docs/operations.md#data-lifecycle).
    assert_same_shape(data, seed_get, additions={"$.data.attributes": LIFECYCLE_FIELDS})
    assert (data["data"]["id"], data["data"]["type"]) == (document_id, "document")
    attributes = data["data"]["attributes"]
    assert attributes["metadata"] == METADATA
    assert {k: v for k, v in attributes.items() if k not in {"metadata", "deliveries", *LIFECYCLE_FIELDS}} == {
        "doc_id": "4A3F8B2C1D7E9F0A",
        "repo_id": "Z1",
        "comp_id": "data",
        "content_type": "application/pdf",
        "size_bytes": len(b"%PDF 4A3F8B2C1D7E9F0A"),
        "status": "failed",  # the folder delivered, the refusing S3 failed (max_retries 0)
        "received_at": iso(received["4A3F8B2C1D7E9F0A"]),
    }
    paths = {d["destination_id"]: d["path"] for d in attributes["deliveries"]}
    assert paths == {"dest_folder": "/Z1/4A3F8B2C1D7E9F0A_data.pdf", "dest_s3prod": None}


def test_retry_has_the_seed_shape_and_only_resends_failures(populated: Runtime, client: FlaskClient) -> None:
    seed_retry = examples("documents")[2]
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


def s3_delivery(runtime: Runtime, doc_id: str) -> Delivery:
    with session_scope(runtime.sessions) as session:
        return session.scalars(
            select(Delivery)
            .join(Destination, Destination.id == Delivery.destination_id)
            .join(Document, Document.id == Delivery.document_id)
            .where(Destination.public_id == "dest_s3prod", Document.doc_id == doc_id)
        ).one()


def run_cycle(runtime: Runtime, clock: FrozenClock, delivery_id: str) -> list[str]:
    """Attempt the delivery whenever it is due until it is no longer retrying; each attempt's verdict."""
    verdicts: list[str] = []
    while True:
        due = s3_delivery(runtime, "RETRY1").next_attempt_at
        assert due is not None
        clock.advance(max((due - clock.now()).total_seconds(), 0))
        assert service.run(runtime, delivery_id, rand=lambda: 0.5)
        verdicts.append(s3_delivery(runtime, "RETRY1").status)
        if verdicts[-1] != "retrying" or len(verdicts) > 10:
            return verdicts


def test_a_manual_retry_starts_a_fresh_cycle_of_max_retries_plus_one_attempts(
    relay: Runtime, server: str, clock: FrozenClock, client: FlaskClient
) -> None:
    reply = client.patch("/api/acme/production/settings", json={"max_retries": 2}, headers=headers())
    assert reply.status_code == 200, reply.get_json()
    # Two cycles fail six times in a row; the circuit breaker (5 by default) is not what this is about.
    relay.settings = relay.settings.with_overrides(breaker_failures=100)
    make_documents(server, clock, "RETRY1")
    delivery_id = s3_delivery(relay, "RETRY1").id

    assert run_cycle(relay, clock, delivery_id) == ["retrying", "retrying", "failed"]
    exhausted = s3_delivery(relay, "RETRY1")
    assert (exhausted.attempts, exhausted.cycle_attempts) == (3, 3)
    # Well past the first cycle's TTL (1h): only a TTL counted from the retry lets it run again.
    clock.advance(2 * 3600)
    assert exhausted.expires_at < clock.now()
    retried_at = clock.now()

    reply = client.post(f"{BASE}/{exhausted.document_id}/retry", headers=headers(MEMBER_KEY))

    assert reply.status_code == 200, reply.get_json()
    fresh = s3_delivery(relay, "RETRY1")
    assert fresh.status == "retrying"
    assert (fresh.attempts, fresh.cycle_attempts) == (3, 0)  # attempts keeps counting, the cycle restarts
    assert fresh.cycle_started_at == retried_at
    assert fresh.expires_at == retried_at + dt.timedelta(hours=1)
    assert fresh.next_attempt_at == retried_at
    # The sweeper's TTL check leaves the fresh cycle alone.
    with session_scope(relay.sessions) as session:
        sweep.expire(session, now=clock.now(), limit=10)
    assert s3_delivery(relay, "RETRY1").status == "retrying"

    # 1 + max_retries attempts again before it is given up.
    assert run_cycle(relay, clock, delivery_id) == ["retrying", "retrying", "failed"]
    final = s3_delivery(relay, "RETRY1")
    assert (final.attempts, final.cycle_attempts) == (6, 3)
    with session_scope(relay.sessions) as session:
        numbers = session.scalars(
            select(DeliveryAttempt.number)
            .where(DeliveryAttempt.delivery_id == delivery_id)
            .order_by(DeliveryAttempt.number)
        ).all()
    assert list(numbers) == [1, 2, 3, 4, 5, 6]


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
    meta = body(client.get(f"{BASE}?per_page=2", headers=headers()))["meta"]
    assert isinstance(meta.pop("next_cursor"), str)  # keyset paging: tests/api/test_document_listing.py
    assert meta == {"current_page": 1, "per_page": 2, "total": 3, "total_exact": True}


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
