"""The Files API for pull integrations: file information and export status (tests/support/shapes/) field for
field, the change feed as a work list (only files wired to a pull destination; what brings a file back and
what does not) and its cursor, filename and type, content streaming, soft delete, the `pull` destination
end to end, roles, isolation and every 400."""

from __future__ import annotations

import datetime as dt
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from filerelay import files
from filerelay.clock import FrozenClock
from filerelay.db.models import Delivery, Destination, Document, DocumentStatus
from filerelay.db.session import session_scope
from filerelay.delivery import service, sweep
from filerelay.files import CURSOR_PATTERN, Cursor, FileStatus, file_status
from filerelay.runtime import Runtime
from tests.support.api_shapes import assert_same_shape, examples
from tests.support.keys import ADMIN_KEY
from tests.support.sapclient import SapClient
from tests.support.wakeups import woken_kinds
from tests.support.workspaces import configure

VIEWER_KEY = "fr_live_files_viewer_0123456789"
MEMBER_KEY = "fr_live_files_member_0123456789"
OTHER_KEY = "fr_live_files_other_01234567890"
FILES = "/api/acme/production/files"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
DOC = "361A524A3ECB5459E0000800099245EC"
SECOND = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
# SAP business context as an enrichment stores it: object type and key, ArchiveLink document type.
SAP_METADATA = {"sap_object_type": "BKPF", "sap_object_id": "1000012345672026", "ar_object": "ZINVOICE"}
MILLISECOND = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

MORE = textwrap.dedent(
    """
    workspaces:
      - owner: acme
        slug: production
        retry: {max_retries: 3, ttl: 1h, backoff_base: 1s, backoff_max: 10s}
        api_keys:
          - {name: erp-reader, role: viewer, key: "%s"}
          - {name: erp, role: member, key: "%s"}
        destinations:
          - {id: dest_folder, name: Local Folder, kind: folder, root: "${OUT_DIR}",
             path: "/{repo_id}/{doc_id}_{comp_id}{ext}"}
          - {id: dest_erp, name: ERP, kind: pull, path: "/{repo_id}/{doc_id}_{comp_id}{ext}"}
          - {id: dest_bi, name: Reporting, kind: pull, path: "/{repo_id}/{doc_id}_{comp_id}{ext}"}
        repositories:
          - {id: P1, description: Pulled by the ERP, signature: none, destinations: [dest_erp]}
          - {id: P2, description: Folder and ERP, signature: none, destinations: [dest_folder, dest_erp]}
          - {id: P3, description: Pulled by reporting, signature: none, destinations: [dest_bi]}
          - {id: F1, description: Folder only, signature: none, destinations: [dest_folder]}
      - owner: globex
        slug: main
        api_keys:
          - {name: ops, role: admin, key: "%s"}
        repositories:
          - {id: G1, description: Theirs, signature: none, destinations: []}
    """
) % (VIEWER_KEY, MEMBER_KEY, OTHER_KEY)


@pytest.fixture
def relay(configured: Runtime, tmp_path: Path) -> Runtime:
    """acme/production as conftest builds it, plus viewer and member keys, a pull destination (the ERP)
    wired to P1 (alone) and P2 (beside the folder), a second one (reporting) wired to P3, F1 wired to the
    folder alone; and a second workspace."""
    env = {"OUT_DIR": str(tmp_path / "out")}
    return configure(configured, MORE, env)


@pytest.fixture
def archive(server: str, relay: Runtime) -> SapClient:
    return SapClient(server + "/archivelink/acme/production")


