"""Who may run an ArchiveLink command: the repository's signature mode, the document's docProt and,
when signed, the secKey (archivelink.md §2.4-2.5). Runs before any handler reads a body."""

from __future__ import annotations

from flask import request
from sqlalchemy.orm import Session

from filerelay import certificates, documents
from filerelay.api.archivelink import signatures
from filerelay.api.archivelink.protocol import ArchiveLinkRequest, ProtocolError
from filerelay.api.archivelink.upload import read_request
from filerelay.api.context import runtime
from filerelay.db.models import Repository, SignatureMode
from filerelay.db.session import session_scope
from filerelay.staging import IncompleteBody

DEFAULT_DOC_PROT = "rcud"


def authorize(owner: str, slug: str, command: str, req: ArchiveLinkRequest) -> None:
    """Raise SignatureError (401) unless the request may proceed. Unsigned commands pass."""
    needed = signatures.ACCESS.get(command)
    if needed is None:
        return  # serverInfo and putCert are never signed
    repo_id = req.get("contRep")
    if not repo_id:
        return  # the handler answers the missing parameter
    rt = runtime()
    now = rt.clock.now()
    with session_scope(rt.sessions) as session:
        repository = documents.find_repository(session, owner=owner, slug=slug, repo_id=repo_id)
        if repository is None:
            return  # the handler answers the unknown repository
        signed = signatures.read_signed_request(req)
        mode = SignatureMode(repository.signature)
        if mode is SignatureMode.NONE:
            return
        if signed is None:
            if mode is SignatureMode.REQUIRED or _protected(session, repository, req, needed):
                raise signatures.SignatureError(f"repository {repository.repo_id} accepts only signed URLs (secKey)")
            return
        signatures.check_fresh(signed, now=now, skew_seconds=rt.settings.signature_clock_skew_seconds)
        signatures.check_access(signed, command)
        trusted = certificates.trusted(session, repository_id=repository.id, auth_id=signed.auth_id, now=now)
        signatures.verify(req, command, signed, trusted)


def _protected(session: Session, repository: Repository, req: ArchiveLinkRequest, letter: str) -> bool:
    """`optional` mode: a signature is needed where the document's docProt protects the operation."""
    doc_id = req.get("docId")
    if not doc_id:
        return False
    document = documents.find_document(session, repository=repository, doc_id=doc_id)
    if document is None:
        return False
    # Without docProt the server default applies, and that default protects everything (archivelink.md
    # §2.5); `docProt=` (present but empty) is the explicit "no protection".
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
