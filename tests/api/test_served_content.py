"""Stored content never runs on FileRelay's origin: ArchiveLink `get` and `docGet`, the files API's
content (with a key or a webhook's download link) and the console's download are sandboxed and nosniff,
and go as downloads unless their type is inert. Bytes and Content-Type stay as SAP sent them."""

from __future__ import annotations

from collections.abc import Mapping
from http.client import HTTPMessage
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select

from filerelay.db.models import Document
from filerelay.db.session import session_scope
from filerelay.file_links import FileLinks
from filerelay.runtime import Runtime
from tests.support.documents import DOC
from tests.support.keys import VIEWER_KEY
from tests.support.sapclient import Part, SapClient

SANDBOX = "sandbox; default-src 'none'"
PAGE = b"<html><script>fetch('/ui/globex/main/').then(r => r.text()).then(steal)</script></html>"


def _protected(headers: Mapping[str, str] | HTTPMessage) -> None:
    assert headers.get("Content-Security-Policy") == SANDBOX
    assert headers.get("X-Content-Type-Options") == "nosniff"


@pytest.mark.parametrize(
    ("content_type", "disposition"),
    [
        ("text/html", "attachment"),
        ("text/html; charset=utf-8", "attachment"),
        ("image/svg+xml", "attachment"),
        ("application/xml", "attachment"),
        ("Content-Type: application/pdf", "attachment"),
        ("application/pdf", None),
        ("image/tiff", None),
        ("text/plain; charset=ISO-8859-1", None),
        ("application/octet-stream", None),
    ],
)
def test_get_is_sandboxed_and_a_download_unless_inert(
    sap: SapClient, content_type: str, disposition: str | None
) -> None:
    assert sap.create(DOC, "data", PAGE, content_type).status == 201
    for method in ("GET", "HEAD"):
        reply = sap.get(DOC, "data", method=method)
        assert reply.status == 200
        _protected(reply.headers)
        assert reply.headers.get("Content-Disposition") == disposition
        assert reply.headers["Content-Type"] == content_type  # as sent, unchanged
    assert sap.get(DOC, "data").body == PAGE


def test_a_component_named_like_a_file_keeps_its_file_name(sap: SapClient) -> None:
    assert sap.create(DOC, "page.html", PAGE, "text/html").status == 201
    reply = sap.get(DOC, "page.html")
    _protected(reply.headers)
    assert reply.headers["Content-Disposition"] == 'attachment; filename="page.html"'


def test_doc_get_is_sandboxed_and_a_download_with_its_parts_as_they_were(sap: SapClient) -> None:
    parts = [Part("data", PAGE, "text/html"), Part("scan", b"%PDF-1.4 scan", "application/pdf")]
    assert sap.create_multipart(DOC, parts).status == 201
    reply = sap.doc_get(DOC)
    assert reply.status == 200
    _protected(reply.headers)
    assert reply.headers["Content-Disposition"] == "attachment"
    assert reply.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    got = reply.parts()
    assert [(h["X-compId"], h["Content-Type"], body) for h, body in got] == [
        ("data", "text/html", PAGE),
        ("scan", "application/pdf", b"%PDF-1.4 scan"),
    ]
    assert all("Content-Disposition" not in h and "Content-Security-Policy" not in h for h, _ in got)


def _file_id(runtime: Runtime) -> str:
    with session_scope(runtime.sessions) as session:
        return session.scalars(select(Document.id).where(Document.doc_id == DOC)).one()


def test_files_content_by_key_and_by_download_link_is_sandboxed(sap: SapClient, relay: Runtime, server: str) -> None:
    assert sap.create(DOC, "data", PAGE, "text/html").status == 201
    file_id = _file_id(relay)
    by_key = requests.get(
        f"{server}/api/acme/production/files/{file_id}/content",
        headers={"Authorization": f"Bearer {VIEWER_KEY}"},
        timeout=30,
    )
    links = FileLinks(relay.settings.with_overrides(public_url="http://filerelay.example"))
    link, _ = links.make(workspace="acme/production", document_id=file_id, now=relay.clock.now())
    address = urlsplit(link)
    by_link = requests.get(f"{server}{address.path}?{address.query}", timeout=30)
    for reply in (by_key, by_link):
        assert reply.status_code == 200
        _protected(reply.headers)
        assert reply.headers["Content-Disposition"].startswith("attachment")
        assert reply.content == PAGE