def auth(key: str = ADMIN_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def create(
    sap: SapClient,
    runtime: Runtime,
    repo: str,
    doc_id: str = DOC,
    content: bytes = PDF,
    comp_id: str = "data",
    content_type: str = "application/pdf",
) -> str:
    """A document created the way SAP creates one; its file id."""
    sap.cont_rep = repo
    reply = sap.create(doc_id, comp_id, content, content_type)
    assert reply.status == 201, reply.error
    with session_scope(runtime.sessions) as session:
        return session.scalars(
            select(Document.id).where(Document.doc_id == doc_id, Document.deleted_at.is_(None))
        ).one()


def document(runtime: Runtime, document_id: str) -> Document:
    with session_scope(runtime.sessions) as session:
        return session.get_one(Document, document_id)


def deliveries(runtime: Runtime, document_id: str) -> dict[str, Delivery]:
    """The document's deliveries by destination kind."""
    with session_scope(runtime.sessions) as session:
        rows = session.execute(
            select(Delivery, Destination.kind).join(Destination).where(Delivery.document_id == document_id)
        ).all()
        return {kind: delivery for delivery, kind in rows}


def report(client: FlaskClient, document_id: str, status: str, *messages: str, key: str = MEMBER_KEY) -> TestResponse:
    body = {"integrationExportStatus": status, "integrationExportMessages": list(messages)}
    return client.patch(f"{FILES}/{document_id}", json=body, headers=auth(key))


def info(client: FlaskClient, document_id: str) -> dict[str, Any]:
    response = client.get(f"{FILES}/{document_id}", headers=auth(VIEWER_KEY))
    assert response.status_code == 200, response.json
    data: dict[str, Any] = response.json["data"]  # type: ignore[index]
    return data


def listing(client: FlaskClient, **params: str | int) -> dict[str, Any]:
    """One page of the change feed, as answered."""
    response = client.get(FILES, query_string=params, headers=auth(VIEWER_KEY))
    assert response.status_code == 200, response.json
    body: dict[str, Any] = response.json  # type: ignore[assignment]
    assert body["success"] is True
    return body


def poll(client: FlaskClient, **params: str | int) -> tuple[list[str], str | None]:
    """One page of the change feed: the file ids, and next_cursor."""
    body = listing(client, **params)
    return [f["id"] for f in body["data"]], body["next_cursor"]


def assert_error(response: TestResponse, status: int, **source: str) -> dict[str, Any]:
    """The contract's error shape (docs/architecture.md#http-surface), with the offending parameter or pointer."""
    assert response.status_code == status, response.get_data(as_text=True)
    body: dict[str, Any] = response.json  # type: ignore[assignment]
    assert list(body) == ["errors"]
    entry: dict[str, Any] = body["errors"][0]
    assert entry["status"] == str(status)
    assert {"code", "title", "detail"} <= set(entry)
    if source:
        assert entry["source"] == source, entry
    return entry


# --- file information and export status, field for field ---------------------------------------------


def iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_file_info_has_the_reference_shape_and_values(
    client: FlaskClient, archive: SapClient, relay: Runtime, clock: FrozenClock
) -> None:
    sent_at = clock.now()
    document_id = create(archive, relay, "P1")
    # The reference's `type` is a document type ("invoice"). ArchiveLink carries none; SAP's document type
    # (AR_OBJECT) arrives as metadata, which is also what `processed_data` shows.
    with session_scope(relay.sessions) as session:
        session.get_one(Document, document_id).metadata_ = dict(SAP_METADATA)
    clock.advance(90)
    reported_at = clock.now()
    assert report(client, document_id, "completed", "Imported as FI document 1000012345").status_code == 200

    response = client.get(f"{FILES}/{document_id}", headers=auth(VIEWER_KEY))
    assert response.status_code == 200
    (seed,) = examples("files")[:1]
    # The export report's fields (the PATCH's `exportInfo`) are the one addition.
    assert_same_shape(response.json, seed, additions={"$.data": {"exportInfo"}})
    assert_same_shape(response.json["data"]["exportInfo"], examples("export")[1]["exportInfo"])  # type: ignore[index]
    assert response.json["success"] is True  # type: ignore[index]
    data = response.json["data"]  # type: ignore[index]
    assert data == {
        "id": document_id,
        "filename": f"{DOC}_data.pdf",
        "file_id": f"{document_id}_{DOC}_data.pdf",
        "type": SAP_METADATA["ar_object"],
        "status": "completed",
        "size": len(PDF),
        "created_at": iso(sent_at),
        "completed_at": iso(reported_at),  # the pull delivery completed when the ERP reported it
        "processed_data": SAP_METADATA,
        "exportInfo": {
            "integrationExportStatus": "completed",
            "integrationExportMessages": ["Imported as FI document 1000012345"],
            "integrationExportUpdatedAt": "2026-04-04T10:31:30.000Z",
        },
    }
    # The seed's timestamps are whole seconds with a Z, the form iso() writes.
    assert SECOND.match(seed["data"]["created_at"])
    assert SECOND.match(seed["data"]["completed_at"])


def set_metadata(runtime: Runtime, document_id: str, metadata: dict[str, Any]) -> None:
    with session_scope(runtime.sessions) as session:
        session.get_one(Document, document_id).metadata_ = metadata


def test_file_type_is_sap_document_type_else_the_format(
    client: FlaskClient, archive: SapClient, relay: Runtime
) -> None:
    document_id = create(archive, relay, "P1")
    data = info(client, document_id)
    assert (data["type"], data["processed_data"]) == ("pdf", {})
    set_metadata(relay, document_id, {"sap_object_type": "BKPF", "document_type": "ZDELNOTE"})
    assert info(client, document_id)["type"] == "pdf"  # no AR_OBJECT: other keys name no type
    set_metadata(relay, document_id, {"ar_object": "ZINVOICE", "document_type": "ZDELNOTE"})
    assert info(client, document_id)["type"] == "ZINVOICE"
    assert listing(client)["data"][0]["type"] == "ZINVOICE"  # the list shows the same file
    set_metadata(relay, document_id, {"ar_object": "  "})
    assert info(client, document_id)["type"] == "pdf"


def test_filename_is_the_components_own_name_when_it_has_one(
    client: FlaskClient, archive: SapClient, relay: Runtime
) -> None:
    """A component named like a file (GOS attachments arrive so) keeps its name: never `…_scan.tif.tif`."""
    tif = b"II*\x00" + bytes(64)
    scan = create(archive, relay, "P1", "SCANNED", tif, comp_id="scan.tif", content_type="image/tiff")
    plain = create(archive, relay, "P1", "PLAIN", PDF)
    data = info(client, scan)
    assert (data["filename"], data["file_id"], data["type"]) == ("scan.tif", f"{scan}_scan.tif", "tif")
    assert info(client, plain)["filename"] == "PLAIN_data.pdf"
    assert {f["id"]: f["filename"] for f in listing(client)["data"]} == {scan: "scan.tif", plain: "PLAIN_data.pdf"}
    content = client.get(f"{FILES}/{scan}/content", headers=auth(VIEWER_KEY))
    assert content.headers["Content-Disposition"] == "attachment; filename=scan.tif"
    assert content.get_data() == tif


@pytest.mark.parametrize(
    ("comp_id", "content_type", "expected"),
    [
        ("scan.tif", "image/tiff", "scan.tif"),
        ("Invoice 4711.PDF", "application/pdf", "Invoice 4711.PDF"),
        ("report.pdf", "image/tiff", "report.pdf"),  # its own name, whatever SAP called the type
        ("data", "application/pdf", "4711_data.pdf"),
        ("data1", "image/tiff", "4711_data1.tif"),
        ("v1.2", "application/pdf", "4711_v1.2.pdf"),  # no letter in the "extension": not a file name
        (".tif", "image/tiff", "4711_.tif.tif"),  # no stem
        ("scan.", "image/tiff", "4711_scan..tif"),
        ("a/b.pdf", "application/pdf", "a_b.pdf"),  # never a path separator
    ],
)
def test_filename_rules(comp_id: str, content_type: str, expected: str) -> None:
    assert files.filename(Document(doc_id="4711", comp_id=comp_id, content_type=content_type)) == expected


def test_patch_takes_the_reference_request_and_answers_its_response(
    client: FlaskClient, archive: SapClient, relay: Runtime
) -> None:
    request_example, response_example = examples("export")[:2]
    document_id = create(archive, relay, "P1")

    response = client.patch(f"{FILES}/{document_id}", json=request_example, headers=auth(MEMBER_KEY))

    assert response.status_code == 200, response.json
    assert_same_shape(response.json, response_example)
    assert response.json == {
        "fileId": document_id,
        "exportInfo": {
            "integrationExportStatus": "completed",
            "integrationExportMessages": ["Successfully synced to ERP system"],
            "integrationExportUpdatedAt": "2026-04-04T10:30:00.000Z",
        },
    }
    assert MILLISECOND.match(response_example["exportInfo"]["integrationExportUpdatedAt"])
    stored = document(relay, document_id)
    assert (stored.export_status, stored.export_messages) == ("completed", ["Successfully synced to ERP system"])
    assert stored.export_updated_at == relay.clock.now()


def test_patch_without_messages_clears_them(client: FlaskClient, archive: SapClient, relay: Runtime) -> None:
    document_id = create(archive, relay, "P1")
    assert report(client, document_id, "error", "bad invoice number").status_code == 200
    response = client.patch(
        f"{FILES}/{document_id}", json={"integrationExportStatus": "empty"}, headers=auth(MEMBER_KEY)
    )
    assert response.status_code == 200
    assert response.json["exportInfo"]["integrationExportMessages"] == []  # type: ignore[index]
    assert response.json["exportInfo"]["integrationExportStatus"] == "empty"  # type: ignore[index]


# --- the change feed ----------------------------------------------------------------------------------


def test_feed_lists_only_files_wired_to_a_pull_destination(
    client: FlaskClient, archive: SapClient, relay: Runtime, clock: FrozenClock
) -> None:
    made = []
    for repo in ("P1", "P2", "F1", "Z2", "P3"):  # P2: a folder and the ERP; Z2: nothing
        made.append(create(archive, relay, repo, f"IN{repo}"))
        clock.advance(1)
    erp, beside, folder, unwired, reporting = made
    for not_pulled in (folder, unwired):  # still files, just in nobody's work list
        assert info(client, not_pulled)["id"] == not_pulled

    assert poll(client)[0] == [erp, beside, reporting]  # every pull destination's
    assert poll(client, destination_id="dest_erp")[0] == [erp, beside]
    assert poll(client, destination_id="dest_bi")[0] == [reporting]

    # Each file carries its export status, in the list as in GET /files/{id}.
    clock.advance(1)
    assert report(client, beside, "error", "Invoice number format invalid").status_code == 200
    listed = {f["id"]: f["exportInfo"] for f in listing(client, destination_id="dest_erp")["data"]}
    assert listed == {
        erp: {"integrationExportStatus": "empty", "integrationExportMessages": [], "integrationExportUpdatedAt": None},
        beside: {
            "integrationExportStatus": "error",
            "integrationExportMessages": ["Invoice number format invalid"],
            "integrationExportUpdatedAt": "2026-04-04T10:30:06.000Z",
        },
    }
    assert info(client, beside)["exportInfo"] == listed[beside]


@pytest.mark.parametrize(
    ("destination_id", "status", "code"),
    [
        ("dest_folder", 400, "not_a_pull_destination"),  # workers push to it: there is no feed
        ("dest_nope", 404, "not_found"),
        ("", 400, "bad_request"),
        ("d" * 65, 400, "bad_request"),
    ],
)
def test_destination_id_must_name_a_pull_destination(
    client: FlaskClient, archive: SapClient, relay: Runtime, destination_id: str, status: int, code: str
) -> None:
    create(archive, relay, "P2")
    response = client.get(FILES, query_string={"destination_id": destination_id}, headers=auth(VIEWER_KEY))
    entry = assert_error(response, status, parameter="destination_id")
    assert entry["code"] == code
    if status != 400 or code != "bad_request":
        assert destination_id in entry["detail"]


def test_another_workspaces_pull_destination_is_unknown(client: FlaskClient, relay: Runtime) -> None:
    response = client.get(FILES, query_string={"destination_id": "dest_erp"}, headers=auth(OTHER_KEY))
    assert_error(response, 404)  # the key's workspace is acme's only
    theirs = client.get("/api/globex/main/files", query_string={"destination_id": "dest_erp"}, headers=auth(OTHER_KEY))
    assert_error(theirs, 404, parameter="destination_id")


def test_a_report_does_not_come_back_but_a_retry_new_content_and_a_delete_do(
    client: FlaskClient, archive: SapClient, relay: Runtime, clock: FrozenClock
) -> None:
    """The integration's work list: what it reported itself is not handed back to it; what asks it to
    export again (a manual retry, new content from SAP) and a deletion are."""
    file_id = create(archive, relay, "P1")
    start = clock.now()
    assert poll(client) == ([file_id], poll(client)[1])
    _, cursor = poll(client)
    stamped = document(relay, file_id).change_seq

    clock.advance(10)
    assert report(client, file_id, "exporting").status_code == 200
    assert report(client, file_id, "error", "Vendor 4711 unknown").status_code == 200
    assert poll(client, cursor=cursor or "") == ([], cursor)
    assert poll(client, updatedAfter=iso(start))[0] == []  # nor to a poller that goes by time
    assert document(relay, file_id).change_seq == stamped
    assert info(client, file_id)["status"] == "failed"  # while GET /files/{id} shows the report
    assert info(client, file_id)["exportInfo"]["integrationExportStatus"] == "error"

    # An operator retries it: the integration gets it back, its last report cleared.
    clock.advance(10)
    retried = client.post(f"/api/acme/production/documents/{file_id}/retry", headers=auth(ADMIN_KEY))
    assert retried.status_code == 200, retried.json
    body = listing(client, cursor=cursor or "")
    assert [f["id"] for f in body["data"]] == [file_id]
    assert body["data"][0]["status"] == "pending"
    assert body["data"][0]["exportInfo"] == {
        "integrationExportStatus": "empty",
        "integrationExportMessages": [],
        "integrationExportUpdatedAt": "2026-04-04T10:30:20.000Z",
    }
    cursor = body["next_cursor"]

    # It reports completion: not back. SAP replaces the content: back, to be exported again.
    clock.advance(10)
    assert report(client, file_id, "completed").status_code == 200
    assert poll(client, cursor=cursor or "") == ([], cursor)
    clock.advance(10)
    archive.cont_rep = "P1"
    assert archive.update(DOC, "data", PDF + b"v2").status == 200
    body = listing(client, cursor=cursor or "")
    assert [f["id"] for f in body["data"]] == [file_id]
    assert (body["data"][0]["size"], body["data"][0]["exportInfo"]["integrationExportStatus"]) == (
        len(PDF) + 2,
        "empty",
    )
    cursor = body["next_cursor"]

    # Deleted: back once more, as deleted.
    clock.advance(10)
    assert client.delete(f"{FILES}/{file_id}", headers=auth(ADMIN_KEY)).status_code == 204
    body = listing(client, cursor=cursor or "")
    assert [(f["id"], f["status"]) for f in body["data"]] == [(file_id, "deleted")]


def test_a_new_generation_is_handed_back_even_mid_export(
    client: FlaskClient, archive: SapClient, relay: Runtime, clock: FrozenClock
) -> None:
    file_id = create(archive, relay, "P2")
    _, cursor = poll(client, destination_id="dest_erp")
    clock.advance(1)
    assert report(client, file_id, "exporting").status_code == 200
    assert poll(client, destination_id="dest_erp", cursor=cursor or "") == ([], cursor)
    clock.advance(1)
    archive.cont_rep = "P2"
    assert archive.update(DOC, "data", b"%PDF-1.4 v2").status == 200
    seen, _ = poll(client, destination_id="dest_erp", cursor=cursor or "")
    assert seen == [file_id]


def test_the_cursor_moves_past_changes_no_pull_destination_gets(
    client: FlaskClient, archive: SapClient, relay: Runtime
) -> None:
    """A feed whose files are few among the workspace's: a poll walks the others once, not on every poll,
    and what comes after them is still seen."""
    pulled = create(archive, relay, "P1", "PULLED")
    seen, cursor = poll(client)
    assert seen == [pulled]
    for n in range(5):
        create(archive, relay, "F1", f"PUSHED{n}")
    empty, past = poll(client, cursor=cursor or "")
    assert empty == []
    before, after = Cursor.decode(cursor or "").seq, Cursor.decode(past or "").seq
    assert before is not None
    assert after == before + 5
    assert past is not None
    assert poll(client, cursor=past) == ([], past)
    later = create(archive, relay, "P3", "LATER")
    assert poll(client, cursor=past)[0] == [later]
    assert poll(client, cursor=past, destination_id="dest_erp")[0] == []


def test_cursor_pages_through_identical_timestamps_without_missing_or_repeating(
    client: FlaskClient, archive: SapClient, relay: Runtime, clock: FrozenClock
) -> None:
    # The clock is frozen: all five share one updated_at, so only the id can order them.
    created = sorted(create(archive, relay, "P1", f"DOC{n}") for n in range(5))
    assert len({document(relay, d).updated_at for d in created}) == 1
    seen: list[str] = []
    cursor: str | None = None
    pages = []
    while True:
        params: dict[str, str | int] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page, next_cursor = poll(client, **params)
        pages.append(page)
        seen += page
        if len(page) < 2:
            break
        cursor = next_cursor
    assert seen == created
    assert [len(p) for p in pages] == [2, 2, 1]
    assert next_cursor is not None

    # A poller that stored the cursor comes back: nothing new, and the position holds.
    assert poll(client, cursor=next_cursor) == ([], next_cursor)
    clock.advance(5)
    assert client.delete(f"{FILES}/{created[0]}", headers=auth(ADMIN_KEY)).status_code == 204
    changed, after_change = poll(client, cursor=next_cursor)
    assert changed == [created[0]]
    assert poll(client, cursor=after_change or "") == ([], after_change)


def test_feed_is_oldest_change_first_and_updated_after_is_exclusive(
    client: FlaskClient, archive: SapClient, relay: Runtime, clock: FrozenClock
) -> None:
    start = clock.now()
    first = create(archive, relay, "P1", "FIRST")
    clock.advance(10)
    second = create(archive, relay, "P1", "SECOND")
    clock.advance(10)
    assert archive.update("FIRST", "data", b"%PDF-1.4 v2").status == 200  # `first` changed last

    assert poll(client)[0] == [second, first]
    assert poll(client, updatedAfter=start.isoformat())[0] == [second, first]
    assert poll(client, updatedAfter="2026-04-04T10:30:00Z")[0] == [second, first]
    assert poll(client, updatedAfter="2026-04-04T10:30:10Z")[0] == [first]
    assert poll(client, updatedAfter="2026-04-04T10:30:20Z")[0] == []
    assert poll(client, updatedAfter="2026-04-04")[0] == [second, first]
    assert poll(client, updatedAfter="2026-04-05")[0] == []
    # Both bounds apply together.
    _, cursor = poll(client, limit=1)
    assert poll(client, cursor=cursor or "", updatedAfter="2026-04-04T10:30:00Z")[0] == [first]


def test_a_change_committed_after_a_later_stamped_one_is_not_skipped(
    client: FlaskClient, archive: SapClient, relay: Runtime, clock: FrozenClock
) -> None:
    """A transaction stamps updated_at when it writes and becomes visible when it commits: a change
    stamped earlier but committed later must not fall behind a poller's cursor."""
    early, late = create(archive, relay, "P1", "EARLY"), create(archive, relay, "P1", "LATE")
    _, cursor = poll(client)
    clock.advance(10)
    assert client.delete(f"{FILES}/{late}", headers=auth(ADMIN_KEY)).status_code == 204  # stamped t+10, first
    seen, cursor = poll(client, cursor=cursor or "")
    assert seen == [late]
    clock.advance(-5)
    assert client.delete(f"{FILES}/{early}", headers=auth(ADMIN_KEY)).status_code == 204  # t+5, after
    assert document(relay, early).updated_at < document(relay, late).updated_at
    assert poll(client, cursor=cursor or "")[0] == [early]


def test_interleaved_transactions_are_both_seen(
    client: FlaskClient, archive: SapClient, relay: Runtime, clock: FrozenClock
) -> None:
    """The same on a database where two writers really overlap: the first stamps its change, the
    second stamps a later one and commits, a poller reads, and only then the first commits."""
    if relay.settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite runs one writer at a time: the test above covers it by the clock")
    first, second = create(archive, relay, "P1", "FIRST"), create(archive, relay, "P1", "SECOND")
    _, cursor = poll(client)
    with session_scope(relay.sessions) as slow:
        clock.advance(1)
        held = files.find(slow, workspace_id=workspace_id(relay), file_id=first, lock=True)
        assert held is not None
        files.soft_delete(slow, held, now=clock.now())
        slow.flush()  # written, not committed
        clock.advance(1)
        assert client.delete(f"{FILES}/{second}", headers=auth(ADMIN_KEY)).status_code == 204  # committed now
        seen, cursor = poll(client, cursor=cursor or "")
        assert seen == [second]
    # `slow` committed on leaving the block: its earlier-stamped change comes next.
    assert poll(client, cursor=cursor or "")[0] == [first]


def test_a_delivery_by_a_worker_brings_the_file_back_past_the_cursor(
    client: FlaskClient, archive: SapClient, relay: Runtime, clock: FrozenClock
) -> None:
    """The worker writes its verdict and the roll-up with plain UPDATEs (no ORM hook sees them): the
    document must still leave its old place in the feed, so a poller past it sees it delivered."""
    file_id = create(archive, relay, "P2", "BYWORKER")
    assert report(client, file_id, "completed").status_code == 200  # the ERP is done; the folder is not
    seen, cursor = poll(client)
    assert seen == [file_id]
    assert info(client, file_id)["status"] == "pending"
    clock.advance(1)
    assert service.run(relay, deliveries(relay, file_id)["folder"].id)

    seen, _ = poll(client, cursor=cursor or "")
    assert seen == [file_id]
    assert info(client, file_id)["status"] == "completed"


def workspace_id(runtime: Runtime) -> int:
    with session_scope(runtime.sessions) as session:
        return session.scalars(select(Document.workspace_id)).first() or 0


def test_feed_defaults_to_fifty_and_accepts_a_hundred(client: FlaskClient, relay: Runtime, archive: SapClient) -> None:
    archive.cont_rep = "P1"
    for n in range(51):
        assert archive.create(f"MANY{n:02d}", "data", b"x", "text/plain").status == 201
    assert len(poll(client)[0]) == 50
    assert len(poll(client, limit=100)[0]) == 51


# --- soft delete ---------------------------------------------------------------------------------


def test_delete_is_soft_and_the_feed_reports_it(
    client: FlaskClient, archive: SapClient, relay: Runtime, clock: FrozenClock
) -> None:
    document_id = create(archive, relay, "P1")
    _, cursor = poll(client)
    clock.advance(1)

    response = client.delete(f"{FILES}/{document_id}", headers=auth(ADMIN_KEY))

    assert response.status_code == 204
    assert response.get_data() == b""
    assert info(client, document_id)["status"] == "deleted"
    assert poll(client, cursor=cursor or "")[0] == [document_id]
    assert document(relay, document_id).deleted_at == clock.now()
    documents = client.get("/api/acme/production/documents", headers=auth(VIEWER_KEY)).json
    assert documents["data"] == []  # type: ignore[index]
    assert client.get(f"/api/acme/production/documents/{document_id}", headers=auth()).status_code == 404
    assert archive.get(DOC).status == 404  # gone from SAP's view too
    # Deleted is final: deleting again changes nothing; its content and export status are closed.
    assert client.delete(f"{FILES}/{document_id}", headers=auth(ADMIN_KEY)).status_code == 204
    assert_error(client.get(f"{FILES}/{document_id}/content", headers=auth()), 409)
    assert_error(report(client, document_id, "completed"), 409)


# --- content -------------------------------------------------------------------------------------


def test_content_streams_from_staging_with_its_headers(client: FlaskClient, archive: SapClient, relay: Runtime) -> None:
    document_id = create(archive, relay, "P1")

    response = client.get(f"{FILES}/{document_id}/content", headers=auth(VIEWER_KEY))

    assert response.status_code == 200
    assert response.is_streamed
    assert response.get_data() == PDF
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Content-Length"] == str(len(PDF))
    assert response.headers["Content-Disposition"] == f"attachment; filename={DOC}_data.pdf"
    # HEAD never reads the body; closing the response (as every WSGI server does) releases the file.
    with client.head(f"{FILES}/{document_id}/content", headers=auth(VIEWER_KEY)) as head:
        assert (head.status_code, head.get_data(), head.headers["Content-Length"]) == (200, b"", str(len(PDF)))


def test_content_is_read_back_from_the_folder_after_staging_is_purged(
    client: FlaskClient, archive: SapClient, relay: Runtime, tmp_path: Path
) -> None:
    document_id = create(archive, relay, "F1")
    assert service.run(relay, deliveries(relay, document_id)["folder"].id, rand=lambda: 0.5)
    with session_scope(relay.sessions) as session:
        keys = sweep.purgeable(session, now=relay.clock.now(), retention_seconds=0, limit=10)
    assert len(keys) == 1
    relay.staging.delete(keys[0])

    response = client.get(f"{FILES}/{document_id}/content", headers=auth(VIEWER_KEY))

    assert response.status_code == 200
    assert response.get_data() == PDF
    assert response.headers["Content-Length"] == str(len(PDF))
    # Once no copy can be read any more, the answer says so.
    (tmp_path / "out" / "F1" / f"{DOC}_data.pdf").unlink()
    entry = assert_error(client.get(f"{FILES}/{document_id}/content", headers=auth(VIEWER_KEY)), 409)
    assert entry["code"] == "content_unavailable"


def test_content_of_a_discarded_document_is_409(client: FlaskClient, archive: SapClient, relay: Runtime) -> None:
    document_id = create(archive, relay, "Z2")
    assert_error(client.get(f"{FILES}/{document_id}/content", headers=auth(VIEWER_KEY)), 409)


# --- the pull destination, end to end --------------------------------------------------------------


def test_pull_delivery_waits_for_the_integration_and_follows_its_reports(
    client: FlaskClient, archive: SapClient, relay: Runtime, clock: FrozenClock
) -> None:
    document_id = create(archive, relay, "P1")
    pull = deliveries(relay, document_id)["pull"]
    assert (pull.status, document(relay, document_id).status) == ("pending", "pending")
    assert woken_kinds(relay) == []  # nothing for a worker to do
    assert not service.run(relay, pull.id)  # and a stray wake-up claims nothing
    with session_scope(relay.sessions) as session:
        assert service.claim_due(session, kinds=["pull"], now=clock.now(), lease_seconds=60, limit=10) == []
        assert sweep.due_kinds(session, now=clock.now()) == []  # nor does the sweeper wake anything
    assert relay.enqueuer.wake(["pull"]) == 0
    assert woken_kinds(relay) == []
    assert info(client, document_id)["status"] == "pending"

    assert report(client, document_id, "exporting").status_code == 200
    assert deliveries(relay, document_id)["pull"].status == "delivering"
    assert document(relay, document_id).status == "pending"
    assert info(client, document_id)["status"] == "processing"
    clock.advance(relay.settings.lease_seconds + 60)
    with session_scope(relay.sessions) as session:
        assert sweep.recover_expired_leases(session, now=clock.now(), limit=10) == 0
    assert deliveries(relay, document_id)["pull"].status == "delivering"

    assert report(client, document_id, "completed", "imported").status_code == 200
    pull = deliveries(relay, document_id)["pull"]
    assert (pull.status, pull.delivered_at, pull.path) == ("delivered", clock.now(), f"/P1/{DOC}_data.pdf")
    assert document(relay, document_id).status == "delivered"
    listed = client.get(f"/api/acme/production/documents/{document_id}", headers=auth()).json
    assert listed["data"]["attributes"]["status"] == "delivered"  # type: ignore[index]
    assert listed["data"]["attributes"]["deliveries"][0]["path"] == f"/P1/{DOC}_data.pdf"  # type: ignore[index]

    assert report(client, document_id, "error", "Invoice number format invalid", "Expected INV-YYYY-NNNN").status_code
    pull = deliveries(relay, document_id)["pull"]
    assert (pull.status, pull.last_error) == ("failed", "Invoice number format invalid; Expected INV-YYYY-NNNN")
    assert document(relay, document_id).status == "failed"
    assert info(client, document_id)["status"] == "failed"

    clock.advance(60)
    assert report(client, document_id, "empty").status_code == 200
    pull = deliveries(relay, document_id)["pull"]
    assert (pull.status, pull.last_error, pull.delivered_at) == ("pending", None, None)
    assert pull.expires_at == clock.now() + dt.timedelta(hours=1)  # a fresh TTL from the reset
    assert document(relay, document_id).status == "pending"
    assert info(client, document_id)["status"] == "pending"


def test_staged_bytes_are_kept_for_the_retention_after_the_integrations_report(
    client: FlaskClient, archive: SapClient, relay: Runtime, clock: FrozenClock
) -> None:
    """A report completes the document without stamping it changed: the retention still counts from it, so
    the integration can fetch the bytes again for that long (staging is the only copy FileRelay has)."""
    file_id = create(archive, relay, "P1")
    clock.advance(7200)  # the ERP takes its time
    assert report(client, file_id, "completed").status_code == 200

    def purgeable() -> list[str]:
        with session_scope(relay.sessions) as session:
            return sweep.purgeable(session, now=clock.now(), retention_seconds=3600, limit=10)

    assert purgeable() == []
    clock.advance(3600)
    assert purgeable() == [file_id]


def test_a_document_beside_a_pull_destination_is_delivered_only_when_the_erp_says_so(
    client: FlaskClient, archive: SapClient, relay: Runtime
) -> None:
    document_id = create(archive, relay, "P2")
    assert woken_kinds(relay) == ["folder"]
    assert service.run(relay, deliveries(relay, document_id)["pull"].id) is False  # never a worker's to take
    assert service.run(relay, deliveries(relay, document_id)["folder"].id, rand=lambda: 0.5)
    assert document(relay, document_id).status == "pending"

    assert report(client, document_id, "completed").status_code == 200

    by_kind = deliveries(relay, document_id)
    assert {kind: d.status for kind, d in by_kind.items()} == {"folder": "delivered", "pull": "delivered"}
    assert document(relay, document_id).status == "delivered"


def assert_failed_at_its_ttl(client: FlaskClient, relay: Runtime, clock: FrozenClock, document_id: str) -> None:
    """An hour on (the workspace's TTL), the sweeper fails the pull delivery, and the document with it."""
    clock.advance(3600)
    with session_scope(relay.sessions) as session:
        assert sweep.expire(session, now=clock.now(), limit=10) == 1
    assert deliveries(relay, document_id)["pull"].status == "failed"
    assert info(client, document_id)["status"] == "failed"


def test_a_pull_delivery_nobody_picks_up_fails_at_its_ttl(
    client: FlaskClient, archive: SapClient, relay: Runtime, clock: FrozenClock
) -> None:
    document_id = create(archive, relay, "P1")
    assert_failed_at_its_ttl(client, relay, clock, document_id)


def test_a_pull_delivery_its_integration_left_exporting_fails_at_its_ttl(
    client: FlaskClient, archive: SapClient, relay: Runtime, clock: FrozenClock
) -> None:
    """`exporting` holds no lease: nothing else would ever end it if the ERP never reports again."""
    document_id = create(archive, relay, "P1")
    assert report(client, document_id, "exporting").status_code == 200
    assert deliveries(relay, document_id)["pull"].status == "delivering"
    assert_failed_at_its_ttl(client, relay, clock, document_id)


def test_a_report_on_a_document_without_pull_destination_only_records_it(
    client: FlaskClient, archive: SapClient, relay: Runtime
) -> None:
    document_id = create(archive, relay, "F1")
    assert report(client, document_id, "completed").status_code == 200
    assert deliveries(relay, document_id)["folder"].status == "pending"
    assert document(relay, document_id).status == "pending"
    assert document(relay, document_id).export_status == "completed"


# --- the status mapping ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "delivery_statuses", "deleted", "expected"),
    [
        ("pending", ["pending"], False, "pending"),
        ("pending", ["pending", "delivering"], False, "processing"),
        ("retrying", ["retrying", "delivered"], False, "processing"),
        ("failed", ["failed"], False, "failed"),
        ("delivered", ["delivered"], False, "completed"),
        ("discarded", [], False, "completed"),
        ("delivered", ["delivered"], True, "deleted"),
        ("failed", ["failed"], True, "deleted"),
    ],
)
def test_file_status_from_document_status(
    status: str, delivery_statuses: list[str], deleted: bool, expected: str
) -> None:
    now = dt.datetime(2026, 4, 4, tzinfo=dt.UTC)
    document = Document(status=status, deleted_at=now if deleted else None)
    document.deliveries = [Delivery(status=s) for s in delivery_statuses]
    assert file_status(document) == FileStatus(expected)
    assert {s.value for s in DocumentStatus} == {"pending", "delivered", "retrying", "failed", "discarded"}


