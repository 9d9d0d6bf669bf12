"""Documents' business context over HTTP: set one by one and in bulk (the SAP report's payload), refused
when invalid, deleted or discarded; deliveries that wait for it (and land at the templated path) or whose
wait ends first (the fallback segment); the business-object filter in the API and the console."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from filerelay.clock import FrozenClock
from filerelay.db.models import AuditEvent, Delivery, Destination, Document
from filerelay.db.session import session_scope
from filerelay.delivery import service, sweep
from filerelay.runtime import Runtime
from tests.support.console import sign_in
from tests.support.documents import make_documents
from tests.support.keys import MEMBER_KEY, VIEWER_KEY, headers
from tests.support.sapclient import SapClient

BASE = "/api/acme/production"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "sap"
PAYLOAD = json.loads((EXAMPLES / "links_payload.json").read_text())
LINK = {"sap_object_type": "BKPF", "sap_object_id": "100001000012342026", "ar_object": "ZCUSTOMINV", "client": "100"}
TEMPLATE = "/{meta.sap_object_type}/{meta.sap_object_id}/{doc_id}{ext}"


def ids(runtime: Runtime) -> dict[str, str]:
    """SAP docId → FileRelay id of each live document."""
    with session_scope(runtime.sessions) as session:
        return dict(session.execute(select(Document.doc_id, Document.id).where(Document.deleted_at.is_(None))).all())


def metadata_of(runtime: Runtime, document_id: str) -> dict[str, Any]:
    with session_scope(runtime.sessions) as session:
        return dict(session.get_one(Document, document_id).metadata_)


def entries(runtime: Runtime) -> list[tuple[str, str, dict[str, Any]]]:
    with session_scope(runtime.sessions) as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "document.metadata").order_by(AuditEvent.id)
        )
        return [(e.target, e.actor, e.changes) for e in rows]


def put(client: FlaskClient, document_id: str, body: Any, key: str = MEMBER_KEY) -> Any:
    return client.put(f"{BASE}/documents/{document_id}/metadata", json=body, headers=headers(key))


def post(client: FlaskClient, body: Any, key: str = MEMBER_KEY) -> Any:
    return client.post(f"{BASE}/documents/metadata", json=body, headers=headers(key))


# --- one by one ---------------------------------------------------------------------------------------


def test_put_sets_the_metadata_once_and_audits_the_change(
    relay: Runtime, server: str, clock: FrozenClock, client: FlaskClient
) -> None:
    make_documents(server, clock, "DOC1")
    document_id = ids(relay)["DOC1"]

    reply = put(client, document_id, LINK)
    assert reply.status_code == 200, reply.get_json()
    assert reply.get_json()["data"]["attributes"]["metadata"] == LINK
    shown = client.get(f"{BASE}/documents/{document_id}", headers=headers(VIEWER_KEY)).get_json()
    assert shown["data"]["attributes"]["metadata"] == LINK
    # The same body again: idempotent, nothing changes and nothing more is recorded.
    assert put(client, document_id, LINK).status_code == 200
    [(target, actor, changes)] = entries(relay)
    assert (target, actor) == (document_id, "clerk")
    assert changes["sap_object_type"] == {"before": None, "after": "BKPF"}
    # The body replaces the metadata as a whole.
    assert put(client, document_id, {"note": "re-scanned"}).status_code == 200
    assert metadata_of(relay, document_id) == {"note": "re-scanned"}
    assert len(entries(relay)) == 2


def test_put_is_for_members_and_refuses_unknown_deleted_and_discarded_documents(
    relay: Runtime, server: str, clock: FrozenClock, client: FlaskClient
) -> None:
    make_documents(server, clock, "DOC1", "GONE")
    unwired = SapClient(f"{server}/archivelink/acme/production", cont_rep="Z2")
    assert unwired.create("SCAN1", "data", b"%PDF scan").status == 201  # Z2 is wired to nothing
    assert SapClient(f"{server}/archivelink/acme/production").delete("GONE").status == 200
    known = ids(relay)
    with session_scope(relay.sessions) as session:
        gone = session.scalar(select(Document.id).where(Document.doc_id == "GONE"))
    assert gone is not None

    assert put(client, known["DOC1"], LINK, key=VIEWER_KEY).status_code == 403
    assert put(client, "doc_unknown", LINK).status_code == 404
    deleted = put(client, gone, LINK)
    assert deleted.status_code == 409
    assert "deleted" in deleted.get_json()["errors"][0]["detail"]
    discarded = put(client, known["SCAN1"], LINK)
    assert discarded.status_code == 409
    assert "discarded" in discarded.get_json()["errors"][0]["detail"]
    assert metadata_of(relay, known["SCAN1"]) == {}
    assert entries(relay) == []


@pytest.mark.parametrize(
    ("body", "pointer", "words"),
    [
        ({**LINK, "sap_object_type": "bkpf"}, "/sap_object_type", "uppercase"),
        ({**LINK, "sap_object_type": "BKPF_TOO_LONG"}, "/sap_object_type", "1 to 10"),
        ({**LINK, "sap_object_id": "x" * 91}, "/sap_object_id", "1 to 90"),
        ({**LINK, "ar_object": "ZCUSTOMINVOICE"}, "/ar_object", "1 to 10"),
        ({**LINK, "client": "1000"}, "/client", "3 digits"),
        ({**LINK, "client": 100}, "/client", "string"),
        ({"sap_object_id": "4711"}, "/sap_object_id", "sap_object_type"),
        ({"bad key": "x"}, "/bad key", "letter"),
        ({"note": ""}, "/note", "1 to 1024"),
        ({"note": "x" * 1025}, "/note", "1 to 1024"),
        ({"note": "a\nb"}, "/note", "control"),
        ({f"k{i}": "v" for i in range(51)}, "/", "at most 50"),
    ],
)
def test_invalid_metadata_is_refused_with_the_reason_and_changes_nothing(
    relay: Runtime, server: str, clock: FrozenClock, client: FlaskClient, body: Any, pointer: str, words: str
) -> None:
    make_documents(server, clock, "DOC1")
    document_id = ids(relay)["DOC1"]
    assert put(client, document_id, {"note": "kept"}).status_code == 200

    reply = put(client, document_id, body)

    assert reply.status_code == 400
    errors = reply.get_json()["errors"]
    assert any(e["source"]["pointer"] == pointer and words in e["detail"] for e in errors), errors
    assert metadata_of(relay, document_id) == {"note": "kept"}
    assert len(entries(relay)) == 1


def test_a_body_that_is_no_object_is_refused(
    relay: Runtime, server: str, clock: FrozenClock, client: FlaskClient
) -> None:
    make_documents(server, clock, "DOC1")
    document_id = ids(relay)["DOC1"]
    assert put(client, document_id, ["BKPF"]).status_code == 400
    reply = client.put(f"{BASE}/documents/{document_id}/metadata", data="x=1", headers=headers(MEMBER_KEY))
    assert reply.status_code == 400
    assert metadata_of(relay, document_id) == {}


# --- in bulk: what the SAP report sends -----------------------------------------------------------------


def test_the_sap_reports_payload_sets_each_documents_business_object(
    relay: Runtime, server: str, clock: FrozenClock, client: FlaskClient
) -> None:
    doc_ids = [e["doc_id"] for e in PAYLOAD["entries"]]
    make_documents(server, clock, *doc_ids)

    reply = post(client, PAYLOAD)

    assert reply.status_code == 200, reply.get_json()
    answer = reply.get_json()
    known = ids(relay)
    assert [(r["doc_id"], r["status"], r["changed"], r["documents"], r["errors"]) for r in answer["data"]] == [
        (doc_id, 200, True, [known[doc_id]], []) for doc_id in doc_ids
    ]
    assert answer["meta"] == {"changed": 3, "unchanged": 0, "failed": 0}
    for entry in PAYLOAD["entries"]:
        assert metadata_of(relay, known[entry["doc_id"]]) == entry["metadata"]
    # The report sends the last run's day again: a repeat changes (and records) nothing.
    again = post(client, PAYLOAD).get_json()
    assert again["meta"] == {"changed": 0, "unchanged": 3, "failed": 0}
    assert len(entries(relay)) == 3


def test_the_abap_report_builds_the_payload_the_test_posts() -> None:
    """The report cannot run here; what it writes into its JSON must at least be the fixture's names."""
    source = (EXAMPLES / "z_filerelay_links.abap").read_text()
    names = (
        {"entries"}
        | {k for e in PAYLOAD["entries"] for k in e}
        | {k for e in PAYLOAD["entries"] for k in e["metadata"]}
    )
    for name in names:
        assert f'"{name}"' in source, name
    for field in ("SAP_OBJECT", "OBJECT_ID", "ARCHIV_ID", "ARC_DOC_ID", "AR_OBJECT", "AR_DATE", "MANDT"):
        assert field.lower() in source, field
    for table in ("toa01", "toa02", "toa03", "tvarvc", "cl_http_client", "/documents/metadata", "p_dry"):
        assert table in source, table


