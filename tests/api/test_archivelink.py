"""ArchiveLink over real HTTP: every command with the request shapes SAP sends, and every error case."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, event, select
from sqlalchemy.exc import OperationalError

from filerelay.api import create_app
from filerelay.clock import FrozenClock
from filerelay.config_file import apply, load
from filerelay.db.models import ArchiveDocument, Delivery, Document
from filerelay.db.session import READ_ONLY, session_scope
from filerelay.runtime import Runtime, build_runtime
from filerelay.settings import Settings
from tests.support.documents import DOC, count, staged_files
from tests.support.policy import LOOPBACK
from tests.support.sapclient import Part, SapClient
from tests.support.wakeups import take_wakeups, woken_kinds

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"


# --- serverInfo ---------------------------------------------------------------------------------


def test_server_info_lists_every_repository_of_the_workspace(sap: SapClient) -> None:
    reply = sap.server_info(contRep=None)
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert reply.headers["X-pVersion"] == "0047"
    server, *repos = reply.records()
    assert server["serverStatus"] == "running"
    assert server["serverDate"] == "2026-04-04"
    assert server["serverTime"] == "10:30:00"
    assert server["pVersion"] == "0047"
    assert [(r["contRep"], r["contRepDescription"], r["contRepStatus"]) for r in repos] == [
        ("Z1", "Invoices", "running"),
        ("Z2", "Unwired scans", "running"),
    ]
    assert reply.body.endswith(b"\r\n")
    assert b'" ' not in reply.body


def test_server_info_for_one_repository_and_an_unknown_one(sap: SapClient) -> None:
    records = sap.server_info().records()
    assert [r.get("contRep") for r in records[1:]] == ["Z1"]
    unknown = sap.server_info(contRep="QQ")
    assert unknown.status == 404
    assert unknown.error == "unknown content repository QQ"


# --- create (PUT), get, info, docGet --------------------------------------------------------------


def test_create_put_stores_durably_wires_deliveries_and_enqueues_after_commit(
    sap: SapClient, configured: Runtime
) -> None:
    reply = sap.create(DOC, "data", PDF, "application/pdf", docProt="rd")
    assert reply.status == 201, reply.error
    with session_scope(configured.sessions) as session:
        document = session.scalars(select(Document)).one()
        assert (document.doc_id, document.comp_id, document.content_type) == (DOC, "data", "application/pdf")
        assert document.size_bytes == len(PDF)
        assert document.sha256 == hashlib.sha256(PDF).hexdigest()
        assert document.status == "pending"
        deliveries = session.scalars(select(Delivery).order_by(Delivery.destination_id)).all()
        assert [d.status for d in deliveries] == ["pending", "pending"]
    staged = staged_files(configured)
    assert len(staged) == 1
    assert staged[0].read_bytes() == PDF
    assert woken_kinds(configured) == ["folder", "s3"]  # the kinds of its deliveries
    # The wake-ups are coalesced: more documents while they wait add none; once a worker took them, the
    # next document wakes its kinds again.
    assert sap.create("DOC2", "data", PDF).status == 201
    assert woken_kinds(configured) == ["folder", "s3"]
    assert take_wakeups(configured) == ["folder", "s3"]
    assert woken_kinds(configured) == []
    assert sap.create("DOC3", "data", PDF).status == 201
    assert woken_kinds(configured) == ["folder", "s3"]


def test_get_returns_the_component_with_its_headers(sap: SapClient) -> None:
    assert sap.create(DOC, "data", PDF, "application/pdf; charset=; version=1.4", docProt="rd").status == 201
    reply = sap.get(DOC, "data")
    assert reply.status == 200
    assert reply.body == PDF
    # As sent, like SAP's handler, less the parameter SAP left empty.
    assert reply.headers["Content-Type"] == "application/pdf; version=1.4"
    assert reply.headers["Content-Length"] == str(len(PDF))
    assert reply.headers["X-compId"] == "data"
    assert reply.headers["X-Content-Length"] == str(len(PDF))
    assert reply.headers["X-compDateC"] == "2026-04-04"
    assert reply.headers["X-compTimeC"] == "10:30:00"
    assert reply.headers["X-compStatus"] == "online"
    assert reply.headers["X-docProt"] == "rd"
    assert reply.headers["X-pVersion"] == "0047"
    # Without compId: `data` is the default component.
    assert sap.get(DOC).body == PDF


@pytest.mark.parametrize(
    ("from_offset", "to_offset", "expected"),
    [
        ("0", "9", PDF[0:10]),
        ("5", None, PDF[5:]),
        ("10", "-1", PDF[10:]),
        ("20", "10", b""),
        ("0", str(10**9), PDF),
        (str(len(PDF) - 3), None, PDF[-3:]),
    ],
)
def test_get_ranges_are_inclusive_and_always_200(
    sap: SapClient, from_offset: str, to_offset: str | None, expected: bytes
) -> None:
    sap.create(DOC, "data", PDF)
    reply = sap.get(DOC, "data", fromOffset=from_offset, toOffset=to_offset)
    assert reply.status == 200
    assert reply.body == expected
    assert reply.headers["Content-Length"] == str(len(expected))


def test_a_ranged_get_sends_exactly_the_range(sap: SapClient, configured: Runtime) -> None:
    """What the app yields, not what an HTTP client stops reading at Content-Length: bytes past the range
    would be read as the start of the next response on a kept-alive connection."""
    sap.create(DOC, "data", PDF)
    client = create_app(runtime=configured).test_client()
    reply = client.get(
        f"/archivelink/acme/production?get&pVersion=0047&contRep=Z1&docId={DOC}&compId=data&fromOffset=2&toOffset=9"
    )
    assert (reply.status_code, reply.data) == (200, PDF[2:10])


def test_head_get_answers_headers_only(sap: SapClient) -> None:
    sap.create(DOC, "data", PDF)
    reply = sap.get(DOC, "data", method="HEAD")
    assert reply.status == 200
    assert reply.body == b""
    assert reply.headers["Content-Length"] == str(len(PDF))
    assert reply.headers["X-compId"] == "data"


def test_create_of_an_existing_document_is_403_and_changes_nothing(sap: SapClient, configured: Runtime) -> None:
    assert sap.create(DOC, "data", PDF).status == 201
    before = (count(configured, Document), count(configured, Delivery), staged_files(configured))
    again = sap.create(DOC, "data", b"other bytes")
    assert again.status == 403
    assert again.error == f"document {DOC} already exists"
    assert (count(configured, Document), count(configured, Delivery), staged_files(configured)) == before
    assert sap.get(DOC).body == PDF


def test_a_repeated_create_of_identical_content_is_201_and_changes_nothing(sap: SapClient, configured: Runtime) -> None:
    """SAP repeats a create whose answer it never got. The same components with the same bytes are no
    conflict: 201, nothing stored twice, nothing delivered again. Any difference is still 403."""
    parts = [Part("data1", b"one", "text/plain"), Part("data2", b"two", "text/plain")]
    assert sap.create_multipart(DOC, parts).status == 201
    before = (count(configured, Document), count(configured, Delivery), staged_files(configured))
    assert take_wakeups(configured) == ["folder", "s3"]
    again = sap.create_multipart(DOC, parts)
    assert (again.status, again.headers["X-docId"]) == (201, DOC)
    assert (count(configured, Document), count(configured, Delivery), staged_files(configured)) == before
    assert woken_kinds(configured) == []  # nothing woken twice
    # Different in any way: other bytes, a component fewer, a component more, another name.
    for different in (
        [Part("data1", b"one", "text/plain"), Part("data2", b"TWO", "text/plain")],
        [Part("data1", b"one", "text/plain")],
        [*parts, Part("data3", b"three")],
        [Part("data1", b"one", "text/plain"), Part("data9", b"two", "text/plain")],
    ):
        refused = sap.create_multipart(DOC, different)
        assert (refused.status, refused.error) == (403, f"document {DOC} already exists")
    assert (count(configured, Document), count(configured, Delivery), staged_files(configured)) == before


@pytest.fixture
def lost_commit_answer(configured: Runtime) -> Iterator[list[int]]:
    """The database commits the next write, and then its answer is lost (a dropped connection, a
    failover): the COMMIT raises after the rows are durable. Yields the count of such losses."""
    lost: list[int] = []

    def commit_then_drop_answer(connection: Connection) -> None:
        if not connection.get_execution_options().get(READ_ONLY, False) and not lost:
            lost.append(1)
            connection.connection.driver_connection.commit()  # type: ignore[union-attr]
            raise OperationalError("COMMIT", {}, ConnectionResetError("server closed the connection"))

    event.listen(configured.engine, "commit", commit_then_drop_answer)
    yield lost
    event.remove(configured.engine, "commit", commit_then_drop_answer)


def test_a_lost_commit_answer_still_stores_and_acknowledges_the_document(
    sap: SapClient, configured: Runtime, lost_commit_answer: list[int]
) -> None:
    reply = sap.create(DOC, "data", PDF)
    assert lost_commit_answer == [1]
    assert reply.status == 201, reply.error
    with session_scope(configured.sessions) as session:
        document = session.scalars(select(Document)).one()
        assert document.staging_key is not None
    assert [p.read_bytes() for p in staged_files(configured)] == [PDF]  # the row's bytes were kept
    assert woken_kinds(configured) == ["folder", "s3"]  # and its deliveries woken
    assert sap.get(DOC).body == PDF
    assert sap.create(DOC, "data", PDF).status == 201  # SAP's retry, had it seen an error


def test_a_lost_commit_answer_for_a_document_without_components_is_201(
    sap: SapClient, configured: Runtime, lost_commit_answer: list[int]
) -> None:
    reply = sap.create_multipart(DOC, [])
    assert lost_commit_answer == [1]
    assert reply.status == 201, reply.error
    assert count(configured, ArchiveDocument) == 1


@dataclasses.dataclass
class FailedCommit:
    refused: int = 0  # COMMITs refused so far (only the first write's is)
    then_gone: bool = False  # after it, every statement fails: the database is unreachable


@pytest.fixture
def failed_commit(configured: Runtime) -> Iterator[FailedCommit]:
    """The next write's COMMIT fails before the database got it: nothing is stored."""
    state = FailedCommit()

    def refuse_commit(connection: Connection) -> None:
        if not connection.get_execution_options().get(READ_ONLY, False) and not state.refused:
            state.refused += 1
            raise OperationalError("COMMIT", {}, ConnectionResetError("server closed the connection"))

    def unreachable(*_: object) -> None:
        if state.refused and state.then_gone:
            raise OperationalError("SELECT", {}, ConnectionRefusedError("connection refused"))

    event.listen(configured.engine, "commit", refuse_commit)
    event.listen(configured.engine, "before_cursor_execute", unreachable)
    yield state
    event.remove(configured.engine, "before_cursor_execute", unreachable)
    event.remove(configured.engine, "commit", refuse_commit)


