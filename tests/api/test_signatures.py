"""secKey over real HTTP: putCert, activation, every signed command with URLs signed the way SAP signs
them (DSA-1024/SHA-1, RSA-2048/SHA-256, ECDSA P-256/SHA-256; with and without signed attributes), and
every way a signature can be wrong: 401, an X-ErrorDescription, and nothing changed."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import http.client
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy import select

from filerelay import certificates, documents
from filerelay.api.archivelink import commands, signatures
from filerelay.audit import CLI_ACTOR
from filerelay.db.models import ArchiveDocument, Document
from filerelay.db.session import session_scope
from filerelay.operations import Transaction, configuration
from filerelay.runtime import Runtime
from tests.support.documents import staged_files
from tests.support.sapclient import Part, Reply, SapClient
from tests.support.signing import (
    Signer,
    SigningSap,
    cached_signer,
    cms_signature,
    drop_param,
    make_signer,
    replace_param,
    ripemd160_signer,
    signed_message,
    url_encode_sec_key,
)
from tests.support.wakeups import take_wakeups, woken_kinds
from tests.support.workspaces import SIGNATURE_MODES, configure

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
DOC = "361A524A3ECB5459E0000800099245EC"
DOC2 = "361A524A3ECB5459E0000800099245ED"
DOC3 = "361A524A3ECB5459E0000800099245EE"
NEW = "5B0E4C8B1C2A11EFA0000800099245EC"
NEW2 = "5B0E4C8B1C2A11EFA0000800099245ED"
AUTH_ID = "CN%3DS4H"  # raw, as SAP sends it; the certificate is stored under the decoded "CN=S4H"


@pytest.fixture
def configured(runtime: Runtime, tmp_path: Path) -> Runtime:
    """Overrides conftest's: the same workspace, with repositories in each signature mode."""
    return configure(runtime, SIGNATURE_MODES, {"OUT_DIR": str(tmp_path / "out")})


def endpoint(server: str) -> str:
    return server + "/archivelink/acme/production"


def client(server: str, runtime: Runtime, repo: str, signer: Signer | None, **options: Any) -> SigningSap:
    return SigningSap(SapClient(endpoint(server), cont_rep=repo), signer, now=runtime.clock.now(), **options)


def set_active(runtime: Runtime, repo: str, signer: Signer, *, active: bool = True) -> None:
    """What `filerelay certs activate` (or `revoke`) does: through the audited operations layer."""
    with session_scope(runtime.sessions) as session:
        workspace = documents.find_workspace(session, owner="acme", slug="production")
        assert workspace is not None
        tx = Transaction(session=session, actor=CLI_ACTOR, now=runtime.clock.now())
        configuration.set_certificate(
            tx, workspace_id=workspace.id, repo_id=repo, fingerprint=signer.fingerprint, active=active
        )


def trust(server: str, runtime: Runtime, repo: str, signer: Signer, auth_id: str = AUTH_ID) -> None:
    """What the admin does: SAP sends the certificate (OAC0), the admin activates it."""
    reply = client(server, runtime, repo, None).put_cert(signer.der, auth_id=auth_id)
    assert reply.status == 200, reply.error
    set_active(runtime, repo, signer)


def listed(runtime: Runtime, repo: str | None = None) -> list[certificates.CertificateInfo]:
    with session_scope(runtime.sessions) as session:
        return list(certificates.list_for(session, repo_id=repo))


def snapshot(runtime: Runtime) -> tuple[object, ...]:
    """Everything a request could change: documents, components, staged bytes, the kinds woken."""
    with session_scope(runtime.sessions) as session:
        docs = sorted(
            (d.repository_id, d.doc_id, d.doc_prot, d.deleted_at is None, d.updated_at)
            for d in session.scalars(select(ArchiveDocument))
        )
        comps = sorted(
            (c.doc_id, c.comp_id, c.sha256, c.size_bytes, c.generation, c.status, c.staging_key)
            for c in session.scalars(select(Document))
        )
    staged = [(p, p.read_bytes()) for p in staged_files(runtime)]
    return docs, comps, staged, woken_kinds(runtime)


