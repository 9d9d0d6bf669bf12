"""The headers every answer carrying stored content (a document SAP archived) gets, whichever route
serves it: ArchiveLink `get` and `docGet`, the files API's content (also through a webhook's download
link) and the console's download.

SAP archives whatever its users attach, `text/html` or `image/svg+xml` included, and FileRelay sends the
bytes and their Content-Type back exactly as they came (SAP's viewer relies on both). Served from
FileRelay's origin, such a document would run its scripts with the console's origin: a sandboxing CSP
gives it an opaque origin of its own, nosniff keeps a browser from guessing a runnable type from the bytes,
and any type not known to be inert goes as a download instead of being shown.
"""

from __future__ import annotations

from flask import Response

# `sandbox`: a unique opaque origin, no scripts, no forms; `default-src 'none'`: nothing loaded either.
CONTENT_POLICY = "sandbox; default-src 'none'"
# Types a browser displays without running anything. Not SVG (an image that runs script), nor HTML, XML
# or anything unknown.
INERT_TYPES = frozenset(
    {
        "application/pdf",
        "application/octet-stream",
        "text/plain",
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/tiff",
        "image/bmp",
        "image/webp",
    }
)


def is_inert(content_type: str | None) -> bool:
    """Whether a browser would display this Content-Type header without running anything: judged on the
    header as sent, since that is what the browser reads (parameters ignored, case folded)."""
    if not content_type:
        return False
    return content_type.split(";", 1)[0].strip().lower() in INERT_TYPES


def protect(response: Response) -> Response:
    """Sandbox and nosniff always; `Content-Disposition: attachment` unless the type is inert or the
    route already chose a disposition (a file name). Body and Content-Type stay as they are."""
    response.headers["Content-Security-Policy"] = CONTENT_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    if "Content-Disposition" not in response.headers and not is_inert(response.headers.get("Content-Type")):
        response.headers["Content-Disposition"] = "attachment"
    return response