def test_a_header_only_create_whose_commit_failed_is_500_and_stores_nothing(
    sap: SapClient, configured: Runtime, failed_commit: FailedCommit
) -> None:
    """Not a lost answer: the COMMIT never arrived. Without components there are no staged bytes to look
    for, so the document row itself tells: it is not there, and SAP must not get 201."""
    reply = sap.create_multipart(DOC, [])
    assert failed_commit.refused == 1
    assert reply.status == 500
    assert count(configured, ArchiveDocument) == 0
    assert sap.create_multipart(DOC, []).status == 201  # SAP's retry stores it


def test_a_create_whose_outcome_nobody_can_tell_keeps_its_bytes_and_says_why(
    sap: SapClient, configured: Runtime, failed_commit: FailedCommit, caplog: pytest.LogCaptureFixture
) -> None:
    """The COMMIT failed and the database is gone before FileRelay could look: the bytes may be a stored
    document's, so they stay (the start-up release frees them if they are nobody's)."""
    failed_commit.then_gone = True
    reply = sap.create(DOC, "data", PDF)
    failed_commit.then_gone = False
    assert (failed_commit.refused, reply.status) == (1, 500)
    assert [p.read_bytes() for p in staged_files(configured)] == [PDF]
    assert "cannot tell whether a failed create was committed; its staged bytes are kept" in caplog.messages


