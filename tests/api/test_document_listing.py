"""Listing at scale: keyset paging by cursor, a capped total that says so, and the `doc_id` and
`destination_id` filters, over the real app and the shared catalog."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from filerelay import catalog
from filerelay.api import create_app
from filerelay.catalog import Cursor, DocumentFilter
from filerelay.clock import FrozenClock
from filerelay.db.models import Document
from filerelay.db.session import session_scope
from filerelay.runtime import Runtime
from tests.support.keys import ADMIN_KEY
from tests.support.sapclient import SapClient

BASE = "/api/acme/production/documents"
DOC_IDS = [f"DOC{n:03d}" for n in range(7)]


@pytest.fixture
def client(configured: Runtime) -> FlaskClient:
    return create_app(runtime=configured).test_client()


@pytest.fixture
def seven(configured: Runtime, server: str, clock: FrozenClock) -> list[str]:
    """Seven documents in Z1 (wired to the folder and S3), a minute apart, plus DOC003 again in Z2
    (wired to nothing); two share one received_at, so the cursor must also order by id."""
    sap = SapClient(f"{server}/archivelink/acme/production")
    for n, doc_id in enumerate(DOC_IDS):
        assert sap.create(doc_id, "data", f"%PDF {doc_id}".encode(), "application/pdf").status == 201
        if n != 3:  # DOC003 and DOC004 arrive in the same instant
            clock.advance(60)
    assert (
        SapClient(f"{server}/archivelink/acme/production", cont_rep="Z2")
        .create("DOC003", "data", b"x", "text/plain")
        .status
        == 201
    )
    return DOC_IDS


def get(client: FlaskClient, query: str, status: int = 200) -> Any:
    reply = client.get(f"{BASE}?{query}", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert reply.status_code == status, reply.get_data(as_text=True)
    return reply.get_json()


def test_cursor_pages_walk_every_document_once_in_order(seven: list[str], client: FlaskClient) -> None:
    by_page = get(client, "per_page=100")
    everything = [(d["attributes"]["doc_id"], d["attributes"]["repo_id"]) for d in by_page["data"]]
    assert len(everything) == 8
    assert by_page["meta"]["next_cursor"] is None

    walked: list[tuple[str, str]] = []
    query = "per_page=3"
    while True:
        page = get(client, query)
        walked += [(d["attributes"]["doc_id"], d["attributes"]["repo_id"]) for d in page["data"]]
        cursor = page["meta"]["next_cursor"]
        if cursor is None:
            break
        assert page["meta"]["current_page"] in (1, None)
        query = f"per_page=3&cursor={cursor}"
    assert walked == everything  # the same order as page paging, no document twice or missing


def test_page_and_cursor_agree(seven: list[str], client: FlaskClient) -> None:
    first = get(client, "per_page=3&page=1")
    second_by_page = get(client, "per_page=3&page=2")
    second_by_cursor = get(client, f"per_page=3&cursor={first['meta']['next_cursor']}")
    assert second_by_cursor["data"] == second_by_page["data"]
    assert second_by_cursor["meta"]["current_page"] is None
    assert second_by_cursor["meta"]["total"] == 8


def test_filters_apply_to_cursor_pages(seven: list[str], client: FlaskClient) -> None:
    first = get(client, "per_page=2&repo_id=Z1")
    second = get(client, f"per_page=2&repo_id=Z1&cursor={first['meta']['next_cursor']}")
    ids = [d["attributes"]["doc_id"] for d in first["data"] + second["data"]]
    # DOC003 and DOC004 share an instant: their order is their (random) ids', whichever it is.
    assert ids[:2] == ["DOC006", "DOC005"]
    assert sorted(ids[2:]) == ["DOC003", "DOC004"]


def test_doc_id_filter_finds_every_repository_s_copy(seven: list[str], client: FlaskClient) -> None:
    found = get(client, "doc_id=DOC003")
    assert sorted(d["attributes"]["repo_id"] for d in found["data"]) == ["Z1", "Z2"]
    assert found["meta"]["total"] == 2
    assert get(client, "doc_id=DOC003&repo_id=Z2")["meta"]["total"] == 1
    assert get(client, "doc_id=NOPE")["data"] == []


def test_destination_filter_lists_documents_wired_to_it(seven: list[str], client: FlaskClient) -> None:
    to_s3 = get(client, "destination_id=dest_s3prod&per_page=100")
    assert sorted(d["attributes"]["doc_id"] for d in to_s3["data"]) == DOC_IDS  # Z2's copy goes nowhere
    for document in to_s3["data"]:
        assert "dest_s3prod" in {d["destination_id"] for d in document["attributes"]["deliveries"]}
    assert get(client, "destination_id=dest_unknown")["meta"]["total"] == 0


def test_another_workspace_destination_id_matches_nothing(seven: list[str], configured: Runtime) -> None:
    with session_scope(configured.sessions) as session:
        page = catalog.list_documents(
            session, workspace_id=-1, filters=DocumentFilter(destination_id="dest_s3prod"), per_page=10
        )
    assert (page.total, list(page.documents)) == (0, [])


def test_total_is_capped_and_says_so(seven: list[str], configured: Runtime) -> None:
    with session_scope(configured.sessions) as session:
        workspace_id = session.scalar(select(Document.workspace_id).limit(1))
        assert workspace_id is not None
        capped = catalog.list_documents(
            session, workspace_id=workspace_id, filters=DocumentFilter(), per_page=2, count_cap=5
        )
        exact = catalog.list_documents(
            session, workspace_id=workspace_id, filters=DocumentFilter(), per_page=2, count_cap=8
        )
    assert (capped.total, capped.total_exact) == (5, False)
    assert (exact.total, exact.total_exact) == (8, True)


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",  # not base64
        "bm90IGpzb24",  # base64 of "not json"
        "WzEsMiwzXQ",  # base64 of [1,2,3]
        "WyIyMDI2LTA0LTA0VDEwOjMwOjAwIiwgImRvY194Il0",  # a time without a zone
        Cursor(dt.datetime(2026, 4, 4, tzinfo=dt.UTC), "doc_x").encode()[:-3],  # cut short
    ],
)
def test_a_bad_cursor_is_a_400_naming_the_parameter(seven: list[str], client: FlaskClient, cursor: str) -> None:
    reply = get(client, f"cursor={cursor}", status=400)
    assert reply["errors"][0]["source"] == {"parameter": "cursor"}


def test_page_and_cursor_together_are_refused(seven: list[str], client: FlaskClient) -> None:
    first = get(client, "per_page=2")
    reply = get(client, f"page=2&cursor={first['meta']['next_cursor']}", status=400)
    assert "either page or cursor" in str(reply)


def test_deleted_documents_are_not_listed_by_cursor(seven: list[str], client: FlaskClient, configured: Runtime) -> None:
    first = get(client, "per_page=2")
    with session_scope(configured.sessions) as session:
        session.execute(update(Document).where(Document.doc_id == "DOC004").values(deleted_at=Document.received_at))
    rest = get(client, f"per_page=100&cursor={first['meta']['next_cursor']}")
    assert "DOC004" not in [d["attributes"]["doc_id"] for d in rest["data"]]
