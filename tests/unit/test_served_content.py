"""Which Content-Type headers a browser displays without running anything (the rest go as downloads)."""

from __future__ import annotations

import pytest

from filerelay.api.served_content import is_inert


@pytest.mark.parametrize(
    "content_type",
    [
        "application/pdf",
        "APPLICATION/PDF",
        "application/pdf; version=1.4",
        "application/octet-stream",
        "text/plain",
        "text/plain; charset=ISO-8859-1",
        "image/tiff",
        "image/png",
        "image/jpeg",
        "image/gif",
        " image/webp ",
    ],
)
def test_inert(content_type: str) -> None:
    assert is_inert(content_type)


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "",
        "text/html",
        "TEXT/HTML; charset=utf-8",
        "image/svg+xml",
        "application/xhtml+xml",
        "text/xml",
        "application/xml",
        "application/javascript",
        "multipart/form-data; boundary=x",
        "application/x-alf",
        "Content-Type: application/pdf",  # as SAP sometimes sends it: not what a browser reads as PDF
        "pdf",
        "text/plainx",
    ],
)
def test_not_inert(content_type: str | None) -> None:
    assert not is_inert(content_type)