def test_a_discarded_document_completed_when_it_was_received(
    client: FlaskClient, archive: SapClient, relay: Runtime
) -> None:
    data = info(client, create(archive, relay, "Z2"))
    assert (data["status"], data["completed_at"]) == ("completed", data["created_at"])


def test_a_retrying_document_is_processing(client: FlaskClient, archive: SapClient, relay: Runtime) -> None:
    document_id = create(archive, relay, "Z1")  # its S3 destination refuses every upload
    assert service.run(relay, deliveries(relay, document_id)["s3"].id, rand=lambda: 0.5)
    assert document(relay, document_id).status == "retrying"
    assert info(client, document_id)["status"] == "processing"


def test_cursor_round_trips_and_the_earlier_form_still_decodes() -> None:
    cursor = Cursor(seq=1234567)
    assert cursor.encode() == "s1234567"
    assert Cursor.decode(cursor.encode()) == cursor
    assert re.fullmatch(CURSOR_PATTERN, cursor.encode())
    earlier = "1775298600123456-doc_0123456789abcdef0123"  # (updated_at, id), as handed out before
    assert re.fullmatch(CURSOR_PATTERN, earlier)
    at = dt.datetime(2026, 4, 4, 10, 30, 0, 123456, tzinfo=dt.UTC)
    assert Cursor.decode(earlier) == Cursor(since=(at, "doc_0123456789abcdef0123"))
    assert Cursor.decode(earlier).encode() == earlier