def test_a_batch_answers_per_entry_and_refused_entries_change_nothing(
    relay: Runtime, server: str, clock: FrozenClock, client: FlaskClient
) -> None:
    make_documents(server, clock, "DOC1", "DOC2", "GONE")
    unwired = SapClient(f"{server}/archivelink/acme/production", cont_rep="Z2")
    assert unwired.create("SCAN1", "data", b"%PDF scan").status == 201
    assert SapClient(f"{server}/archivelink/acme/production").delete("GONE").status == 200
    batch = {
        "entries": [
            {"repo_id": "Z1", "doc_id": "DOC1", "metadata": LINK},
            {"repo_id": "Z1", "doc_id": "DOC2", "metadata": {**LINK, "client": "1"}},
            {"repo_id": "Z1", "doc_id": "NOPE", "metadata": LINK},
            {"repo_id": "Z1", "doc_id": "GONE", "metadata": LINK},
            {"repo_id": "Z2", "doc_id": "SCAN1", "metadata": LINK},
            {"repo_id": "Z9", "doc_id": "DOC1", "metadata": LINK},
        ]
    }

    answer = post(client, batch).get_json()

    assert [r["status"] for r in answer["data"]] == [200, 400, 404, 409, 409, 404]
    assert answer["data"][1]["errors"][0]["source"] == {"pointer": "/entries/1/metadata/client"}
    assert answer["data"][2]["errors"][0]["source"] == {"pointer": "/entries/2"}
    assert answer["meta"] == {"changed": 1, "unchanged": 0, "failed": 5}
    known = ids(relay)
    assert metadata_of(relay, known["DOC1"]) == LINK
    assert metadata_of(relay, known["DOC2"]) == {}
    assert metadata_of(relay, known["SCAN1"]) == {}


