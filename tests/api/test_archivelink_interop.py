"""Where ArchiveLink clients differ, FileRelay answers as SAP's own content-server handler does:
the exact request shapes, over real HTTP."""

from __future__ import annotations

import logging
import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select, update

from filerelay.api import create_app
from filerelay.api.archivelink.protocol import content_disposition
from filerelay.config_file import apply, load
from filerelay.db.models import Destination, Document
from filerelay.db.session import session_scope
from filerelay.delivery import service, sweep
from filerelay.delivery.paths import path_for
from filerelay.runtime import Runtime
from tests.support.documents import staged_files
from tests.support.policy import LOOPBACK
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


def test_append_to_a_component_stored_before_types_were_kept_as_sent_keeps_its_parameters(
    sap: SapClient, configured: Runtime
) -> None:
    """A row from before migration 0004 has no type as sent: its charset and version are what is served,
    and an append must carry them into the new content."""
    assert sap.create(DOC, "data", b"one", "text/plain; charset=ISO-8859-1; version=0046").status == 201
    with session_scope(configured.sessions) as session:
        session.execute(update(Document).values(content_type_sent=None))
    assert sap.get(DOC, "data").headers["Content-Type"] == "text/plain; charset=ISO-8859-1; version=0046"
    assert sap.append(DOC, "data", b" two").status == 200
    got = sap.get(DOC, "data")
    assert (got.body, got.headers["Content-Type"]) == (b"one two", "text/plain; charset=ISO-8859-1; version=0046")


def test_no_content_type_is_served_as_octet_stream(sap: SapClient, configured: Runtime) -> None:
    assert sap.raw("PUT", sap.query("create", docId=DOC, compId="data"), b"raw bytes").status == 201
    assert sap.get(DOC, "data").headers["Content-Type"] == "application/octet-stream"
    with session_scope(configured.sessions) as session:
        assert session.scalars(select(Document.content_type_sent)).one() is None


# --- a served Content-Type never holds an empty parameter ------------------------------------------
# SAP sends `charset=` when a component has none; an empty parameter value is not valid (RFC 9110) and
# strict parsers (Go's mime, JavaMail) refuse the whole header. Each request shape SAP uses, then every
# way the component is served back: get, HEAD, its part in info and in docGet.

PDF_BODY = b"%PDF-1.7 body"


def _empty_parameters(header: str) -> list[str]:
    unquoted = re.sub(r'"(?:[^"\\]|\\.)+"', '"x"', header)  # a quoted value may hold ; and =
    pieces = [piece.partition("=") for piece in unquoted.split(";")[1:]]
    return [name.strip() for name, sep, value in pieces if sep and value.strip() in ("", '""')]


def _served_types(sap: SapClient, doc_id: str, comp_id: str) -> list[str]:
    types = [sap.get(doc_id, comp_id, method=method).headers["Content-Type"] for method in ("GET", "HEAD")]
    for reply in (sap.info(doc_id), sap.doc_get(doc_id)):
        types += [head["Content-Type"] for head, _ in reply.parts() if head.get("X-compId") == comp_id]
    return types


def _put(sap: SapClient, content_type: str, **params: str) -> None:
    reply = sap.create(DOC, "data", PDF_BODY, content_type, **params)
    assert reply.status == 201, reply.error


def _post(sap: SapClient, part: Part) -> None:
    reply = sap.create_multipart(DOC, [part, Part("note", b"a note", "text/plain")])
    assert reply.status == 201, reply.error


def _m_create(sap: SapClient, content_type: str) -> None:
    reply = sap.m_create([Part("data", PDF_BODY, content_type, doc_id=DOC), Part("data", b"x", doc_id="OTHER")])
    assert reply.status == 201, reply.body


def _updated(sap: SapClient, content_type: str) -> None:
    """Created with a plain type, then updated with the empty parameter, then appended to (keeps the type)."""
    _put(sap, "application/pdf")
    assert sap.update(DOC, "data", PDF_BODY, content_type).status == 200
    assert sap.append(DOC, "data", b" more").status == 200


def _updated_multipart(sap: SapClient, content_type: str) -> None:
    _put(sap, "application/pdf")
    assert sap.update_multipart(DOC, [Part("data", PDF_BODY, content_type)]).status == 200