def snapshot_before(runtime: Runtime) -> tuple[object, ...]:
    """The snapshot before a request, every wake-up sent so far taken (as a worker would): one outstanding
    per kind hides any more, so only thus would a rejected request's wake-up show."""
    take_wakeups(runtime)
    return snapshot(runtime)


# --- putCert and activation -------------------------------------------------------------------


def _pkcs7_pem(signer: Signer) -> bytes:
    return signer.pkcs7_certs_only(serialization.Encoding.PEM)


CERT_BODIES: dict[str, Callable[[Signer], bytes]] = {
    "DER": lambda s: s.der,
    "PEM": lambda s: s.pem,
    "PKCS#7 DER": lambda s: s.pkcs7_certs_only(),
    "PKCS#7 PEM": _pkcs7_pem,
    "Base64 DER": lambda s: base64.b64encode(s.der),
}


@pytest.mark.parametrize("method", ["PUT", "POST"])
@pytest.mark.parametrize("body", list(CERT_BODIES))
def test_put_cert_stores_the_certificate_inactive(server: str, configured: Runtime, method: str, body: str) -> None:
    signer = cached_signer("dsa")
    reply = client(server, configured, "S1", None).put_cert(CERT_BODIES[body](signer), method=method)
    assert reply.status == 200, reply.error
    [info] = listed(configured)
    assert (info.repo_id, info.auth_id, info.active, info.activated_at) == ("S1", "CN=S4H", False, None)
    assert info.fingerprint == signer.fingerprint
    assert info.subject == info.issuer == "CN=S4H"
    assert info.serial == format(signer.certificate.serial_number, "x")
    assert info.not_before == signer.certificate.not_valid_before_utc
    assert info.not_after == signer.certificate.not_valid_after_utc
    assert info.received_at == configured.clock.now()


def test_put_cert_twice_keeps_one_row_and_certificates_are_per_repository(server: str, configured: Runtime) -> None:
    dsa_signer, rsa_signer = cached_signer("dsa"), cached_signer("rsa")
    s1 = client(server, configured, "S1", None)
    assert s1.put_cert(dsa_signer.der).status == 200
    assert s1.put_cert(dsa_signer.pem).status == 200
    assert s1.put_cert(rsa_signer.der, method="POST").status == 200
    assert client(server, configured, "S2", None).put_cert(dsa_signer.der).status == 200
    assert sorted((i.repo_id, i.fingerprint) for i in listed(configured)) == sorted(
        [("S1", dsa_signer.fingerprint), ("S1", rsa_signer.fingerprint), ("S2", dsa_signer.fingerprint)]
    )
    assert [i.fingerprint for i in listed(configured, "S2")] == [dsa_signer.fingerprint]


@pytest.mark.parametrize(
    "body",
    [b"garbage", b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", b"\x30\x03\x02\x01\x01"],
)
def test_put_cert_with_an_unreadable_body_is_406(server: str, configured: Runtime, body: bytes) -> None:
    reply = client(server, configured, "S1", None).put_cert(body)
    assert reply.status == 406
    assert reply.error
    assert listed(configured) == []


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("putCert&pVersion=0047&contRep=S1", 400),  # authId is mandatory
        ("putCert&pVersion=0047&contRep=QQ&authId=CN%3DS4H", 404),  # unknown repository
        ("putCert&pVersion=0047&authId=CN%3DS4H", 400),
    ],
)
def test_put_cert_parameter_errors(server: str, configured: Runtime, query: str, status: int) -> None:
    reply = SapClient(endpoint(server)).raw("PUT", query, cached_signer("dsa").der)
    assert reply.status == status
    assert reply.error
    assert listed(configured) == []


