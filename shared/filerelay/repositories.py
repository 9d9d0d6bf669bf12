"""A content repository as an ArchiveLink request needs it: the workspace's repositories from two queries.

The workspace (its config_version first), each repository, its signature mode and its wiring (each wired
destination with the retry policy that applies to it) come back in one round trip, the active
certificates of its repositories in a second. The result is plain data: it holds no session and no
connection while a (possibly 2 GiB) body streams, and it never expires after a failed flush. Processes
keep it between requests (filerelay.workspace_snapshot), checked against the version before use.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass

from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import Session

from filerelay.db.models import Certificate, Destination, Repository, Route, SignatureMode, Workspace
from filerelay.delivery.rules import RetryPolicy


@dataclass(frozen=True)
class WiredDestination:
    id: int  # the row id deliveries point at
    public_id: str
    kind: str
    policy: RetryPolicy


@dataclass(frozen=True)
class TrustedCertificate:
    """An active certificate of the repository; whether it is valid is decided at each request."""

    auth_id: str
    der: bytes
    not_before: dt.datetime
    not_after: dt.datetime


@dataclass(frozen=True)
class RepositoryContext:
    workspace_id: int
    id: int  # the repository's row id
    repo_id: str
    description: str
    signature: SignatureMode
    # Enabled destinations wired to the repository, in row-id order.
    destinations: tuple[WiredDestination, ...]
    # The workspace's config_version this was read at: a write that relies on it is made on condition
    # that the version has not moved since (filerelay.documents.create).
    config_version: int
    certificates: tuple[TrustedCertificate, ...] = ()
    # How long a new document's deliveries wait for its business context (0: they do not).
    metadata_wait_seconds: int = 0


@dataclass(frozen=True)
class Lookup:
    """What one query found: no workspace, a workspace without that repository, or the repository."""

    workspace_id: int | None
    repository: RepositoryContext | None


_LOAD = (
    select(
        Workspace.id.label("workspace_id"),
        Workspace.config_version.label("config_version"),
        Workspace.max_retries.label("max_retries"),
        Workspace.retry_ttl_seconds.label("retry_ttl_seconds"),
        Workspace.backoff_base_seconds.label("backoff_base_seconds"),
        Workspace.backoff_max_seconds.label("backoff_max_seconds"),
        Repository.id.label("repository_id"),
        Repository.repo_id.label("repo_id"),
        Repository.description.label("description"),
        Repository.signature.label("signature"),
        Repository.metadata_wait_seconds.label("metadata_wait_seconds"),
        Destination.id.label("destination_id"),
        Destination.public_id.label("public_id"),
        Destination.kind.label("kind"),
        Destination.max_retries.label("destination_max_retries"),
        Destination.retry_ttl_seconds.label("destination_retry_ttl_seconds"),
    )
    .select_from(Workspace)
    .outerjoin(Repository, Repository.workspace_id == Workspace.id)
    .outerjoin(Route, Route.repository_id == Repository.id)
    .outerjoin(Destination, and_(Destination.id == Route.destination_id, Destination.enabled.is_(True)))
    .where(Workspace.owner_slug == bindparam("owner"), Workspace.slug == bindparam("slug"))
    .order_by(Repository.id, Destination.id)
)
_CERTIFICATES = (
    select(
        Certificate.repository_id,
        Certificate.auth_id,
        Certificate.der,
        Certificate.not_before,
        Certificate.not_after,
    )
    .join(Repository, Repository.id == Certificate.repository_id)
    .where(Repository.workspace_id == bindparam("workspace_id"), Certificate.active.is_(True))
    .order_by(Certificate.id)
)


def load_workspace(session: Session, *, owner: str, slug: str) -> tuple[int, int, list[RepositoryContext]] | None:
    """The workspace's id, its config_version and every repository in it; None without the workspace."""
    # Plain columns, not entities: building ORM objects for plain data costs more than the query.
    rows = session.execute(_LOAD, {"owner": owner, "slug": slug}).all()
    if not rows:
        return None
    first = rows[0]
    workspace_id, version = first.workspace_id, first.config_version
    retry = RetryPolicy(
        max_retries=first.max_retries,
        ttl_seconds=first.retry_ttl_seconds,
        backoff_base_seconds=first.backoff_base_seconds,
        backoff_max_seconds=first.backoff_max_seconds,
    )
    trusted: dict[int, list[TrustedCertificate]] = {}
    if first.repository_id is not None:
        for cert in session.execute(_CERTIFICATES, {"workspace_id": workspace_id}):
            trusted.setdefault(cert.repository_id, []).append(
                TrustedCertificate(cert.auth_id, cert.der, cert.not_before, cert.not_after)
            )
    contexts: list[RepositoryContext] = []
    # Rows come ordered by repository: one context per run of rows.
    repository_rows = (r for r in rows if r.repository_id is not None)
    for repository_id, repo_rows in itertools.groupby(repository_rows, key=lambda r: r.repository_id):
        run = list(repo_rows)
        wired = tuple(
            WiredDestination(
                r.destination_id,
                r.public_id,
                r.kind,
                retry.overridden(r.destination_max_retries, r.destination_retry_ttl_seconds),
            )
            for r in run
            if r.destination_id is not None
        )
        head = run[0]
        contexts.append(
            RepositoryContext(
                workspace_id=workspace_id,
                id=repository_id,
                repo_id=head.repo_id,
                description=head.description,
                signature=SignatureMode(head.signature),
                destinations=wired,
                config_version=version,
                metadata_wait_seconds=head.metadata_wait_seconds,
                certificates=tuple(trusted.get(repository_id, ())),
            )
        )
    return workspace_id, version, contexts


def lookup(session: Session, *, owner: str, slug: str, repo_id: str) -> Lookup:
    """Straight from the database (processes serving requests keep snapshots: filerelay.workspace_snapshot)."""
    loaded = load_workspace(session, owner=owner, slug=slug)
    if loaded is None:
        return Lookup(None, None)
    workspace_id, _, contexts = loaded
    return Lookup(workspace_id, next((c for c in contexts if c.repo_id == repo_id), None))


def find(session: Session, *, owner: str, slug: str, repo_id: str) -> RepositoryContext | None:
    return lookup(session, owner=owner, slug=slug, repo_id=repo_id).repository