def test_info_sends_every_document_and_component_header(sap: SapClient, clock: FrozenClock) -> None:
    assert sap.create(DOC, "data", PDF, "application/pdf").status == 201
    clock.advance(3600 + 61)
    assert sap.update(DOC, "data", b"v2", "text/plain").status == 200
    info = sap.info(DOC)
    document = {name: info.headers[name] for name in ("X-dateC", "X-timeC", "X-dateM", "X-timeM", "X-docId")}
    assert document == {
        "X-dateC": "2026-04-04",
        "X-timeC": "10:30:00",
        "X-dateM": "2026-04-04",
        "X-timeM": "11:31:01",
        "X-docId": DOC,
    }
    assert (info.headers["X-docStatus"], info.headers["X-numberComps"], info.headers["X-numComps"]) == (
        "online",
        "1",
        "1",
    )
    [(part, _)] = info.parts()
    names = ("X-compDateC", "X-compTimeC", "X-compDateM", "X-compTimeM", "X-pVersion", "X-compStatus")
    assert {name: part[name] for name in names} == {
        "X-compDateC": "2026-04-04",
        "X-compTimeC": "10:30:00",
        "X-compDateM": "2026-04-04",
        "X-compTimeM": "11:31:01",
        "X-pVersion": "0047",
        "X-compStatus": "online",
    }