def test_put_cert_empty_and_oversized_bodies(server: str, configured: Runtime) -> None:
    limit = certificates.MAX_CERTIFICATE_BYTES
    s1 = client(server, configured, "S1", None)
    empty = s1.put_cert(b"")
    assert (empty.status, empty.error) == (406, "putCert needs the certificate as the request body")
    huge = s1.put_cert(b"0" * (limit + 1))
    assert (huge.status, huge.error) == (413, f"a certificate is at most {limit} bytes")
    # Exactly at the limit is read (and then refused as no certificate, not as too large).
    at_limit = s1.put_cert(b"0" * limit)
    assert at_limit.status == 406, at_limit.error
    # Without a Content-Length (chunked), the body is read up to one byte past the limit and judged.
    for size, status in ((limit + 1, 413), (limit, 406)):
        assert put_cert_chunked(server, b"0" * size) == status
    assert listed(configured) == []


def put_cert_chunked(server: str, body: bytes) -> int:
    url = urlsplit(endpoint(server))
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    try:
        query = f"putCert&pVersion=0047&contRep=S1&authId={AUTH_ID}"
        chunks = (body[i : i + 4096] for i in range(0, len(body), 4096))
        conn.request("PUT", f"{url.path}?{query}", body=chunks, encode_chunked=True)
        return conn.getresponse().status
    finally:
        conn.close()


def test_activation_lifecycle_received_active_revoked(server: str, configured: Runtime) -> None:
    signer = cached_signer("dsa")
    sap = client(server, configured, "S1", signer)
    assert sap.put_cert(signer.der).status == 200
    inactive = sap.info(DOC)
    assert inactive.status == 401
    assert inactive.error == "no active certificate for authId 'CN=S4H'; send it with putCert and activate it"
    set_active(configured, "S1", signer)
    [info] = listed(configured)
    assert info.active
    assert info.activated_at == configured.clock.now()
    assert sap.info(DOC).status == 404  # past the signature check: the document does not exist
    assert sap.create(DOC, "data", PDF).status == 201
    assert sap.get(DOC).body == PDF
    set_active(configured, "S1", signer, active=False)
    assert not listed(configured)[0].active
    revoked = sap.get(DOC)
    assert revoked.status == 401
    assert PDF not in revoked.body


def test_revoking_and_activating_govern_the_next_signed_create(world: World) -> None:
    """A create relies on the process's snapshot of the repository's certificates until its INSERT finds
    the configuration changed: a revoked signer is then refused with nothing kept, its body unstaged."""
    sap = world.client(world.trusted)
    assert sap.create("KEPT1", "data", PDF).status == 201
    set_active(world.runtime, "S1", world.trusted, active=False)
    before = snapshot(world.runtime)
    assert sap.create("REFUSED", "data", PDF).status == 401
    assert snapshot(world.runtime) == before
    set_active(world.runtime, "S1", world.trusted)
    assert sap.create("KEPT2", "data", PDF).status == 201


# --- every command, signed ---------------------------------------------------------------------

# SAP's own algorithms, and RSA over RIPEMD-160 (the specification's other digest besides MD5/SHA).
SIGNERS: list[tuple[str, bool]] = [
    ("dsa", False),
    ("dsa", True),
    ("rsa", False),
    ("rsa", True),
    ("ecdsa", True),
    ("rsa-ripemd160", False),
    ("rsa-ripemd160", True),
]


