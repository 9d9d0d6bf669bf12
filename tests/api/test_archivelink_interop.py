"""Where ArchiveLink clients differ, FileRelay answers as SAP's own content-server handler does (issue 13):
the exact request shapes, over real HTTP."""

from __future__ import annotations

import pytest

from filerelay.api.archivelink.protocol import content_disposition
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