@pytest.mark.parametrize("name", ["fromOffset", "toOffset", "numResults"])
def test_search_names_the_offset_it_cannot_read(sap: SapClient, name: str) -> None:
    assert sap.create(DOC, "data", PDF).status == 201
    reply = sap.search(DOC, "data", "EOF", **{name: "soon"})
    assert reply.status == 400
    assert reply.error == f"parameter {name} must be an integer >= -1"


def test_create_multipart_stores_every_component(sap: SapClient, configured: Runtime) -> None:
    parts = [
        Part("data1", b"page one", "image/tiff"),
        Part("data2", b"page two, longer", "text/plain; charset=ISO-8859-1"),
        Part("descr", b"", "application/x-alf-descr"),
    ]
    reply = sap.create_multipart(DOC, parts, docProt="")
    assert reply.status == 201, reply.error
    assert count(configured, Document) == 3
    assert count(configured, Delivery) == 6
    # No `data` component: get without compId answers data1.
    assert sap.get(DOC).body == b"page one"
    assert sap.get(DOC, "data2").headers["Content-Type"] == "text/plain; charset=ISO-8859-1"
    assert sap.get(DOC, "descr").body == b""


def test_info_describes_document_and_components_without_content(sap: SapClient) -> None:
    sap.create_multipart(DOC, [Part("data1", b"page one", "image/tiff"), Part("data2", b"22", "text/plain")])
    reply = sap.info(DOC)
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    for name in ("X-numberComps", "X-numComps"):
        assert reply.headers[name] == "2"
    for name in ("X-contentRep", "X-contRep"):
        assert reply.headers[name] == "Z1"
    assert reply.headers["X-docId"] == DOC
    assert reply.headers["X-docStatus"] == "online"
    assert reply.headers["X-dateC"] == "2026-04-04"
    assert reply.headers["X-timeM"] == "10:30:00"
    parts = reply.parts()
    assert [(h["X-compId"], h["Content-Length"], h["X-Content-Length"], body) for h, body in parts] == [
        ("data1", "0", "8", b""),
        ("data2", "0", "2", b""),
    ]
    assert parts[0][0]["Content-Type"] == "image/tiff"
    assert parts[0][0]["X-compStatus"] == "online"
    only = sap.info(DOC, "data2").parts()
    assert [h["X-compId"] for h, _ in only] == ["data2"]


def test_doc_get_returns_every_component_with_content(sap: SapClient) -> None:
    sap.create_multipart(DOC, [Part("data1", b"page one", "image/tiff"), Part("data2", PDF, "application/pdf")])
    reply = sap.doc_get(DOC)
    assert reply.status == 200
    assert reply.headers["X-numComps"] == "2"
    assert reply.headers["X-contRep"] == "Z1"
    assert [(h["X-compId"], h["Content-Length"], body) for h, body in reply.parts()] == [
        ("data1", "8", b"page one"),
        ("data2", str(len(PDF)), PDF),
    ]


def test_an_empty_document_is_allowed(sap: SapClient, configured: Runtime) -> None:
    assert sap.create_multipart(DOC, []).status == 201
    assert count(configured, ArchiveDocument) == 1
    info = sap.info(DOC)
    assert info.status == 200
    assert info.headers["X-numberComps"] == "0"
    assert info.parts() == []
    assert sap.create_multipart(DOC, []).status == 201  # the same (empty) content again: SAP's retry
    assert sap.create_multipart(DOC, [Part("data", b"x")]).status == 403
    assert sap.get(DOC).status == 404