@pytest.mark.parametrize(
    ("kind", "attributes"), SIGNERS, ids=[f"{k}-{'attrs' if a else 'noattrs'}" for k, a in SIGNERS]
)
def test_every_command_with_sap_signed_urls(server: str, configured: Runtime, kind: str, attributes: bool) -> None:
    signer = ripemd160_signer() if kind == "rsa-ripemd160" else cached_signer(kind)
    trust(server, configured, "S1", signer)
    sap = client(server, configured, "S1", signer, attributes=attributes)

    # create (PUT), with docProt signed
    assert sap.create(DOC, "data", PDF, "application/pdf", docProt="rcud").status == 201
    # info, get, HEAD get, docGet, search
    info = sap.info(DOC)
    assert info.status == 200, info.error
    assert [h["X-compId"] for h, _ in info.parts()] == ["data"]
    got = sap.get(DOC, "data")
    assert (got.status, got.body, got.headers["X-docProt"]) == (200, PDF, "rcud")
    head = sap.get(DOC, method="HEAD")
    assert (head.status, head.body, head.headers["Content-Length"]) == (200, b"", str(len(PDF)))
    doc_get = sap.doc_get(DOC)
    assert doc_get.status == 200, doc_get.error
    assert [(h["X-compId"], body) for h, body in doc_get.parts()] == [("data", PDF)]
    found = sap.search(DOC, "data", "EOF")
    assert (found.status, found.body) == (200, f"1;{PDF.index(b'EOF')};".encode())
    assert sap.create(DOC3, "descr", b"73 138 DAIN1000 4711\n", "application/x-alf-descr").status == 201
    found = sap.attr_search(DOC3, "0+4+1000")
    assert (found.status, found.body) == (200, b"1;73;138;")
    # update (PUT), append
    assert sap.update(DOC, "data", b"hello ", "text/plain").status == 200
    assert sap.append(DOC, "data", b"world").status == 200
    assert sap.get(DOC).body == b"hello world"
    # create (POST multipart), update (POST multipart)
    assert sap.create_multipart(DOC2, [Part("data1", b"one"), Part("data2", b"two")], docProt="").status == 201
    updated = sap.update_multipart(DOC2, [Part("data2", b"TWO")])
    assert updated.status == 200, updated.error
    assert [(h["X-compId"], body) for h, body in sap.doc_get(DOC2).parts()] == [("data2", b"TWO")]
    # mCreate: the first docId of the body is signed in the URL
    m_created = sap.m_create([Part("data", b"n1", doc_id=NEW), Part("data", b"n2", doc_id=NEW2)])
    assert m_created.status == 201, m_created.error
    assert [r["retCode"] for r in m_created.records()] == ["201", "201"]
    # delete: a component (compId signed), a whole document, and the HTTP DELETE spelling
    assert sap.delete(DOC2, "data2").status == 200
    assert sap.delete(DOC).status == 200
    assert sap.get(DOC).status == 404
    deleted = sap.send("DELETE", sap.query("delete", docId=NEW))
    assert deleted.status == 200, deleted.error
    assert sap.get(NEW2).body == b"n2"

    signed_routes = {(m, c) for m, c in commands.ROUTES if signatures.guard_of(c).access is not None}
    assert {(m, c.lower()) for m, c in sap.sent} == signed_routes


def test_percent_encoded_signed_values_are_signed_raw(server: str, configured: Runtime) -> None:
    """SAP signs what is in the URL: `DOC%2F1` and `scan%3A1.tif`, not their decoded forms."""
    signer = cached_signer("dsa")
    trust(server, configured, "S1", signer)
    sap = client(server, configured, "S1", signer)
    assert signed_message("create", sap.params("create", docId="DOC%2F1", compId="scan%3A1.tif")).startswith(
        b"S1DOC%2F1scan%3A1.tif"
    )
    assert sap.create("DOC%2F1", "scan%3A1.tif", b"tiff", "image/tiff").status == 201
    assert sap.get("DOC%2F1", "scan%3A1.tif").body == b"tiff"
    with session_scope(configured.sessions) as session:
        assert session.scalars(select(Document.comp_id)).all() == ["scan:1.tif"]


def test_a_url_signed_for_get_with_rd_may_delete(server: str, configured: Runtime) -> None:
    """The spec's own hint: swap the command, keep the signature (compId is not signed for get)."""
    signer = cached_signer("rsa")
    trust(server, configured, "S1", signer)
    sap = client(server, configured, "S1", signer)
    assert sap.create(DOC, "data", PDF).status == 201
    reader = dataclasses.replace(sap, access_mode="rd")
    query = reader.query("get", docId=DOC)
    assert sap.send("GET", query).body == PDF
    assert sap.send("GET", "delete" + query.removeprefix("get")).status == 200
    assert sap.get(DOC).status == 404


