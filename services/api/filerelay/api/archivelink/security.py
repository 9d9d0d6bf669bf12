"""Who may run an ArchiveLink command: the repository's signature mode, the document's docProt and,
when signed, the secKey (docs/archivelink.md#signatures-seckey). Runs before any handler reads a body."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import request

from filerelay import certificates, documents
from filerelay.api.archivelink import signatures
from filerelay.api.archivelink.protocol import ArchiveLinkRequest, ProtocolError
from filerelay.api.archivelink.upload import read_request
from filerelay.api.context import runtime
from filerelay.db.models import SignatureMode
from filerelay.db.session import read_scope
from filerelay.repositories import RepositoryContext
from filerelay.staging import IncompleteBody

if TYPE_CHECKING:
    from filerelay.api.archivelink.commands import Call

DEFAULT_DOC_PROT = "rcud"


def authorize(call: Call, command: str) -> None:
    """Raise SignatureError (401) unless the request may proceed. Unsigned commands pass. Uses the
    request's repository (its signature mode and certificates); only `optional` mode reads anything else
    (the document's docProt). A refusal is never made on an unchecked snapshot (a create's, whose INSERT
    checks it later): the configuration is read again and decides."""
    try:
        _authorize(call, command)
    except signatures.SignatureError:
        if call.checked():
            raise
        call.refresh()
        _authorize(call, command)


def _authorize(call: Call, command: str) -> None:
    needed = signatures.guard_of(command).access
    if needed is None:
        return  # serverInfo and putCert are never signed
    if not call.req.get("contRep"):
        return  # the handler answers the missing parameter
    repository = call.lookup().repository
    if repository is None:
        return  # the handler answers the unknown repository
    signed = signatures.read_signed_request(call.req)
    mode = repository.signature
    if mode is SignatureMode.NONE:
        return
    rt = runtime()
    now = rt.clock.now()
    if signed is None:
        if mode is SignatureMode.REQUIRED or _protected(repository, call.req, needed):
            raise signatures.SignatureError(f"repository {repository.repo_id} accepts only signed URLs (secKey)")
        return
    signatures.check_fresh(signed, now=now, skew_seconds=rt.settings.signature_clock_skew_seconds)
    signatures.check_access(signed, command)
    trusted = certificates.trusted(repository, auth_id=signed.auth_id, now=now)
    signatures.verify(call.req, command, signed, trusted)


def _protected(repository: RepositoryContext, req: ArchiveLinkRequest, letter: str) -> bool:
    """`optional` mode: a signature is needed where the document's docProt protects the operation."""
    doc_id = req.get("docId")
    if not doc_id:
        return False
    with read_scope(runtime().sessions) as session:
        document = documents.find_document(session, repository=repository, doc_id=doc_id)
    if document is None:
        return False
    # Without docProt the server default applies, and that default protects everything
    # (docs/archivelink.md#create); `docProt=` (present but empty) is the explicit "no protection".
    return letter in (DEFAULT_DOC_PROT if document.doc_prot is None else document.doc_prot)


def read_put_cert_body() -> bytes:
    """A certificate is a few KB; read at most one byte past the limit, whatever the client announced."""
    limit = certificates.MAX_CERTIFICATE_BYTES
    if (request.content_length or 0) > limit:
        raise ProtocolError(f"a certificate is at most {limit} bytes", status=413)
    try:
        body = read_request(limit + 1)
    except IncompleteBody as exc:
        raise ProtocolError(f"incomplete body: {exc}") from None
    if len(body) > limit:
        raise ProtocolError(f"a certificate is at most {limit} bytes", status=413)
    if not body:
        raise ProtocolError("putCert needs the certificate as the request body", status=406)
    return body