def test_multipart_create_is_atomic(sap: SapClient, configured: Runtime) -> None:
    """One truncated part (fewer bytes than its Content-Length) refuses the whole document."""
    body = (
        b"--B\r\nX-compId: data1\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
        b"--B\r\nX-compId: data2\r\nContent-Length: 100\r\n\r\ncut short\r\n--B--\r\n"
    )
    reply = sap.raw("POST", sap.query("create", docId=DOC), body, {"Content-Type": "multipart/form-data; boundary=B"})
    assert reply.status == 400
    assert reply.error == "part data2 announced 100 bytes but carried 9"
    assert count(configured, ArchiveDocument) == 0
    assert count(configured, Document) == 0
    assert staged_files(configured) == []
    assert woken_kinds(configured) == []
    assert sap.create_multipart(DOC, [Part("data1", b"first")]).status == 201


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            b"--B\r\nX-compId: data\r\n\r\ncut off",
            "malformed multipart body: it ends before the closing boundary",
        ),
        (
            b"--B\r\nX-compId: a\r\nContent-Length: 9\r\n\r\nabc\r\n--B--\r\n",
            "part a announced 9 bytes but carried 3",
        ),
        (
            b"--B\r\nX-compId: a\r\n\r\nx\r\n--B\r\nX-compId: a\r\n\r\ny\r\n--B--\r\n",
            "component a appears twice in one request",
        ),
        (b"garbage", "malformed multipart body: "),
    ],
)
def test_malformed_multipart_is_400_and_stores_nothing(
    sap: SapClient, configured: Runtime, body: bytes, error: str
) -> None:
    reply = sap.raw("POST", sap.query("create", docId=DOC), body, {"Content-Type": "multipart/form-data; boundary=B"})
    assert reply.status == 400
    assert reply.error is not None
    assert reply.error.startswith(error)
    assert count(configured, ArchiveDocument) == 0
    assert staged_files(configured) == []


def test_multipart_without_boundary_is_400(sap: SapClient) -> None:
    reply = sap.raw("POST", sap.query("create", docId=DOC), b"x", {"Content-Type": "multipart/form-data"})
    assert reply.status == 400
    assert reply.error == "the multipart Content-Type has no boundary"


# --- mCreate -------------------------------------------------------------------------------------


def test_m_create_creates_each_document_and_reports_per_document(sap: SapClient, configured: Runtime) -> None:
    assert sap.create("DOC2", "data", b"exists").status == 201
    reply = sap.m_create(
        [
            Part("data", b"one", "text/plain", doc_id="DOC1"),
            Part("data", b"two-a", "text/plain", doc_id="DOC2"),
            Part("data1", b"three-1", "text/plain", doc_id="DOC3"),
            Part("data2", b"three-2", "text/plain", doc_id="DOC3"),
        ]
    )
    assert reply.status == 250
    records = reply.records()
    assert [(r["docId"], r["retCode"]) for r in records] == [
        ("DOC1", "201"),
        ("DOC2", "403"),
        ("DOC3", "201"),
    ]
    assert "already exists" in records[1]["errorDescription"]
    assert sap.get("DOC2").body == b"exists"
    assert [h["X-compId"] for h, _ in sap.info("DOC3").parts()] == ["data1", "data2"]
    assert count(configured, Document) == 4
    assert len(staged_files(configured)) == 4


def test_m_create_repeated_with_identical_content_reports_201(sap: SapClient) -> None:
    parts = [Part("data", b"a", doc_id="N1"), Part("data", b"b", doc_id="N2")]
    assert sap.m_create(parts).status == 201
    again = sap.m_create([*parts, Part("data", b"c", doc_id="N3")])
    assert again.status == 201
    assert [(r["docId"], r["retCode"]) for r in again.records()] == [("N1", "201"), ("N2", "201"), ("N3", "201")]
    changed = sap.m_create([Part("data", b"A", doc_id="N1")])
    assert (changed.status, [r["retCode"] for r in changed.records()]) == (250, ["403"])


def test_m_create_all_new_is_201(sap: SapClient) -> None:
    reply = sap.m_create([Part("data", b"a", doc_id="N1"), Part("data", b"b", doc_id="N2")])
    assert reply.status == 201
    assert [r["retCode"] for r in reply.records()] == ["201", "201"]


# --- update, append, delete, search ---------------------------------------------------------------