def test_expiration_within_the_clock_skew_is_accepted(server: str, configured: Runtime) -> None:
    signer = cached_signer("dsa")
    trust(server, configured, "S1", signer)
    assert client(server, configured, "S1", signer).create(DOC, "data", PDF).status == 201
    skew = configured.settings.signature_clock_skew_seconds
    late = client(server, configured, "S1", signer, valid_for=dt.timedelta(seconds=-skew))
    assert late.get(DOC).body == PDF


# --- negative cases: 401, a reason, nothing changed -------------------------------------------

Send = Callable[[SigningSap], Reply]
# Each command against the seeded document DOC (component `data`), or creating NEW.
COMMANDS: dict[str, tuple[str, Send]] = {
    "info": ("r", lambda c: c.info(DOC)),
    "get": ("r", lambda c: c.get(DOC, "data")),
    "get-HEAD": ("r", lambda c: c.get(DOC, method="HEAD")),
    "docGet": ("r", lambda c: c.doc_get(DOC)),
    "search": ("r", lambda c: c.search(DOC, "data", "PDF")),
    "create-PUT": ("c", lambda c: c.create(NEW, "data", b"forged")),
    "create-POST": ("c", lambda c: c.create_multipart(NEW, [Part("data1", b"forged")])),
    "mCreate": ("c", lambda c: c.m_create([Part("data", b"forged", doc_id=NEW), Part("data", b"x", doc_id=NEW2)])),
    "update-PUT": ("u", lambda c: c.update(DOC, "data", b"forged")),
    "update-POST": ("u", lambda c: c.update_multipart(DOC, [Part("data", b"forged")])),
    "append": ("u", lambda c: c.append(DOC, "data", b"forged")),
    "delete": ("d", lambda c: c.delete(DOC)),
    "delete-comp": ("d", lambda c: c.delete(DOC, "data")),
    "delete-DELETE": ("d", lambda c: c.send("DELETE", c.query("delete", docId=DOC))),
}
WRONG_MODE = {"r": "cud", "c": "r", "u": "rcd", "d": "c"}


@dataclasses.dataclass(frozen=True)
class World:
    server: str
    runtime: Runtime
    trusted: Signer  # active for S1
    other: Signer  # active for S2 only
    inactive: Signer  # sent to S1, never activated
    revoked: Signer  # sent to S1, activated, revoked
    unknown: Signer  # never sent

    def client(self, signer: Signer | None, repo: str = "S1", **options: Any) -> SigningSap:
        return client(self.server, self.runtime, repo, signer, **options)


@pytest.fixture
def world(server: str, configured: Runtime) -> World:
    w = World(
        server,
        configured,
        trusted=cached_signer("dsa"),
        other=cached_signer("rsa"),
        inactive=cached_signer("ecdsa"),
        revoked=cached_signer("rsa", "revoked"),
        unknown=cached_signer("dsa", "unknown"),
    )
    trust(server, configured, "S1", w.trusted)
    trust(server, configured, "S2", w.other)
    assert w.client(None).put_cert(w.inactive.der).status == 200
    trust(server, configured, "S1", w.revoked)
    set_active(configured, "S1", w.revoked, active=False)
    for repo, signer in (("S1", w.trusted), ("S2", w.other)):
        sap = w.client(signer, repo)
        assert sap.create(DOC, "data", PDF, "application/pdf").status == 201
        assert sap.create(DOC2, "data", b"the other document").status == 201
    return w


