"""Where ArchiveLink clients differ, FileRelay answers as SAP's own content-server handler does (issue 13):
the exact request shapes, over real HTTP."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from filerelay.api.archivelink.protocol import content_disposition
from filerelay.db.models import Destination, Document
from filerelay.db.session import session_scope
from filerelay.delivery.paths import path_for
from filerelay.runtime import Runtime
from tests.api.test_archivelink import staged_files
from tests.support.sapclient import Part, SapClient

DOC = "4A3F8B2C1D7E9F0A"


def test_info_for_one_component_counts_the_one_it_describes(sap: SapClient) -> None:
    parts = [Part("data", b"%PDF one", "application/pdf"), Part("note", b"a note", "text/plain")]
    assert sap.create_multipart(DOC, parts).status == 201
    whole = sap.info(DOC)
    one = sap.info(DOC, "note")
    assert (whole.headers["X-numberComps"], whole.headers["X-numComps"], len(whole.parts())) == ("2", "2", 2)
    assert (one.headers["X-numberComps"], one.headers["X-numComps"], len(one.parts())) == ("1", "1", 1)


@pytest.mark.parametrize("value", ["html", "HTML", "xml", ""])
def test_result_as_other_than_ascii_is_refused_naming_ascii(sap: SapClient, value: str) -> None:
    assert sap.create(DOC, "data", b"%PDF one").status == 201
    for reply in (sap.server_info(resultAs=value), sap.raw("GET", sap.query("info", docId=DOC, resultAs=value))):
        assert reply.status == 400
        assert reply.error == f"resultAs={value} is not supported; FileRelay answers resultAs=ascii"


def test_result_as_ascii_is_answered(sap: SapClient) -> None:
    assert sap.create(DOC, "data", b"%PDF one").status == 201
    assert sap.server_info(resultAs="ascii").status == 200
    assert sap.raw("GET", sap.query("info", docId=DOC, resultAs="ASCII")).status == 200


def test_get_of_a_component_named_like_a_file_is_an_attachment(sap: SapClient) -> None:
    assert sap.create(DOC, "scan.tif", b"II*\x00tiff", "image/tiff").status == 201
    assert sap.create("OTHER", "data", b"%PDF one").status == 201
    reply = sap.get(DOC, "scan.tif")
    assert reply.status == 200
    assert reply.headers["Content-Disposition"] == 'attachment; filename="scan.tif"'
    assert reply.body == b"II*\x00tiff"
    assert "Content-Disposition" not in sap.get("OTHER", "data").headers


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("scan.tif", 'attachment; filename="scan.tif"'),
        ('a"b.pdf', 'attachment; filename="a\\"b.pdf"'),
        ("a\\b.pdf", 'attachment; filename="a\\\\b.pdf"'),
        ("Rechnung ä.pdf", "attachment; filename=\"Rechnung _.pdf\"; filename*=UTF-8''Rechnung%20%C3%A4.pdf"),
    ],
)
def test_content_disposition_quotes_the_name(name: str, header: str) -> None:
    assert content_disposition(name) == header


# --- item 3: a Content-Type is a label, never a reason to refuse ---------------------------------


@pytest.mark.parametrize(
    ("sent", "media_type", "ext"),
    [
        ("application/pdf", "application/pdf", ".pdf"),
        ("Application/PDF; Version=1.4; foo=bar", "application/pdf", ".pdf"),
        ("pdf", "application/pdf", ".pdf"),
        ("Content-Type: image/tiff", "image/tiff", ".tif"),
        ("x-sap/ein typ!", "application/octet-stream", ".bin"),
    ],
)
def test_a_content_type_is_stored_as_sent_and_served_back(
    sap: SapClient, configured: Runtime, sent: str, media_type: str, ext: str
) -> None:
    """SAP's handler stores any Content-Type and serves it back; destinations get the media type it
    names (application/octet-stream when it names none) and `{ext}` follows it."""
    reply = sap.create(DOC, "data", b"%PDF body", sent)
    assert reply.status == 201, reply.error
    assert sap.create_multipart("MULTI", [Part("data", b"%PDF body", sent)]).status == 201
    for doc_id in (DOC, "MULTI"):
        assert sap.get(doc_id, "data").headers["Content-Type"] == sent
        assert sap.get(doc_id, "data", method="HEAD").headers["Content-Type"] == sent
        line = f"\r\nContent-Type: {sent}\r\n".encode()
        assert sap.info(doc_id).body.count(line) == 1
        doc_get = sap.doc_get(doc_id)
        assert doc_get.body.count(line) == 1
        assert [body for _, body in doc_get.parts()] == [b"%PDF body"]
    with session_scope(configured.sessions) as session:
        folder = session.scalars(select(Destination).where(Destination.public_id == "dest_folder")).one()
        for document in session.scalars(select(Document)):
            assert (document.content_type, document.content_type_sent) == (media_type, sent)
            assert path_for(document, folder) == f"/Z1/{document.doc_id}_data{ext}"


def test_a_non_ascii_content_type_is_kept_as_question_marks(sap: SapClient, configured: Runtime) -> None:
    """Servers disagree on how a non-ASCII header goes back on the wire (Latin-1, UTF-8): keep ASCII."""
    assert sap.create(DOC, "data", b"%PDF body", "\xe9/\xe9").status == 201  # Latin-1 bytes E9 2F E9
    assert sap.get(DOC, "data").headers["Content-Type"] == "?/?"
    with session_scope(configured.sessions) as session:
        assert session.scalars(select(Document.content_type)).one() == "application/octet-stream"


def test_update_and_append_keep_the_type_as_sent(sap: SapClient) -> None:
    assert sap.create(DOC, "data", b"one", "pdf").status == 201
    assert sap.append(DOC, "data", b" two").status == 200
    assert sap.get(DOC, "data").headers["Content-Type"] == "pdf"
    assert sap.update(DOC, "data", b"three", "Content-Type: text/plain").status == 200
    got = sap.get(DOC, "data")
    assert (got.body, got.headers["Content-Type"]) == (b"three", "Content-Type: text/plain")


def test_no_content_type_is_served_as_octet_stream(sap: SapClient, configured: Runtime) -> None:
    assert sap.raw("PUT", sap.query("create", docId=DOC, compId="data"), b"raw bytes").status == 201
    assert sap.get(DOC, "data").headers["Content-Type"] == "application/octet-stream"
    with session_scope(configured.sessions) as session:
        assert session.scalars(select(Document.content_type_sent)).one() is None


# --- item 6: a multipart part without X-compId -----------------------------------------------------


def test_a_part_without_comp_id_is_named_by_its_filename_or_skipped(
    sap: SapClient, configured: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    body = (
        b"--B\r\nX-compId: data\r\nContent-Type: application/pdf\r\n\r\n%PDF one\r\n"
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="scan.tif"\r\n'
        b"Content-Type: image/tiff\r\n\r\nII*\x00tiff\r\n"
        b"--B\r\nContent-Type: text/plain\r\n\r\nno name at all\r\n--B--\r\n"
    )
    headers = {"Content-Type": "multipart/form-data; boundary=B"}
    with caplog.at_level(logging.WARNING, logger="filerelay.api.archivelink.upload"):
        reply = sap.raw("POST", sap.query("create", docId=DOC), body, headers)
    assert reply.status == 201, reply.error
    assert [h["X-compId"] for h, _ in sap.info(DOC).parts()] == ["data", "scan.tif"]
    scan = sap.get(DOC, "scan.tif")
    assert (scan.body, scan.headers["Content-Type"]) == (b"II*\x00tiff", "image/tiff")
    assert "skipped multipart part 3: it has no X-compId and no filename" in caplog.text
    # The skipped part's bytes were never staged: one staged file per stored component.
    assert len(staged_files(configured)) == 2


def test_m_create_names_or_skips_parts_the_same_way(sap: SapClient) -> None:
    body = (
        b"--B\r\nX-docId: M1\r\nX-compId: data\r\n\r\none\r\n"
        b'--B\r\nX-docId: M1\r\nContent-Disposition: attachment; filename="a.txt"\r\n\r\nattached\r\n'
        b"--B\r\nX-docId: M2\r\n\r\nskipped\r\n"
        b"--B\r\nX-docId: M2\r\nX-compId: data\r\n\r\ntwo\r\n--B--\r\n"
    )
    reply = sap.raw("POST", sap.query("mCreate", docId="M1"), body, {"Content-Type": "multipart/form-data; boundary=B"})
    assert reply.status == 201, reply.error
    assert sorted(h["X-compId"] for h, _ in sap.info("M1").parts()) == ["a.txt", "data"]
    assert sap.get("M2", "data").body == b"two"


def test_a_filename_that_is_no_valid_comp_id_is_refused_clearly(sap: SapClient, configured: Runtime) -> None:
    body = b'--B\r\nContent-Disposition: form-data; name="f"; filename=" lead.pdf"\r\n\r\nx\r\n--B--\r\n'
    reply = sap.raw("POST", sap.query("create", docId=DOC), body, {"Content-Type": "multipart/form-data; boundary=B"})
    assert reply.status == 400
    assert reply.error == "invalid X-compId: leading or trailing blanks are not allowed"
    assert staged_files(configured) == []
