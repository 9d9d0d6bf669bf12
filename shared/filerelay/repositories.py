"""A content repository as an ArchiveLink request needs it, from one query.

The workspace, the repository, its signature mode and its wiring (each wired destination with the
retry policy that applies to it) come back in one round trip, before a body is read. The snapshot is
plain data: it holds no session and no connection while a (possibly 2 GiB) body streams, and it never
expires after a failed flush. A configuration change is seen by the next request: nothing is cached.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, select
from sqlalchemy.orm import Session

from filerelay.db.models import Destination, Repository, Route, SignatureMode, Workspace
from filerelay.delivery.rules import RetryPolicy, policy_for


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


@dataclass(frozen=True)
class Lookup:
    """What one query found: no workspace, a workspace without that repository, or the repository."""

    workspace_id: int | None
    repository: RepositoryContext | None


def lookup(session: Session, *, owner: str, slug: str, repo_id: str) -> Lookup:
    rows = session.execute(
        select(Workspace, Repository, Destination)
        .select_from(Workspace)
        .outerjoin(Repository, and_(Repository.workspace_id == Workspace.id, Repository.repo_id == repo_id))
        .outerjoin(Route, Route.repository_id == Repository.id)
        .outerjoin(Destination, and_(Destination.id == Route.destination_id, Destination.enabled.is_(True)))
        .where(Workspace.owner_slug == owner, Workspace.slug == slug)
        .order_by(Destination.id)
    ).all()
    if not rows:
        return Lookup(None, None)
    workspace, repository, _ = rows[0]
    if repository is None:
        return Lookup(workspace.id, None)
    wired = tuple(
        WiredDestination(d.id, d.public_id, d.kind, policy_for(workspace, d)) for _, _, d in rows if d is not None
    )
    context = RepositoryContext(
        workspace_id=workspace.id,
        id=repository.id,
        repo_id=repository.repo_id,
        description=repository.description,
        signature=SignatureMode(repository.signature),
        destinations=wired,
    )
    return Lookup(workspace.id, context)


def find(session: Session, *, owner: str, slug: str, repo_id: str) -> RepositoryContext | None:
    return lookup(session, owner=owner, slug=slug, repo_id=repo_id).repository