@pytest.mark.parametrize(
    "body",
    [
        {"entries": []},
        {"entries": [{"repo_id": "Z1", "doc_id": f"D{i}", "metadata": LINK} for i in range(1001)]},
        {"entries": [{"repo_id": "Z1", "doc_id": "DOC1", "metadata": LINK}, {"doc_id": "DOC1", "metadata": LINK}]},
        {"entries": [{"repo_id": "Z1", "doc_id": "DOC1", "metadata": "BKPF"}]},
        [{"repo_id": "Z1", "doc_id": "DOC1", "metadata": LINK}],
    ],
)
def test_a_malformed_batch_is_refused_whole(
    relay: Runtime, server: str, clock: FrozenClock, client: FlaskClient, body: Any
) -> None:
    make_documents(server, clock, "DOC1")
    reply = post(client, body)
    assert reply.status_code == 400
    assert reply.get_json()["errors"]
    assert metadata_of(relay, ids(relay)["DOC1"]) == {}
    assert (
        post(client, {"entries": [{"repo_id": "Z1", "doc_id": "DOC1", "metadata": LINK}]}, VIEWER_KEY).status_code
        == 403
    )


@pytest.mark.parametrize(
    ("entry", "pointer"),
    [
        ({"repo_id": "\x00", "doc_id": "DOC1", "metadata": LINK}, "/entries/0/repo_id"),
        ({"repo_id": "Z1", "doc_id": "DOC1", "metadata": {"note": "a\x00b"}}, "/entries/0/metadata/note"),
        ({"repo_id": "Z1", "doc_id": "DOC1", "metadata": {"a\x00/b": "x"}}, "/entries/0/metadata/a\\u0000~1b"),
    ],
)
def test_a_nul_anywhere_in_a_body_is_refused_with_its_place(
    relay: Runtime, server: str, clock: FrozenClock, client: FlaskClient, entry: dict[str, Any], pointer: str
) -> None:
    """PostgreSQL refuses NUL in text: found by the OpenAPI fuzz as a 500 on PostgreSQL (repo_id)."""
    make_documents(server, clock, "DOC1")
    reply = post(client, {"entries": [entry]})
    assert reply.status_code == 400, reply.get_data(as_text=True)
    (error,) = reply.get_json()["errors"]
    assert (error["detail"], error["source"]) == ("must not contain NUL characters", {"pointer": pointer})
    assert metadata_of(relay, ids(relay)["DOC1"]) == {}