def test_an_earlier_cursor_with_nothing_past_it_comes_back_as_it_was(client: FlaskClient) -> None:
    """Found by the schema fuzzer: an empty page handed back the cursor it was given re-encoded as
    "sNone", which no poller could pass back."""
    earlier = "24483428022830659-p"
    reply = client.get(f"{FILES}?cursor={earlier}", headers=auth(VIEWER_KEY))
    assert reply.json == {"success": True, "data": [], "next_cursor": earlier}


# --- roles, isolation, errors -----------------------------------------------------------------------


def test_roles(client: FlaskClient, archive: SapClient, relay: Runtime) -> None:
    document_id = create(archive, relay, "P1")
    assert client.get(FILES, headers=auth(VIEWER_KEY)).status_code == 200
    assert client.get(f"{FILES}/{document_id}/content", headers=auth(VIEWER_KEY)).get_data() == PDF
    assert_error(report(client, document_id, "exporting", key=VIEWER_KEY), 403)
    assert report(client, document_id, "exporting", key=MEMBER_KEY).status_code == 200
    assert_error(client.delete(f"{FILES}/{document_id}", headers=auth(MEMBER_KEY)), 403)
    assert_error(client.get(FILES), 401)
    assert document(relay, document_id).deleted_at is None


def test_another_workspace_never_sees_these_files(client: FlaskClient, archive: SapClient, relay: Runtime) -> None:
    document_id = create(archive, relay, "P1")
    theirs = f"/api/globex/main/files/{document_id}"
    assert_error(client.get(f"{FILES}/{document_id}", headers=auth(OTHER_KEY)), 404)  # the auth layer
    assert_error(client.get(theirs, headers=auth(OTHER_KEY)), 404)  # the query's workspace scope
    assert_error(client.get(f"{theirs}/content", headers=auth(OTHER_KEY)), 404)
    assert_error(client.patch(theirs, json={"integrationExportStatus": "completed"}, headers=auth(OTHER_KEY)), 404)
    assert_error(client.delete(theirs, headers=auth(OTHER_KEY)), 404)
    listing = client.get("/api/globex/main/files", headers=auth(OTHER_KEY))
    assert listing.json == {"success": True, "data": [], "next_cursor": None}
    assert document(relay, document_id).export_status is None
    assert document(relay, document_id).deleted_at is None