SAP_SHAPES: dict[str, tuple[Callable[[SapClient], None], str]] = {
    "create PUT, charset empty and version in one header": (
        lambda sap: _put(sap, "application/pdf; charset=; version=1.7"),
        "application/pdf; version=1.7",
    ),
    "create PUT, charset empty, version as a URL parameter": (
        lambda sap: _put(sap, "application/pdf; charset=", version="1.7"),
        "application/pdf",
    ),
    "create PUT, charset quoted empty": (
        lambda sap: _put(sap, 'application/pdf; charset=""; version=1.7'),
        "application/pdf; version=1.7",
    ),
    "create PUT, no blanks": (
        lambda sap: _put(sap, "application/pdf;charset=;version=1.7"),
        "application/pdf;version=1.7",
    ),
    "create PUT, version empty": (
        lambda sap: _put(sap, "text/plain; charset=ISO-8859-1; version="),
        "text/plain; charset=ISO-8859-1",
    ),
    "create PUT, both empty": (lambda sap: _put(sap, "application/x-alf; charset=; version="), "application/x-alf"),
    "create PUT, a quoted value holding ; and =": (
        lambda sap: _put(sap, 'application/pdf; name="a; charset=; b"; charset='),
        'application/pdf; name="a; charset=; b"',
    ),
    "create multipart, a part with X-compId and both parameters": (
        lambda sap: _post(sap, Part("data", PDF_BODY, "application/pdf; charset=; version=1.7")),
        "application/pdf; version=1.7",
    ),
    "create multipart, version as a part header of its own": (
        lambda sap: _post(sap, Part("data", PDF_BODY, "application/pdf; charset=", headers=(("version", "1.7"),))),
        "application/pdf",
    ),
    "mCreate, a part with X-docId, X-compId and both parameters": (
        lambda sap: _m_create(sap, "application/pdf; charset=; version=1.7"),
        "application/pdf; version=1.7",
    ),
    "update PUT, then append": (
        lambda sap: _updated(sap, "application/pdf; charset=; version=1.7"),
        "application/pdf; version=1.7",
    ),
    "update multipart": (
        lambda sap: _updated_multipart(sap, "application/pdf; charset=; version=1.7"),
        "application/pdf; version=1.7",
    ),
}


@pytest.mark.parametrize("shape", SAP_SHAPES)
def test_a_served_content_type_never_holds_an_empty_parameter(sap: SapClient, shape: str) -> None:
    send, served = SAP_SHAPES[shape]
    send(sap)
    types = _served_types(sap, DOC, "data")
    assert [_empty_parameters(t) for t in types] == [[]] * 4, types
    assert types == [served] * 4  # the rest as sent


def test_a_component_stored_with_an_empty_parameter_keeps_it_as_sent(sap: SapClient, configured: Runtime) -> None:
    """Only serving leaves it out: the row keeps what SAP sent (and parsed nothing from it)."""
    _put(sap, "application/pdf; charset=; version=1.7")
    with session_scope(configured.sessions) as session:
        stored = session.scalars(select(Document)).one()
        assert (stored.content_type_sent, stored.charset, stored.content_version) == (
            "application/pdf; charset=; version=1.7",
            None,
            "1.7",
        )


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


# --- item 4: a component a destination can give back is online, and searchable --------------------

NEEDLES = b"%PDF-1.4 total: 100 EUR\n" + b"x" * 3000 + b"\ntotal: 200 EUR\n%%EOF\n"
HOLDERS = textwrap.dedent(
    """
    workspaces:
      - owner: acme
        slug: production
        api_keys:
          - {name: erp, role: member, key: "%s"}
        destinations:
          - {id: dest_folder, name: Local Folder, kind: folder, root: "${OUT_DIR}",
             path: "/{repo_id}/{doc_id}_{comp_id}{ext}"}
          - {id: dest_erp, name: ERP, kind: pull, path: "/{repo_id}/{doc_id}_{comp_id}{ext}"}
        repositories:
          - {id: F1, description: Folder only, signature: none, destinations: [dest_folder]}
          - {id: P1, description: Pulled by the ERP, signature: none, destinations: [dest_erp]}
    """
)
ERP_KEY = "fr_live_interop_erp_0123456789"


@pytest.fixture
def holders(configured: Runtime, tmp_path: Path) -> Runtime:
    """conftest's workspace plus F1 (the folder alone) and P1 (a pull integration alone)."""
    with session_scope(configured.sessions) as session:
        apply(
            session,
            load(HOLDERS % ERP_KEY, {"OUT_DIR": str(tmp_path / "out")}),
            now=configured.clock.now(),
            policy=LOOPBACK,
        )
    return configured


def _stored(runtime: Runtime, sap: SapClient, repo: str, content: bytes) -> tuple[str, list[str]]:
    """Create the document as SAP does: its file id and its deliveries' ids."""
    sap.cont_rep = repo
    assert sap.create(DOC, "data", content, "application/pdf").status == 201
    with session_scope(runtime.sessions) as session:
        document = session.scalars(select(Document).where(Document.doc_id == DOC)).one()
        return document.id, [d.id for d in document.deliveries]


def _purge(runtime: Runtime) -> None:
    """What the sweeper does past the retention: release the staged bytes of delivered documents."""
    with session_scope(runtime.sessions) as session:
        keys = sweep.purgeable(session, now=runtime.clock.now(), retention_seconds=0, limit=10)
    assert len(keys) == 1
    runtime.staging.delete(keys[0])


