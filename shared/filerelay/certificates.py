"""Certificates SAP sends with putCert: parsed leniently, stored inactive, trusted once an admin
activates them for their repository (docs/archivelink.md#certificates)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from sqlalchemy import select
from sqlalchemy.orm import Session

from filerelay.db.models import Certificate, Repository
from filerelay.repositories import RepositoryContext

MAX_CERTIFICATE_BYTES = 64 * 1024
# putCert needs no credentials beyond reaching the endpoint (that is SAP's protocol): the inactive
# certificates it leaves are bounded per repository, the oldest making way for the newest.
MAX_PENDING_PER_REPOSITORY = 10


class UnreadableCertificate(ValueError):
    pass


class UnknownCertificate(LookupError):
    pass


def parse(body: bytes) -> x509.Certificate:
    """DER, PKCS#7 certs-only (DER or PEM), PEM, or Base64 of DER: SAP releases differ."""
    loaders: tuple[Callable[[bytes], x509.Certificate], ...] = (
        x509.load_der_x509_certificate,
        lambda b: pkcs7.load_der_pkcs7_certificates(b)[0],
        lambda b: pkcs7.load_pem_pkcs7_certificates(b)[0],
        x509.load_pem_x509_certificate,
        lambda b: x509.load_der_x509_certificate(base64.b64decode(b.strip(), validate=False)),
    )
    for loader in loaders:
        try:
            return loader(body)
        except (ValueError, IndexError, TypeError, binascii.Error, UnsupportedAlgorithm):
            continue
    raise UnreadableCertificate("the certificate could not be read (DER, PEM, PKCS#7 or Base64 expected)")


def fingerprint(certificate: x509.Certificate) -> str:
    """SHA-256 over the DER, lowercase hex: what `certs activate` takes."""
    return certificate.fingerprint(hashes.SHA256()).hex()


def store(
    session: Session, *, repository: RepositoryContext, auth_id: str, body: bytes, now: dt.datetime
) -> Certificate:
    """Keep a received certificate, inactive; sending the same one again changes nothing. A repository
    keeps at most MAX_PENDING_PER_REPOSITORY inactive certificates: the oldest goes."""
    certificate = parse(body)
    print_ = fingerprint(certificate)
    # One putCert at a time per repository, so two racing ones cannot both find room for themselves.
    session.execute(select(Repository.id).where(Repository.id == repository.id).with_for_update())
    existing = session.scalar(
        select(Certificate).where(Certificate.repository_id == repository.id, Certificate.fingerprint == print_)
    )
    if existing is not None:
        return existing
    row = Certificate(
        repository_id=repository.id,
        auth_id=auth_id,
        fingerprint=print_,
        subject=certificate.subject.rfc4514_string(),
        issuer=certificate.issuer.rfc4514_string(),
        serial=format(certificate.serial_number, "x"),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        der=certificate.public_bytes(serialization.Encoding.DER),
        active=False,
        created_at=now,
    )
    session.add(row)
    session.flush()
    _drop_oldest_pending(session, repository_id=repository.id)
    return row


def _drop_oldest_pending(session: Session, *, repository_id: int) -> None:
    pending = session.scalars(
        select(Certificate)
        .where(Certificate.repository_id == repository_id, Certificate.active.is_(False))
        .order_by(Certificate.created_at.desc(), Certificate.id.desc())
        .offset(MAX_PENDING_PER_REPOSITORY)
    )
    for old in pending:
        session.delete(old)
    session.flush()


def trusted(repository: RepositoryContext, *, auth_id: str, now: dt.datetime) -> list[bytes]:
    """DER of the repository's active certificates for this signer that are valid now (the active ones
    come with the repository's snapshot; their validity is a matter of the request's time)."""
    return [c.der for c in repository.certificates if c.auth_id == auth_id and c.not_before <= now <= c.not_after]


@dataclass(frozen=True)
class CertificateInfo:
    repo_id: str
    auth_id: str
    fingerprint: str
    subject: str
    issuer: str
    serial: str
    not_before: dt.datetime
    not_after: dt.datetime
    active: bool
    received_at: dt.datetime
    activated_at: dt.datetime | None


def _info(row: Certificate, repo_id: str) -> CertificateInfo:
    return CertificateInfo(
        repo_id=repo_id,
        auth_id=row.auth_id,
        fingerprint=row.fingerprint,
        subject=row.subject,
        issuer=row.issuer,
        serial=row.serial,
        not_before=row.not_before,
        not_after=row.not_after,
        active=row.active,
        received_at=row.created_at,
        activated_at=row.activated_at,
    )


def list_for(
    session: Session, *, workspace_id: int | None = None, repo_id: str | None = None
) -> Sequence[CertificateInfo]:
    query = select(Certificate, Repository.repo_id).join(Repository, Repository.id == Certificate.repository_id)
    if workspace_id is not None:
        query = query.where(Repository.workspace_id == workspace_id)
    if repo_id is not None:
        query = query.where(Repository.repo_id == repo_id)
    rows = session.execute(query.order_by(Repository.repo_id, Certificate.created_at))
    return [_info(row, repo) for row, repo in rows]


def set_active(
    session: Session, *, workspace_id: int, repo_id: str, fingerprint_: str, active: bool, now: dt.datetime
) -> CertificateInfo:
    row = session.scalar(
        select(Certificate)
        .join(Repository, Repository.id == Certificate.repository_id)
        .where(
            Repository.workspace_id == workspace_id,
            Repository.repo_id == repo_id,
            Certificate.fingerprint == fingerprint_.lower().replace(":", ""),
        )
    )
    if row is None:
        raise UnknownCertificate(f"no certificate {fingerprint_} for repository {repo_id}")
    row.active = active
    row.activated_at = now if active else None
    session.flush()
    return _info(row, repo_id)
