"""Bounds on what one ArchiveLink request may make FileRelay hold or keep: search hits, multipart parts
and their headers, pending certificates."""

from __future__ import annotations

from sqlalchemy import select

from filerelay.certificates import MAX_PENDING_PER_REPOSITORY
from filerelay.db.models import ArchiveDocument, Certificate, Document
from filerelay.db.session import session_scope
from filerelay.runtime import Runtime
from tests.support.documents import DOC, count, staged_files
from tests.support.sapclient import Part, SapClient
from tests.support.signing import make_signer


def test_search_answers_at_most_ten_thousand_hits(sap: SapClient) -> None:
    assert sap.create(DOC, "data", b"a" * (1 << 20), "text/plain").status == 201
    reply = sap.search(DOC, "data", "a", numResults="99999999999")
    assert reply.status == 200
    values = reply.body.decode().split(";")[:-1]
    assert values[0] == "10000"
    assert [int(v) for v in values[1:]] == list(range(10_000))


def _nothing_stored(configured: Runtime) -> None:
    assert count(configured, ArchiveDocument) == 0
    assert count(configured, Document) == 0
    assert staged_files(configured) == []


def test_a_hundred_parts_are_stored_but_not_a_hundred_and_one(sap: SapClient, configured: Runtime) -> None:
    many = [Part(f"p{n}", b"x") for n in range(101)]
    reply = sap.create_multipart(DOC, many)
    assert reply.status == 400
    assert reply.error == "the request has more than 100 parts"
    _nothing_stored(configured)
    assert sap.create_multipart(DOC, many[:100]).status == 201
    assert count(configured, Document) == 100


def _one_part(headers: list[str], boundary: str = "KProHuge") -> tuple[bytes, dict[str, str]]:
    head = "\r\n".join([f"--{boundary}", *headers, "Content-Type: text/plain"])
    body = f"{head}\r\n\r\ncontent\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_a_part_with_too_many_header_bytes_is_refused(sap: SapClient, configured: Runtime) -> None:
    padding = [f"X-Padding{n}: {'a' * 4000}" for n in range(5)]
    body, headers = _one_part(["X-compId: data", *padding])
    reply = sap.raw("POST", sap.query("create", docId=DOC), body, headers)
    assert reply.status == 400
    assert reply.error == "part 1 has more than 16384 bytes of headers"
    _nothing_stored(configured)
    body, headers = _one_part(["X-docId: D1", "X-compId: data", *padding])
    reply = sap.raw("POST", sap.query("mCreate", docId="D1"), body, headers)
    assert reply.status == 400
    assert reply.error == "part 1 has more than 16384 bytes of headers"
    _nothing_stored(configured)
    # One endless header line is refused as soon as it is over the parser's bound for one line.
    body, headers = _one_part(["X-compId: data", f"X-Padding: {'a' * (1 << 20)}"])
    reply = sap.raw("POST", sap.query("create", docId=DOC), body, headers)
    assert reply.status == 400
    assert reply.error == "malformed multipart body: Maximum header size exceeded"
    _nothing_stored(configured)
    # Headers under the bounds pass.
    body, headers = _one_part(["X-compId: data", *padding[:3]])
    assert sap.raw("POST", sap.query("create", docId=DOC), body, headers).status == 201


def _pending(configured: Runtime) -> list[str]:
    with session_scope(configured.sessions) as session:
        rows = session.scalars(select(Certificate).where(Certificate.active.is_(False)).order_by(Certificate.id))
        return [row.fingerprint for row in rows]


def test_a_repository_keeps_ten_pending_certificates_the_newest(sap: SapClient, configured: Runtime) -> None:
    signers = [make_signer("ecdsa", f"S4H{n}") for n in range(MAX_PENDING_PER_REPOSITORY + 2)]
    for signer in signers:
        der = signer.der
        reply = sap.raw("PUT", sap.query("putCert", authId="CN%3DS4H"), der)
        assert reply.status == 200, reply.error
    assert MAX_PENDING_PER_REPOSITORY == 10
    assert _pending(configured) == [s.fingerprint for s in signers[2:]]