def assert_rejected(world: World, send: Send, sap: SigningSap, status: int = 401) -> Reply:
    before = snapshot_before(world.runtime)
    reply = send(sap)
    assert reply.status == status, (reply.status, reply.error)
    assert reply.error
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert PDF not in reply.body
    assert b"the other document" not in reply.body
    assert snapshot(world.runtime) == before
    # The trusted signer still gets through: the rejection was about the request, not the state.
    assert world.client(world.trusted).get(DOC, "data").body == PDF
    return reply


def _tamper_doc_id(query: str) -> str:
    # Point the signed URL at a different document that exists (reads, updates, deletes) or is new
    # (creates): a server that skipped the check would happily serve it.
    target = NEW2 if query.startswith(("create", "mCreate")) else DOC2
    return replace_param(query, "docId", target)


NEGATIVE: dict[str, tuple[Callable[[World, str], SigningSap], str]] = {
    "expired": (
        lambda w, _: w.client(
            w.trusted, valid_for=-dt.timedelta(seconds=w.runtime.settings.signature_clock_skew_seconds + 1)
        ),
        "the signed URL expired at 2026-04-04 10:24:59 UTC",
    ),
    "wrong-access-mode": (lambda w, letter: w.client(w.trusted, access_mode=WRONG_MODE[letter]), "accessMode "),
    "tampered-docId": (lambda w, _: w.client(w.trusted, tamper=_tamper_doc_id), "the signature does not match"),
    "unknown-certificate": (lambda w, _: w.client(w.unknown), "the signature does not match"),
    "unknown-certificate-embedded": (
        lambda w, _: w.client(w.unknown, embed_certificate=True, attributes=True),
        "the signature does not match",
    ),
    "inactive-certificate": (lambda w, _: w.client(w.inactive), "the signature does not match"),
    "revoked-certificate": (lambda w, _: w.client(w.revoked), "the signature does not match"),
    "unsigned": (lambda w, _: w.client(None), "repository S1 accepts only signed URLs (secKey)"),
    "certificate-of-another-repository": (lambda w, _: w.client(w.other), "the signature does not match"),
    "signed-for-another-repository": (
        lambda w, _: w.client(w.trusted, tamper=lambda q: replace_param(q, "contRep", "S2")),
        "the signature does not match",
    ),
    "other-authId": (lambda w, _: w.client(w.trusted, auth_id="CN%3DQ4H"), "no active certificate for authId"),
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_bad_signatures_are_401_and_change_nothing(world: World, command: str) -> None:
    """Every negative case against one command (one seeded world per command keeps the suite fast);
    failures are collected so one report names every case that let a request through."""
    letter, send = COMMANDS[command]
    failures: list[str] = []
    for case, (make, reason) in NEGATIVE.items():
        try:
            reply = assert_rejected(world, send, make(world, letter))
            assert reason in str(reply.error), reply.error
        except AssertionError as exc:
            failures.append(f"{case}: {exc}")
    assert not failures, "\n".join(failures)


def test_an_embedded_certificate_is_never_trusted(world: World) -> None:
    """The signature carries the attacker's certificate, issued to look like SAP's own."""
    forged = make_signer("rsa", "S4H", serial=world.trusted.certificate.serial_number)
    for attributes in (False, True):
        sap = world.client(forged, embed_certificate=True, attributes=attributes)
        assert_rejected(world, COMMANDS["delete"][1], sap)
        assert_rejected(world, COMMANDS["get"][1], sap)
    # Nor does an embedded certificate of a repository without any active certificate for the authId help.
    stranger = world.client(forged, embed_certificate=True, auth_id="CN%3DNEW")
    reply = assert_rejected(world, COMMANDS["get"][1], stranger)
    assert reply.error == "no active certificate for authId 'CN=NEW'; send it with putCert and activate it"


def test_an_active_certificate_outside_its_validity_is_not_trusted(world: World) -> None:
    now = world.runtime.clock.now()
    expired = make_signer("dsa", not_before=now - dt.timedelta(days=400), not_after=now - dt.timedelta(days=1))
    future = make_signer("dsa", not_before=now + dt.timedelta(days=1), not_after=now + dt.timedelta(days=400))
    for signer in (expired, future):
        trust(world.server, world.runtime, "S2", signer)
        assert_rejected(world, COMMANDS["get"][1], world.client(signer, "S2"))


def test_a_forged_message_digest_attribute_is_401(world: World) -> None:
    sap = world.client(world.trusted)
    params = sap.params("delete", docId=DOC)
    message = signed_message("delete", params)
    # A genuine signature over attributes whose messageDigest belongs to another message.
    signature = cms_signature(message, world.trusted, attributes=True, message_digest=b"\x00" * 20)
    query = "delete" + "".join(f"&{k}={v}" for k, v in params) + "&secKey=" + url_encode_sec_key(signature)
    reply = assert_rejected(world, lambda c: c.send("GET", query), sap)
    assert reply.error == "the signature does not match the URL (messageDigest differs)"


def test_a_signature_over_other_bytes_is_401(world: World) -> None:
    """Base64 that is a CMS structure, but not over this URL; and Base64 that is no CMS at all."""
    sap = world.client(world.trusted)
    params = sap.params("get", docId=DOC)
    unsigned = "get" + "".join(f"&{k}={v}" for k, v in params)
    wrong = cms_signature(b"S1" + DOC.encode(), world.trusted, attributes=False)
    reply = assert_rejected(world, lambda c: c.send("GET", unsigned + "&secKey=" + url_encode_sec_key(wrong)), sap)
    assert reply.error == "the signature does not match the URL"
    junk = url_encode_sec_key(b"\x30\x03\x02\x01\x01 not a CMS")
    reply = assert_rejected(world, lambda c: c.send("GET", unsigned + "&secKey=" + junk), sap)
    assert reply.error == "secKey is not a PKCS#7 SignedData structure"


@pytest.mark.parametrize("sec_key", ["@@not-base64@@", "%2B%2B%2B", "QUJD*", "QUJDRA%3D%3D%3D%3D%3Dxx"])
def test_a_sec_key_that_is_not_base64_is_400(world: World, sec_key: str) -> None:
    sap = world.client(world.trusted)
    query = replace_param(sap.query("delete", docId=DOC), "secKey", sec_key)
    reply = assert_rejected(world, lambda c: c.send("GET", query), sap, status=400)
    assert reply.error == "secKey is not valid Base64"


@pytest.mark.parametrize("missing", ["accessMode", "authId", "expiration"])
@pytest.mark.parametrize("command", ["get", "create-PUT", "delete"])
def test_a_sec_key_without_its_companions_is_400(world: World, missing: str, command: str) -> None:
    _, send = COMMANDS[command]
    sap = world.client(world.trusted, tamper=lambda q: drop_param(q, missing))
    reply = assert_rejected(world, send, sap, status=400)
    assert reply.error == f"a signed request needs {missing}"


@pytest.mark.parametrize("value", ["2026040411", "20261304103000", "2026-04-04T11", "99999999999999"])
def test_a_malformed_expiration_is_rejected(world: World, value: str) -> None:
    sap = world.client(world.trusted, overrides={"expiration": value})
    before = snapshot_before(world.runtime)
    reply = COMMANDS["delete"][1](sap)
    assert reply.status in (400, 401)
    assert reply.error
    assert "expiration" in reply.error
    assert snapshot(world.runtime) == before


def test_a_signature_is_checked_before_the_body_is_read(world: World) -> None:
    """A forged create must not even stage its bytes (nothing to clean up, nothing to leak)."""
    big = b"x" * (256 * 1024)
    sap = world.client(world.unknown)
    before = snapshot_before(world.runtime)
    reply = sap.create(NEW, "data", big)
    assert reply.status == 401
    assert reply.headers["Connection"] == "close"
    assert snapshot(world.runtime) == before


# --- optional and none --------------------------------------------------------------------------


def test_optional_mode_protects_what_doc_prot_names(server: str, configured: Runtime) -> None:
    signer = cached_signer("dsa")
    trust(server, configured, "O1", signer)
    unsigned = client(server, configured, "O1", None)
    signed = client(server, configured, "O1", signer)
    assert unsigned.create(DOC, "data", PDF, docProt="d").status == 201
    before = snapshot_before(configured)
    refused = unsigned.delete(DOC)
    assert refused.status == 401
    assert refused.error == "repository O1 accepts only signed URLs (secKey)"
    assert unsigned.delete(DOC, "data").status == 401
    assert snapshot(configured) == before
    assert unsigned.get(DOC).body == PDF  # r is not protected
    assert unsigned.info(DOC).status == 200
    assert unsigned.update(DOC, "data", b"v2").status == 200  # nor is u
    assert unsigned.append(DOC, "data", b"+").status == 200
    assert unsigned.get(DOC).body == b"v2+"
    assert signed.delete(DOC).status == 200
    # No docId, no document to protect: the handler answers what is missing, not the signature check.
    missing = unsigned.send("GET", "info&pVersion=0047&contRep=O1")
    assert (missing.status, missing.error) == (400, "missing mandatory parameter docId")


def test_optional_mode_always_verifies_a_present_signature(server: str, configured: Runtime) -> None:
    trust(server, configured, "O1", cached_signer("dsa"))
    unsigned = client(server, configured, "O1", None)
    assert unsigned.create(DOC, "data", PDF, docProt="").status == 201
    before = snapshot_before(configured)
    forged = client(server, configured, "O1", cached_signer("dsa", "unknown"))
    assert forged.get(DOC).status == 401
    assert forged.delete(DOC).status == 401
    assert forged.create(NEW, "data", b"x").status == 401
    expired = client(server, configured, "O1", cached_signer("dsa"), valid_for=-dt.timedelta(hours=1))
    assert expired.delete(DOC).status == 401
    assert snapshot(configured) == before
    assert unsigned.delete(DOC).status == 200  # docProt="" explicitly protects nothing


def test_optional_mode_protects_a_signed_create_doc_prot_from_unsigned_access(server: str, configured: Runtime) -> None:
    signer = cached_signer("rsa")
    trust(server, configured, "O1", signer)
    signed = client(server, configured, "O1", signer, attributes=True)
    assert signed.create(DOC, "data", PDF, docProt="rud").status == 201
    unsigned = client(server, configured, "O1", None)
    for reply in (unsigned.get(DOC), unsigned.info(DOC), unsigned.doc_get(DOC)):
        assert reply.status == 401
        assert PDF not in reply.body
    assert unsigned.update(DOC, "data", b"x").status == 401
    assert unsigned.delete(DOC).status == 401
    assert signed.get(DOC).body == PDF


def test_optional_mode_a_document_without_doc_prot_gets_the_server_default(server: str, configured: Runtime) -> None:
    trust(server, configured, "O1", cached_signer("dsa"))
    unsigned = client(server, configured, "O1", None)
    assert unsigned.create(DOC, "data", PDF).status == 201  # no docProt at all
    assert unsigned.delete(DOC).status == 401


def test_none_mode_ignores_signatures(server: str, configured: Runtime) -> None:
    unsigned = client(server, configured, "N1", None)
    assert unsigned.create(DOC, "data", PDF, docProt="rcud").status == 201
    assert unsigned.get(DOC).body == PDF
    forged = client(server, configured, "N1", cached_signer("dsa", "unknown"))
    assert forged.get(DOC).body == PDF
    expired = client(server, configured, "N1", cached_signer("dsa", "unknown"), valid_for=-dt.timedelta(days=1))
    assert expired.update(DOC, "data", b"v2").status == 200
    wrong_mode = client(server, configured, "N1", cached_signer("rsa", "unknown"), access_mode="r")
    assert wrong_mode.delete(DOC).status == 200
    assert unsigned.get(DOC).status == 404
