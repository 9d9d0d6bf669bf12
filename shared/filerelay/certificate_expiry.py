"""Days until each certificate FileRelay relies on expires: SAP's (putCert, once activated) and the ones
SharePoint destinations sign in with. Read for /metrics; only public facts leave here (whose certificate,
its fingerprint, when it ends), never a key.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from sqlalchemy import select
from sqlalchemy.engine import Connection

from filerelay.db.models import Certificate, Destination, Repository, Workspace

log = logging.getLogger(__name__)

_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)
SHAREPOINT = "sharepoint"


@dataclass(frozen=True)
class Expiry:
    workspace: str
    source: str  # "sap" (a repository's certificate) or "sharepoint" (a destination's)
    owner: str  # the repository id, or the destination id
    fingerprint: str  # SAP's: SHA-256 (what `certs activate` takes); SharePoint's: the SHA-1 thumbprint
    not_after: dt.datetime

    def days_left(self, now: dt.datetime) -> float:
        return (self.not_after - now).total_seconds() / 86400


def sap(conn: Connection) -> Iterator[Expiry]:
    """The certificates SAP signs with that an admin activated (an inactive one is trusted by nothing)."""
    rows = conn.execute(
        select(Workspace.owner_slug, Workspace.slug, Repository.repo_id, Certificate.fingerprint, Certificate.not_after)
        .join(Repository, Repository.id == Certificate.repository_id)
        .join(Workspace, Workspace.id == Repository.workspace_id)
        .where(Certificate.active.is_(True))
    )
    for owner, slug, repo_id, fingerprint, not_after in rows:
        yield Expiry(f"{owner}/{slug}", "sap", repo_id, fingerprint, not_after)


def sharepoint(conn: Connection) -> Iterator[Expiry]:
    """The certificate in each SharePoint destination's PEM (beside its private key), when one is there:
    the one whose thumbprint the destination names, else the first."""
    rows = conn.execute(
        select(Workspace.owner_slug, Workspace.slug, Destination.public_id, Destination.settings, Destination.secrets)
        .join(Workspace, Workspace.id == Destination.workspace_id)
        .where(Destination.kind == SHAREPOINT)
    )
    for owner, slug, public_id, settings, secrets in rows:
        pem = (secrets or {}).get("certificate")
        if not isinstance(pem, str):
            continue
        certificate = pick(certificates_in(pem), str((settings or {}).get("thumbprint") or ""))
        if certificate is None:
            continue
        yield Expiry(
            f"{owner}/{slug}",
            SHAREPOINT,
            public_id,
            certificate.fingerprint(hashes.SHA1()).hex().upper(),  # noqa: S303 - the thumbprint Entra ID shows
            certificate.not_valid_after_utc,
        )


def certificates_in(pem: str) -> list[x509.Certificate]:
    """The certificates among the PEM blocks of `pem` (its private key block is never parsed here)."""
    found = []
    for block in _PEM_CERTIFICATE.findall(pem):
        try:
            found.append(x509.load_pem_x509_certificate(block.encode()))
        except ValueError:
            log.warning("a SharePoint destination's certificate block does not parse; skipped")
    return found


def pick(certificates: Iterable[x509.Certificate], thumbprint: str) -> x509.Certificate | None:
    listed = list(certificates)
    for certificate in listed:
        if certificate.fingerprint(hashes.SHA1()).hex().lower() == thumbprint.lower():  # noqa: S303
            return certificate
    return listed[0] if listed else None