def test_unknown_file_is_404(client: FlaskClient, relay: Runtime) -> None:
    for response in (
        client.get(f"{FILES}/doc_nope", headers=auth()),
        client.get(f"{FILES}/doc_nope/content", headers=auth()),
        client.patch(f"{FILES}/doc_nope", json={"integrationExportStatus": "empty"}, headers=auth()),
        client.delete(f"{FILES}/doc_nope", headers=auth()),
    ):
        assert_error(response, 404)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ({"since": "2026-04-04"}, "since"),
        ({"updatedAfter": "yesterday"}, "updatedAfter"),
        ({"updatedAfter": "2026-13-01"}, "updatedAfter"),
        ({"cursor": "!!!"}, "cursor"),
        ({"cursor": "1775298600000000"}, "cursor"),
        ({"cursor": "1775298600000000-"}, "cursor"),
        ({"cursor": "-doc_x"}, "cursor"),
        ({"cursor": "1775298600000000-doc-x"}, "cursor"),
        ({"cursor": "9" * 18 + "-doc_x"}, "cursor"),
        ({"cursor": "x" * 600}, "cursor"),
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "ten"}, "limit"),
    ],
)
def test_bad_listing_parameters_are_400(
    client: FlaskClient, relay: Runtime, query: dict[str, str], parameter: str
) -> None:
    response = client.get(FILES, query_string=query, headers=auth(VIEWER_KEY))
    entry = assert_error(response, 400)
    assert entry["source"] == {"parameter": parameter}, entry