def test_update_put_replaces_content_and_redelivers(sap: SapClient, configured: Runtime) -> None:
    sap.create(DOC, "data", PDF)
    first_key = staged_files(configured)
    assert take_wakeups(configured) == ["folder", "s3"]
    reply = sap.update(DOC, "data", b"new content", "text/plain")
    assert reply.status == 200, reply.error
    assert sap.get(DOC).body == b"new content"
    assert sap.get(DOC).headers["Content-Type"] == "text/plain"
    with session_scope(configured.sessions) as session:
        document = session.scalars(select(Document)).one()
        assert document.generation == 2
        assert document.sha256 == hashlib.sha256(b"new content").hexdigest()
        assert {d.status for d in document.deliveries} == {"pending"}
    assert staged_files(configured) != first_key
    assert len(staged_files(configured)) == 1
    assert woken_kinds(configured) == ["folder", "s3"]  # delivered again


def test_update_put_creates_a_missing_component_but_needs_the_document(sap: SapClient) -> None:
    sap.create(DOC, "data", PDF)
    assert sap.update(DOC, "note", b"a note", "application/x-note").status == 200
    assert sap.get(DOC, "note").body == b"a note"
    missing = sap.update("NOPE", "data", b"x")
    assert missing.status == 404
    assert missing.error == "document NOPE not found in Z1"


def test_update_post_replaces_the_whole_document(sap: SapClient) -> None:
    sap.create_multipart(DOC, [Part("data1", b"one"), Part("data2", b"two")])
    reply = sap.update_multipart(DOC, [Part("data2", b"TWO"), Part("data3", b"three")])
    assert reply.status == 200, reply.error
    assert [(h["X-compId"], body) for h, body in sap.doc_get(DOC).parts()] == [
        ("data2", b"TWO"),
        ("data3", b"three"),
    ]
    assert sap.get(DOC, "data1").status == 404


def test_append_extends_the_component(sap: SapClient) -> None:
    sap.create(DOC, "data", b"hello ")
    assert sap.append(DOC, "data", b"world").status == 200
    reply = sap.get(DOC, "data")
    assert reply.body == b"hello world"
    assert reply.headers["X-Content-Length"] == "11"
    assert sap.append(DOC, "nope", b"x").status == 404
    assert sap.append("NOPE", "data", b"x").status == 404


def test_delete_a_component_then_the_document(sap: SapClient, configured: Runtime) -> None:
    sap.create_multipart(DOC, [Part("data1", b"one"), Part("data2", b"two")])
    assert sap.delete(DOC, "data1").status == 200
    assert sap.get(DOC, "data1").status == 404
    assert [h["X-compId"] for h, _ in sap.info(DOC).parts()] == ["data2"]
    assert sap.delete(DOC, "data1").status == 404
    assert sap.delete(DOC).status == 200
    gone = sap.info(DOC)
    assert gone.status == 404
    assert gone.error == f"document {DOC} not found in Z1"
    assert sap.delete(DOC).status == 404
    # The docId is free again.
    assert sap.create(DOC, "data", b"again").status == 201
    assert sap.get(DOC).body == b"again"
    assert count(configured, ArchiveDocument) == 2


def test_delete_also_answers_the_http_delete_method(sap: SapClient) -> None:
    sap.create(DOC, "data", PDF)
    assert sap.raw("DELETE", sap.query("delete", docId=DOC)).status == 200
    assert sap.get(DOC).status == 404


def test_search_finds_offsets(sap: SapClient) -> None:
    sap.create(DOC, "data", b"abcdefgABCdefg abc", "text/plain")
    assert sap.search(DOC, "data", "def").body == b"1;3;"
    assert sap.search(DOC, "data", "abc", numResults="5").body == b"3;0;7;15;"
    assert sap.search(DOC, "data", "abc", numResults="5", caseSensitive="y").body == b"2;0;15;"
    assert sap.search(DOC, "data", "zzz").body == b"0;"
    assert sap.search(DOC, "data", "abc", fromOffset="17", toOffset="0", numResults="1").body == b"1;15;"
    assert sap.search(DOC, "nope", "abc").status == 404
    assert sap.search(DOC, "data", "abc", caseSensitive="maybe").status == 400


# --- discarded ------------------------------------------------------------------------------------