# --- deliveries that wait for it --------------------------------------------------------------------------


def wait_for_metadata(client: FlaskClient, seconds: str = "10m") -> None:
    """Z1 waits; the folder destination files by business object."""
    reply = client.patch(f"{BASE}/repositories/Z1", json={"metadata_wait": seconds}, headers=headers())
    assert reply.status_code == 200, reply.get_json()
    reply = client.patch(f"{BASE}/destinations/dest_folder", json={"path": TEMPLATE}, headers=headers())
    assert reply.status_code == 200, reply.get_json()


def folder_delivery(runtime: Runtime, document_id: str) -> Delivery:
    with session_scope(runtime.sessions) as session:
        delivery = session.scalars(
            select(Delivery)
            .join(Destination, Destination.id == Delivery.destination_id)
            .where(Delivery.document_id == document_id, Destination.public_id == "dest_folder")
        ).one()
        session.expunge(delivery)
        return delivery


def due_kinds(runtime: Runtime, clock: FrozenClock) -> list[str]:
    with session_scope(runtime.sessions) as session:
        return sweep.due_kinds(session, now=clock.now())


def console_says_waiting(runtime: Runtime, document_id: str) -> tuple[bool, bool]:
    """Whether the console's documents list and the document's page say "waiting for metadata"."""
    from filerelay.api import create_app

    browser = create_app(runtime=runtime).test_client()
    assert sign_in(browser, VIEWER_KEY) == 302
    listing = browser.get("/ui/acme/production/documents").get_data(as_text=True)
    page = browser.get(f"/ui/acme/production/documents/{document_id}").get_data(as_text=True)
    return "waiting for metadata" in listing, "Waiting for metadata" in page


def test_a_delivery_waits_for_the_metadata_then_lands_at_the_templated_path(
    relay: Runtime, server: str, clock: FrozenClock, client: FlaskClient, tmp_path: Path
) -> None:
    wait_for_metadata(client)
    make_documents(server, clock, "DOC1")
    document_id = ids(relay)["DOC1"]
    folder = folder_delivery(relay, document_id)

    assert service.run(relay, folder.id) is False  # held back: not due, a worker finds nothing to claim
    assert "folder" not in due_kinds(relay, clock)  # and the sweeper wakes nothing
    assert console_says_waiting(relay, document_id) == (True, True)

    clock.advance(120)  # it arrives well within the wait
    assert put(client, document_id, LINK).status_code == 200

    woken = folder_delivery(relay, document_id)
    assert (woken.status, woken.next_attempt_at, woken.enqueued_at) == ("pending", clock.now(), clock.now())
    assert console_says_waiting(relay, document_id) == (False, False)
    assert service.run(relay, folder.id) is True  # the real worker path
    landed = tmp_path / "out" / "BKPF" / "100001000012342026" / "DOC1.pdf"
    assert landed.read_bytes() == b"%PDF DOC1"
    delivered = client.get(f"{BASE}/documents/{document_id}", headers=headers()).get_json()["data"]["attributes"]
    paths = {d["destination_id"]: (d["status"], d["path"]) for d in delivered["deliveries"]}
    assert paths["dest_folder"] == ("delivered", "/BKPF/100001000012342026/DOC1.pdf")


def test_when_the_wait_ends_first_the_delivery_goes_out_with_the_fallback_segment(
    relay: Runtime, server: str, clock: FrozenClock, client: FlaskClient, tmp_path: Path
) -> None:
    wait_for_metadata(client, "10m")
    make_documents(server, clock, "DOC1")  # the clock moves a minute after the create
    document_id = ids(relay)["DOC1"]
    folder = folder_delivery(relay, document_id)
    assert service.run(relay, folder.id) is False

    clock.advance(9 * 60)  # the wait is over: simply due
    assert console_says_waiting(relay, document_id) == (False, False)
    assert "folder" in due_kinds(relay, clock)
    assert service.run(relay, folder.id) is True

    assert (tmp_path / "out" / "_unknown" / "_unknown" / "DOC1.pdf").read_bytes() == b"%PDF DOC1"
    # Metadata arriving later changes the document, not a copy already delivered.
    assert put(client, document_id, LINK).status_code == 200
    assert folder_delivery(relay, document_id).status == "delivered"