def test_a_purged_component_a_destination_holds_is_online_and_searchable(
    holders: Runtime, sap: SapClient, tmp_path: Path
) -> None:
    _, [folder] = _stored(holders, sap, "F1", NEEDLES)
    assert service.run(holders, folder, rand=lambda: 0.5)
    _purge(holders)

    got = sap.get(DOC, "data")
    assert (got.status, got.body, got.headers["X-compStatus"]) == (200, NEEDLES, "online")
    [(headers, _)] = sap.info(DOC).parts()
    assert headers["X-compStatus"] == "online"
    first, second = NEEDLES.index(b"total:"), NEEDLES.rindex(b"total:")
    # Forward, backward (fromOffset > toOffset), case-folded, and within a range that excludes one hit.
    assert sap.search(DOC, "data", "total:", numResults="5").body == f"2;{first};{second};".encode()
    backward = sap.search(DOC, "data", "TOTAL:", fromOffset="-1", toOffset="0", numResults="5")
    assert (backward.status, backward.body) == (200, f"2;{second};{first};".encode())
    assert sap.search(DOC, "data", "total:", fromOffset="10", numResults="5").body == f"1;{second};".encode()
    assert sap.search(DOC, "data", "absent").body == b"0;"

    (tmp_path / "out" / "F1" / f"{DOC}_data.pdf").unlink()  # the only copy, gone behind FileRelay's back
    gone = sap.search(DOC, "data", "total:")
    assert (gone.status, gone.error) == (409, "the content of component data is no longer held by FileRelay")


def test_a_purged_component_only_an_integration_holds_is_offline(holders: Runtime, sap: SapClient) -> None:
    file_id, _ = _stored(holders, sap, "P1", NEEDLES)
    client = create_app(runtime=holders).test_client()
    body = {"integrationExportStatus": "completed", "integrationExportMessages": []}
    patched = client.patch(f"/api/acme/production/files/{file_id}", json=body, headers={"x-api-key": ERP_KEY})
    assert patched.status_code == 200
    [(before, _)] = sap.info(DOC).parts()
    assert before["X-compStatus"] == "online"  # staging still holds it
    _purge(holders)
    [(after, _)] = sap.info(DOC).parts()
    assert after["X-compStatus"] == "offline"  # the ERP keeps its copy; FileRelay cannot read it
    assert sap.get(DOC, "data").status == 409
    assert sap.search(DOC, "data", "total:").status == 409


# --- item 8: attrSearch over a print list's description ----------------------------------------------

PRINT_LIST = b"".join(f"{i:05d} invoice line {i}\n".encode() for i in range(40))
ALF_DESCR = (
    b"0 0 DPRLV0200\n"
    b"0 0 DKEYcompany_code" + b" " * 28 + b"000004\n"
    b"0 25 DAIN10000000004711Acme plc\n"
    b"25 50 DAIN20000000004712Globex\r\n"
    b"75 25 DAIN10000000004713Acme plc\n"
)


def test_attr_search_finds_the_print_list_lines_by_attribute(sap: SapClient) -> None:
    parts = [Part("data", PRINT_LIST, "text/plain"), Part("descr", ALF_DESCR, "application/x-alf-descr")]
    assert sap.create_multipart(DOC, parts).status == 201
    found = sap.attr_search(DOC, "0+4+1000")
    assert (found.status, found.body, found.headers["Content-Type"]) == (200, b"1;0;25;", "text/plain; charset=utf-8")
    assert sap.attr_search(DOC, "0+4+1000", numResults="9").body == b"2;0;25;75;25;"
    assert sap.attr_search(DOC, "0+4+1000%234+10+4713", numResults="9").body == b"1;75;25;"
    assert sap.attr_search(DOC, "14+20+ACME%20PLC", numResults="9").body == b"2;0;25;75;25;"
    assert sap.attr_search(DOC, "14+20+ACME%20PLC", caseSensitive="y").body == b"0;"
    assert sap.attr_search(DOC, "1+3+000", fromOffset="80", toOffset="0", numResults="2").body == b"2;75;25;25;50;"
    # compId names another description component; the default is descr.
    assert sap.attr_search(DOC, "0+4+1000", compId="data").body == b"0;"


@pytest.mark.parametrize(
    ("params", "status", "error"),
    [
        ({"pattern": None}, 400, "missing mandatory parameter pattern"),
        ({"pattern": "1000"}, 400, "invalid attrSearch pattern part '1000': expected position+length+value"),
        ({"pattern": "0+4+1000", "caseSensitive": "x"}, 400, "caseSensitive must be y or n"),
        ({"pattern": "0+4+1000", "numResults": "0"}, 400, "numResults must be a positive integer"),
        ({"pattern": "0+4+1000", "compId": "descr2"}, 404, f"document {DOC} has no descr2 component to search"),
    ],
)
def test_attr_search_errors_are_clear(sap: SapClient, params: dict[str, str | None], status: int, error: str) -> None:
    assert sap.create_multipart(DOC, [Part("descr", ALF_DESCR, "application/x-alf-descr")]).status == 201
    reply = sap.raw("GET", sap.query("attrSearch", docId=DOC, **params))
    assert (reply.status, reply.error) == (status, error)


def test_attr_search_of_a_document_without_descr_is_404(sap: SapClient) -> None:
    assert sap.create(DOC, "data", PRINT_LIST, "text/plain").status == 201
    reply = sap.attr_search(DOC, "0+4+1000")
    assert (reply.status, reply.error) == (404, f"document {DOC} has no descr component to search")
    assert sap.attr_search("MISSING", "0+4+1000").status == 404