def test_a_repository_with_no_destination_discards(configured: Runtime, server: str) -> None:
    sap = SapClient(server + "/archivelink/acme/production", cont_rep="Z2")
    assert sap.create(DOC, "data", PDF).status == 201
    with session_scope(configured.sessions) as session:
        document = session.scalars(select(Document)).one()
        assert document.status == "discarded"
        assert document.staging_key is None
        assert document.size_bytes == len(PDF)
    assert count(configured, Delivery) == 0
    assert staged_files(configured) == []
    assert woken_kinds(configured) == []
    reply = sap.get(DOC)
    assert reply.status == 409
    assert reply.error == "the content of component data is no longer held by FileRelay"
    assert sap.info(DOC).parts()[0][0]["X-compStatus"] == "offline"


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "query", "status", "error"),
    [
        ("GET", "info&contRep=Z1&docId=X", 400, "missing mandatory parameter pVersion"),
        (
            "GET",
            "info&pVersion=0031&contRep=Z1&docId=X",
            400,
            "pVersion 0031 is not supported; use 0045, 0046 or 0047",
        ),
        ("GET", "frobnicate&pVersion=0047&contRep=Z1", 400, "unknown command 'frobnicate'"),
        ("GET", "getCert&pVersion=0047&contRep=Z1", 400, "FileRelay does not offer the getCert command"),
        (
            "GET",
            "adminContRep&pVersion=0047&contRep=Z1",
            400,
            "FileRelay does not offer the adminContRep command",
        ),
        ("PUT", "get&pVersion=0047&contRep=Z1&docId=X", 400, "get is not allowed with HTTP PUT"),
        (
            "GET",
            "create&pVersion=0047&contRep=Z1&docId=X&compId=data",
            400,
            "create is not allowed with HTTP GET",
        ),
        ("GET", "info&pVersion=0047&contRep=Z1", 400, "missing mandatory parameter docId"),
        ("GET", "info&pVersion=0047&docId=X", 400, "missing mandatory parameter contRep"),
        ("GET", "info&pVersion=0047&contRep=QQ&docId=X", 404, "unknown content repository QQ"),
        (
            "GET",
            "info&pVersion=0047&contRep=Z1&docId=X&docId=Y",
            400,
            "parameter docId appears more than once",
        ),
        ("GET", "pVersion=0047&info", 400, None),
        ("GET", "", 400, "no command given"),
        ("GET", "info&pVersion=0047&contRep=Z1&docId=NOPE", 404, "document NOPE not found in Z1"),
        ("GET", "get&pVersion=0047&contRep=Z1&docId=NOPE", 404, "document NOPE not found in Z1"),
        ("GET", "docGet&pVersion=0047&contRep=Z1&docId=NOPE", 404, "document NOPE not found in Z1"),
        (
            "GET",
            "search&pVersion=0047&contRep=Z1&docId=NOPE&compId=data&pattern=x",
            404,
            "document NOPE not found in Z1",
        ),
        ("PUT", "create&pVersion=0047&contRep=Z1&docId=X", 400, "missing mandatory parameter compId"),
    ],
)
def test_errors_are_clear_and_change_nothing(
    sap: SapClient, configured: Runtime, method: str, query: str, status: int, error: str | None
) -> None:
    reply = sap.raw(method, query, b"" if method == "PUT" else None)
    assert reply.status == status, reply.error
    assert reply.error
    if error is not None:
        assert reply.error == error
    assert count(configured, ArchiveDocument) == 0
    assert staged_files(configured) == []


def test_an_error_description_is_printable_bounded_and_the_connection_closed(sap: SapClient) -> None:
    """The description travels in a header: anything outside printable ASCII becomes '?', it stops
    at 1,000 characters, and the connection is not reused (part of the body may be unread)."""
    reply = sap.raw("GET", "info&pVersion=%C3%A4%0B" + "9" * 2000 + "&contRep=Z1&docId=X")
    assert reply.status == 400
    # ä is one character once decoded; the vertical tab is refused before (a control character).
    assert reply.error == "parameter pVersion contains a control character"
    reply = sap.raw("GET", "info&pVersion=%C3%A4" + "9" * 2000 + "&contRep=Z1&docId=X")
    assert reply.status == 400
    expected = ("pVersion ?" + "9" * 2000)[:1000]
    assert reply.error == expected
    assert reply.body == (expected + "\r\n").encode()
    assert reply.headers["Connection"] == "close"
    assert reply.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "X-pVersion" not in reply.headers  # a version FileRelay does not speak is not echoed


