"""A test client that talks to a content server the way SAP does: raw query strings in SAP's
parameter order, `key="value";` bodies, multipart parts identified by X-compId (no Content-Disposition)."""

from __future__ import annotations

import http.client
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesParser
from urllib.parse import urlsplit


@dataclass
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def error(self) -> str | None:
        return self.headers.get("X-ErrorDescription")

    def records(self) -> list[dict[str, str]]:
        from filerelay.api.archivelink.protocol import parse_records

        return parse_records(self.body)

    def parts(self) -> list[tuple[dict[str, str], bytes]]:
        """Split a multipart/form-data reply into (headers, content) pairs."""
        message = BytesParser().parsebytes(
            b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + self.body
        )
        out: list[tuple[dict[str, str], bytes]] = []
        if not message.is_multipart():
            return []  # a document without components: only the closing boundary
        for part in message.get_payload():
            assert isinstance(part, Message)
            payload = part.get_payload(decode=True)
            out.append((dict(part.items()), payload if isinstance(payload, bytes) else b""))
        return out


@dataclass(frozen=True)
class Part:
    comp_id: str
    content: bytes
    content_type: str = "application/octet-stream"
    doc_id: str | None = None
    headers: tuple[tuple[str, str], ...] = ()  # more part headers, after the usual ones


def multipart_body(parts: Sequence[Part], boundary: str | None = None) -> tuple[bytes, str]:
    boundary = boundary or f"KPro{secrets.token_hex(8)}"
    chunks = []
    for part in parts:
        head = [f"--{boundary}"]
        if part.doc_id is not None:
            head.append(f"X-docId: {part.doc_id}")
        head += [
            f"X-compId: {part.comp_id}",
            f"Content-Type: {part.content_type}",
            f"Content-Length: {len(part.content)}",
            *(f"{name}: {value}" for name, value in part.headers),
        ]
        chunks.append(("\r\n".join(head) + "\r\n\r\n").encode() + part.content + b"\r\n")
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


class SapClient:
    def __init__(self, endpoint: str, *, p_version: str = "0047", cont_rep: str = "Z1") -> None:
        parts = urlsplit(endpoint)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path
        self.p_version = p_version
        self.cont_rep = cont_rep

    def raw(self, method: str, query: str, body: bytes | None = None, headers: dict[str, str] | None = None) -> Reply:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.request(method, f"{self.path}?{query}", body=body, headers=headers or {})
            response = conn.getresponse()
            return Reply(response.status, response.headers, response.read())
        finally:
            conn.close()

    def query(self, command: str, **params: str | None) -> str:
        """SAP's order: command, pVersion, contRep, then the command's own parameters."""
        # contRep=None (or pVersion=None) leaves that parameter out.
        base: dict[str, str | None] = {"pVersion": self.p_version, "contRep": self.cont_rep}
        base |= {k: v for k, v in params.items() if k in base}
        rest = {k: v for k, v in params.items() if k not in base}
        return command + "".join(f"&{k}={v}" for k, v in (base | rest).items() if v is not None)

    def server_info(self, **params: str | None) -> Reply:
        return self.raw("GET", self.query("serverInfo", **params))

    def create(
        self,
        doc_id: str,
        comp_id: str,
        content: bytes,
        content_type: str = "application/pdf",
        **params: str | None,
    ) -> Reply:
        query = self.query("create", docId=doc_id, compId=comp_id, **params)
        return self.raw("PUT", query, content, {"Content-Type": content_type})

    def create_multipart(self, doc_id: str, parts: Sequence[Part], **params: str | None) -> Reply:
        body, content_type = multipart_body(parts)
        return self.raw("POST", self.query("create", docId=doc_id, **params), body, {"Content-Type": content_type})

    def m_create(self, parts: Sequence[Part]) -> Reply:
        body, content_type = multipart_body(parts)
        first = parts[0].doc_id if parts else None
        return self.raw("POST", self.query("mCreate", docId=first), body, {"Content-Type": content_type})

    def get(self, doc_id: str, comp_id: str | None = None, method: str = "GET", **params: str | None) -> Reply:
        return self.raw(method, self.query("get", docId=doc_id, compId=comp_id, **params))

    def info(self, doc_id: str, comp_id: str | None = None) -> Reply:
        return self.raw("GET", self.query("info", docId=doc_id, compId=comp_id))

    def doc_get(self, doc_id: str) -> Reply:
        return self.raw("GET", self.query("docGet", docId=doc_id))

    def delete(self, doc_id: str, comp_id: str | None = None) -> Reply:
        return self.raw("GET", self.query("delete", docId=doc_id, compId=comp_id))

    def update(self, doc_id: str, comp_id: str, content: bytes, content_type: str = "application/pdf") -> Reply:
        query = self.query("update", docId=doc_id, compId=comp_id)
        return self.raw("PUT", query, content, {"Content-Type": content_type})

    def update_multipart(self, doc_id: str, parts: Sequence[Part]) -> Reply:
        body, content_type = multipart_body(parts)
        return self.raw("POST", self.query("update", docId=doc_id), body, {"Content-Type": content_type})

    def append(self, doc_id: str, comp_id: str, content: bytes) -> Reply:
        return self.raw("PUT", self.query("append", docId=doc_id, compId=comp_id), content)

    def search(self, doc_id: str, comp_id: str, pattern: str, **params: str | None) -> Reply:
        return self.raw("GET", self.query("search", docId=doc_id, compId=comp_id, pattern=pattern, **params))

    def attr_search(self, doc_id: str, pattern: str, **params: str | None) -> Reply:
        """`pattern` raw, as it goes into the URL: `position+length+value` parts joined by `%23` (a
        literal `#` would start the URL's fragment), each value %-encoded."""
        return self.raw("GET", self.query("attrSearch", docId=doc_id, pattern=pattern, **params))
