"""A content repository as an ArchiveLink request needs it, from one query.

The workspace, the repository, its signature mode and its wiring (each wired destination with the
retry policy that applies to it) come back in one round trip, before a body is read. The snapshot is
plain data: it holds no session and no connection while a (possibly 2 GiB) body streams, and it never
expires after a failed flush. A configuration change is seen by the next request: nothing is cached.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import Session

from filerelay.db.models import Destination, Repository, Route, SignatureMode, Workspace
from filerelay.delivery.rules import RetryPolicy


@dataclass(frozen=True)
class WiredDestination:
    id: int  # the row id deliveries point at
    public_id: str
    kind: str
    policy: RetryPolicy


@dataclass(frozen=True)
class RepositoryContext:
    workspace_id: int
    id: int  # the repository's row id
    repo_id: str
    description: str
    signature: SignatureMode
    # Enabled destinations wired to the repository, in row-id order.
    destinations: tuple[WiredDestination, ...]
    # How long a new document's deliveries wait for its business context (0: they do not).
    metadata_wait_seconds: int = 0


@dataclass(frozen=True)
class Lookup:
    """What one query found: no workspace, a workspace without that repository, or the repository."""

    workspace_id: int | None
    repository: RepositoryContext | None


_LOOKUP = (
    select(
        Workspace.id,
        Workspace.max_retries,
        Workspace.retry_ttl_seconds,
        Workspace.backoff_base_seconds,
        Workspace.backoff_max_seconds,
        Repository.id,
        Repository.repo_id,
        Repository.description,
        Repository.signature,
        Destination.id,
        Destination.public_id,
        Destination.kind,
        Destination.max_retries,
        Destination.retry_ttl_seconds,
        Repository.metadata_wait_seconds,
    )
    .select_from(Workspace)
    .outerjoin(Repository, and_(Repository.workspace_id == Workspace.id, Repository.repo_id == bindparam("repo_id")))
    .outerjoin(Route, Route.repository_id == Repository.id)
    .outerjoin(Destination, and_(Destination.id == Route.destination_id, Destination.enabled.is_(True)))
    .where(Workspace.owner_slug == bindparam("owner"), Workspace.slug == bindparam("slug"))
    .order_by(Destination.id)
)


def lookup(session: Session, *, owner: str, slug: str, repo_id: str) -> Lookup:
    # Plain columns, not entities: this runs on every request, and building ORM objects for a snapshot
    # that is thrown away at the end of it costs more than the query.
    rows = session.execute(_LOOKUP, {"owner": owner, "slug": slug, "repo_id": repo_id}).all()
    if not rows:
        return Lookup(None, None)
    first = rows[0]
    if first[5] is None:
        return Lookup(first[0], None)
    retry = RetryPolicy(
        max_retries=first[1], ttl_seconds=first[2], backoff_base_seconds=first[3], backoff_max_seconds=first[4]
    )
    wired = tuple(
        WiredDestination(row[9], row[10], row[11], retry.overridden(row[12], row[13]))
        for row in rows
        if row[9] is not None
    )
    context = RepositoryContext(
        workspace_id=first[0],
        id=first[5],
        repo_id=first[6],
        description=first[7],
        signature=SignatureMode(first[8]),
        destinations=wired,
        metadata_wait_seconds=first[14],
    )
    return Lookup(first[0], context)


def find(session: Session, *, owner: str, slug: str, repo_id: str) -> RepositoryContext | None:
    return lookup(session, owner=owner, slug=slug, repo_id=repo_id).repository
