"""What ArchiveLink requests read of a workspace's configuration, kept per process between requests.

A request needs the repository, its signature mode, its trusted certificates and its wiring. Reading
them from the database on every request cost a query and a transaction of its own; instead each process
keeps the last snapshot it loaded per workspace, with the workspace's `config_version` it was loaded at.
Every configuration change moves that version in its own transaction (`moved`, called by
filerelay.operations), so a snapshot is current exactly while the version in the database still equals
its own. A request checks that before it relies on the snapshot, either with a one-row indexed query
(`Snapshots.current`) or as a condition of the statement it makes anyway (create's INSERT: see
filerelay.documents.create): a change governs the very next request that starts after its commit.

The version is read in the first statement of a load, before anything it covers: a change committed in
between leaves a snapshot with the old version and possibly newer rows, which the next check reloads;
never the other way round.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session, sessionmaker

from filerelay import audit, repositories
from filerelay.db.models import Workspace
from filerelay.db.session import read_again_if_dropped
from filerelay.repositories import Lookup, RepositoryContext

# The changes that alter what an ArchiveLink request reads (repositories, signature modes, certificates,
# destinations, routes, retry settings); pausing a destination or an API key is no part of it.
SNAPSHOT_ACTIONS = frozenset(
    {
        audit.WORKSPACE_CREATE,
        audit.DESTINATION_CREATE,
        audit.DESTINATION_UPDATE,
        audit.DESTINATION_DELETE,
        audit.REPOSITORY_CREATE,
        audit.REPOSITORY_UPDATE,
        audit.REPOSITORY_DELETE,
        audit.ROUTE_CREATE,
        audit.ROUTE_DELETE,
        audit.SETTINGS_UPDATE,
        audit.ACTIVATE,
        audit.REVOKE,
    }
)

_VERSION = select(Workspace.id, Workspace.config_version).where(
    Workspace.owner_slug == bindparam("owner"), Workspace.slug == bindparam("slug")
)


def moved(session: Session, *, workspace_id: int) -> None:
    """Mark the workspace's configuration as changed, in the caller's transaction: every process's
    snapshot of it is out of date once this commits."""
    session.execute(
        update(Workspace)
        .where(Workspace.id == workspace_id)
        .values(config_version=Workspace.config_version + 1)
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class Snapshot:
    workspace_id: int
    version: int
    repositories: Mapping[str, RepositoryContext]  # by repo_id

    def lookup(self, repo_id: str) -> Lookup:
        return Lookup(self.workspace_id, self.repositories.get(repo_id))


def load(session: Session, *, owner: str, slug: str) -> Snapshot | None:
    loaded = repositories.load_workspace(session, owner=owner, slug=slug)
    if loaded is None:
        return None
    workspace_id, version, contexts = loaded
    return Snapshot(workspace_id, version, {c.repo_id: c for c in contexts})


class Snapshots:
    """The process's snapshots, by (owner, slug). Threads share them: a snapshot is immutable and
    replaced whole; two threads reloading at once each store a current one."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions
        self._by_name: dict[tuple[str, str], Snapshot] = {}

    def cached(self, owner: str, slug: str) -> Snapshot | None:
        """The last snapshot loaded, unchecked: only for a caller that checks its version itself before
        anything it does counts (and reloads, with `reload`, when it has moved)."""
        return self._by_name.get((owner, slug))

    def current(self, owner: str, slug: str) -> Snapshot | None:
        """A snapshot as of now (None: no such workspace): the cached one if its version has not moved
        (one indexed one-row query), else reloaded."""

        def read(session: Session) -> Snapshot | None:
            row = session.execute(_VERSION, {"owner": owner, "slug": slug}).first()
            if row is None:
                return None
            cached = self._by_name.get((owner, slug))
            if cached is not None and (cached.workspace_id, cached.version) == (row.id, row.config_version):
                return cached
            return load(session, owner=owner, slug=slug)

        return self._keep(owner, slug, read_again_if_dropped(self._sessions, read))

    def reload(self, owner: str, slug: str) -> Snapshot | None:
        found = read_again_if_dropped(self._sessions, lambda session: load(session, owner=owner, slug=slug))
        return self._keep(owner, slug, found)

    def _keep(self, owner: str, slug: str, snapshot: Snapshot | None) -> Snapshot | None:
        if snapshot is None:
            self._by_name.pop((owner, slug), None)
        else:
            self._by_name[(owner, slug)] = snapshot
        return snapshot