def test_a_component_added_later_carries_the_documents_business_context_and_does_not_wait(
    relay: Runtime, server: str, clock: FrozenClock, client: FlaskClient, tmp_path: Path
) -> None:
    wait_for_metadata(client)
    make_documents(server, clock, "DOC1")
    assert post(client, {"entries": [{"repo_id": "Z1", "doc_id": "DOC1", "metadata": LINK}]}).status_code == 200
    sap = SapClient(f"{server}/archivelink/acme/production")
    assert sap.update("DOC1", "note", b"a note", "application/x-note").status == 200

    with session_scope(relay.sessions) as session:
        note = session.scalars(select(Document).where(Document.doc_id == "DOC1", Document.comp_id == "note")).one()
        assert (note.metadata_, note.sap_object_type, note.sap_object_id) == (LINK, "BKPF", "100001000012342026")
        note_id = note.id
    assert service.run(relay, folder_delivery(relay, note_id).id) is True  # due at once: nothing to wait for
    assert (tmp_path / "out" / "BKPF" / "100001000012342026" / "DOC1.note").read_bytes() == b"a note"


def test_without_a_wait_deliveries_go_out_at_once(
    relay: Runtime, server: str, clock: FrozenClock, client: FlaskClient
) -> None:
    make_documents(server, clock, "DOC1")
    document_id = ids(relay)["DOC1"]
    assert console_says_waiting(relay, document_id) == (False, False)
    assert service.run(relay, folder_delivery(relay, document_id).id) is True


# --- finding documents by business object ---------------------------------------------------------------


@pytest.fixture
def linked(relay: Runtime, server: str, clock: FrozenClock, client: FlaskClient) -> dict[str, str]:
    make_documents(server, clock, "INV1", "INV2", "INV3", "MM1", "PLAIN")
    objects = {
        "INV1": {"sap_object_type": "BKPF", "sap_object_id": "100001000012342026"},
        "INV2": {"sap_object_type": "BKPF", "sap_object_id": "100001000012342026"},
        "INV3": {"sap_object_type": "BKPF", "sap_object_id": "100001000099992026"},
        "MM1": {"sap_object_type": "BUS2081", "sap_object_id": "100001000012342026"},
    }
    batch = [{"repo_id": "Z1", "doc_id": d, "metadata": m} for d, m in objects.items()]
    assert post(client, {"entries": batch}).get_json()["meta"]["changed"] == 4
    return ids(relay)


def listed(client: FlaskClient, query: str) -> list[str]:
    reply = client.get(f"{BASE}/documents?{query}", headers=headers(VIEWER_KEY))
    assert reply.status_code == 200, reply.get_json()
    return [d["attributes"]["doc_id"] for d in reply.get_json()["data"]]


def test_the_documents_api_filters_by_business_object(linked: dict[str, str], client: FlaskClient) -> None:
    assert listed(client, "sap_object_type=BKPF") == ["INV3", "INV2", "INV1"]
    assert listed(client, "sap_object_type=BKPF&sap_object_id=100001000012342026") == ["INV2", "INV1"]
    assert listed(client, "sap_object_type=BUS2081&sap_object_id=100001000012342026") == ["MM1"]
    assert listed(client, "sap_object_type=BKPF&sap_object_id=100001000012342026&repo_id=Z1") == ["INV2", "INV1"]
    assert listed(client, "sap_object_type=BKPF&repo_id=Z2") == []
    assert listed(client, "sap_object_type=VBRK") == []
    for bad in ("sap_object_id=100001000012342026", "sap_object_type=bkpf", "sap_object_type=" + "A" * 11):
        reply = client.get(f"{BASE}/documents?{bad}", headers=headers(VIEWER_KEY))
        assert reply.status_code == 400, bad


def test_the_console_filters_by_business_object(linked: dict[str, str], relay: Runtime) -> None:
    from filerelay.api import create_app

    browser = create_app(runtime=relay).test_client()
    assert sign_in(browser, VIEWER_KEY) == 302
    page = browser.get("/ui/acme/production/documents?sap_object_type=BKPF&sap_object_id=100001000012342026").get_data(
        as_text=True
    )
    shown = {doc_id for doc_id, document_id in linked.items() if f'data-document="{document_id}"' in page}
    assert shown == {"INV1", "INV2"}
    assert 'name="sap_object_type" value="BKPF"' in page
    assert "2 documents match" in page
    invalid = browser.get("/ui/acme/production/documents?sap_object_id=4711")
    assert invalid.status_code == 400