@pytest.mark.parametrize(
    ("body", "content_type", "pointer"),
    [
        (b"not json", "application/json", None),
        (b'{"integrationExportStatus": "completed"', "application/json", None),
        (b"[]", "application/json", None),
        (b"{}", "application/json", "/integrationExportStatus"),
        (b'{"integrationExportStatus": "done"}', "application/json", "/integrationExportStatus"),
        (b'{"integrationExportStatus": null}', "application/json", "/integrationExportStatus"),
        (
            b'{"integrationExportStatus": "error", "integrationExportMessages": "bad"}',
            "application/json",
            "/integrationExportMessages",
        ),
        (
            b'{"integrationExportStatus": "error", "integrationExportMessages": [1]}',
            "application/json",
            "/integrationExportMessages/0",
        ),
        (b'{"integrationExportStatus": "error", "extra": 1}', "application/json", "/extra"),
        (b"integrationExportStatus=completed", "application/x-www-form-urlencoded", None),
    ],
)
def test_bad_patch_bodies_are_400_and_change_nothing(
    client: FlaskClient,
    archive: SapClient,
    relay: Runtime,
    body: bytes,
    content_type: str,
    pointer: str | None,
) -> None:
    document_id = create(archive, relay, "P1")
    response = client.patch(f"{FILES}/{document_id}", data=body, content_type=content_type, headers=auth(MEMBER_KEY))
    entry = assert_error(response, 400)
    if pointer is not None:
        assert entry["source"] == {"pointer": pointer}, entry
    assert document(relay, document_id).export_status is None
    assert deliveries(relay, document_id)["pull"].status == "pending"