def test_a_failure_inside_filerelay_is_a_500_that_points_at_the_log_and_leaks_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A database FileRelay's migrations never ran on: SAP is told to look in the log, the log has the
    trace and the request, and the SQL stays out of the answer."""
    settings = Settings.from_env(
        {"FILERELAY_HOME": str(tmp_path / "home"), "FILERELAY_DATABASE_URL": f"sqlite:///{tmp_path}/empty.db"}
    )
    runtime = build_runtime(settings)
    try:
        reply = (
            create_app(runtime=runtime)
            .test_client()
            .get("/archivelink/acme/production?info&pVersion=0047&contRep=Z1&docId=X")
        )
    finally:
        runtime.close()
    assert reply.status_code == 500
    assert reply.headers["X-ErrorDescription"] == "internal error; see the FileRelay log"
    # Set by FileRelay itself (the test client adds nothing): the body may be unread, never reuse this.
    assert reply.headers["Connection"] == "close"
    assert reply.data == b"internal error; see the FileRelay log\r\n"
    assert reply.headers["X-pVersion"] == "0047"
    [logged] = [r for r in caplog.records if r.name == "filerelay.api.archivelink.views"]
    assert logged.getMessage() == "archivelink GET b'info&pVersion=0047&contRep=Z1&docId=X' failed"
    assert logged.exc_info is not None
    assert "no such table" in str(logged.exc_info[1])


@pytest.mark.parametrize(
    ("comp_id", "reason"),
    [("x" * 300, "longer than 128 characters"), ("%20data", "leading or trailing blanks are not allowed")],
)
def test_a_bad_comp_id_is_named_in_the_error(sap: SapClient, comp_id: str, reason: str) -> None:
    reply = sap.create(DOC, comp_id, PDF)
    assert (reply.status, reply.error) == (400, f"invalid compId: {reason}")


def test_bad_offsets_and_unknown_components(sap: SapClient) -> None:
    sap.create(DOC, "data", PDF)
    bad = sap.get(DOC, "data", fromOffset="abc")
    assert bad.status == 400
    assert "fromOffset" in str(bad.error)
    missing = sap.get(DOC, "nope")
    assert missing.status == 404
    assert missing.error == f"component not found in document {DOC}"


def test_a_workspace_is_its_owner_and_its_slug_together(server: str, configured: Runtime) -> None:
    more = "workspaces:\n  - {owner: globex, slug: production}\n  - {owner: acme, slug: staging}\n"
    with session_scope(configured.sessions) as session:
        apply(session, load(more, {}), now=configured.clock.now(), policy=LOOPBACK)
    for owner, slug, status in [("acme", "staging", 200), ("globex", "production", 200), ("globex", "staging", 404)]:
        reply = SapClient(f"{server}/archivelink/{owner}/{slug}").server_info(contRep=None)
        assert reply.status == status, (owner, slug, reply.error)


def test_unknown_workspace_is_404(server: str) -> None:
    sap = SapClient(server + "/archivelink/acme/nowhere")
    reply = sap.server_info()
    assert reply.status == 404
    assert reply.error == "no content server at /archivelink/acme/nowhere"


def test_oversized_body_is_413_and_stores_nothing(configured: Runtime, server: str) -> None:
    configured.settings = configured.settings.with_overrides(max_document_bytes=1000)
    sap = SapClient(server + "/archivelink/acme/production")
    reply = sap.create(DOC, "data", b"x" * 1001)
    assert reply.status == 413
    assert reply.error == "the body has 1001 bytes; the limit is 1000"
    parts = sap.create_multipart(DOC, [Part("data1", b"x" * 600), Part("data2", b"y" * 600)])
    assert parts.status == 413
    assert count(configured, ArchiveDocument) == 0
    assert staged_files(configured) == []
    assert sap.create(DOC, "data", b"x" * 1000).status == 201


def test_percent_encoded_values_are_decoded(sap: SapClient) -> None:
    reply = sap.create("DOC%2F1", "scan%3A1.tif", b"tiff", "image/tiff")
    assert reply.status == 201, reply.error
    assert sap.get("DOC%2F1", "scan%3A1.tif").body == b"tiff"
