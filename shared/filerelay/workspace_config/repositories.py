"""Repositories and routes: which destinations each content repository is wired to."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, selectinload

from filerelay.db.models import ArchiveDocument, Destination, Repository, Route, SignatureMode
from filerelay.workspace_config.common import (
    ConfigurationError,
    Conflict,
    InvalidInput,
    NotFound,
    assign_changed,
    flush_or_conflict,
    record,
    storable,
)
from filerelay.workspace_config.destinations import find_destination


@dataclass(frozen=True)
class RepositoryInfo:
    repo_id: str
    description: str
    signature: str
    destinations: list[str]
    created_at: dt.datetime
    metadata_wait: int  # seconds


def _repository_info(repository: Repository) -> RepositoryInfo:
    return record(
        RepositoryInfo,
        repository,
        destinations=sorted(d.public_id for d in repository.destinations),
        metadata_wait=repository.metadata_wait_seconds,
    )


def _repository(session: Session, workspace_id: int, repo_id: str) -> Repository | None:
    if not storable(repo_id):
        return None
    return session.scalar(
        select(Repository)
        .where(Repository.workspace_id == workspace_id, Repository.repo_id == repo_id)
        .options(selectinload(Repository.destinations))
    )


def _existing_repository(session: Session, workspace_id: int, repo_id: str) -> Repository:
    repository = _repository(session, workspace_id, repo_id)
    if repository is None:
        raise NotFound(f"no repository {repo_id}")
    return repository


def _destination_ids(session: Session, workspace_id: int, public_ids: Iterable[str], field: str) -> set[int]:
    wanted = set(public_ids)
    rows = session.execute(
        select(Destination.public_id, Destination.id).where(
            Destination.workspace_id == workspace_id, Destination.public_id.in_(wanted)
        )
    )
    found = {public_id: row_id for public_id, row_id in rows}
    missing = sorted(wanted - found.keys())
    if missing:
        raise InvalidInput(f"{field}: no destination {', '.join(missing)}", field=field)
    return set(found.values())


def _replace_routes(session: Session, repository: Repository, destination_ids: set[int]) -> bool:
    """Wire the repository to exactly these destinations (row ids); True when anything changed."""
    routes = {r.destination_id: r for r in session.scalars(select(Route).where(Route.repository_id == repository.id))}
    for destination_id in destination_ids - routes.keys():
        session.add(Route(repository_id=repository.id, destination_id=destination_id))
    for destination_id in routes.keys() - destination_ids:
        session.delete(routes[destination_id])
    return destination_ids != routes.keys()


def _rewire(session: Session, workspace_id: int, repository: Repository, public_ids: Iterable[str]) -> bool:
    changed = _replace_routes(session, repository, _destination_ids(session, workspace_id, public_ids, "destinations"))
    session.flush()
    session.expire(repository, ["destinations"])
    return changed


def list_repositories(session: Session, *, workspace_id: int) -> list[RepositoryInfo]:
    rows = session.scalars(
        select(Repository)
        .where(Repository.workspace_id == workspace_id)
        .options(selectinload(Repository.destinations))
        .order_by(Repository.repo_id)
    )
    return [_repository_info(r) for r in rows]


def get_repository(session: Session, *, workspace_id: int, repo_id: str) -> RepositoryInfo:
    return _repository_info(_existing_repository(session, workspace_id, repo_id))


def create_repository(
    session: Session, *, workspace_id: int, values: Mapping[str, Any], now: dt.datetime
) -> RepositoryInfo:
    """`values`: repo_id, and optionally description, signature, metadata_wait (seconds), destinations
    (public ids, the whole wiring)."""
    repository = Repository(
        workspace_id=workspace_id,
        repo_id=values["repo_id"],
        description=values.get("description", ""),
        signature=values.get("signature", SignatureMode.REQUIRED.value),
        metadata_wait_seconds=values.get("metadata_wait", 0),
        created_at=now,
    )
    session.add(repository)
    flush_or_conflict(session, f"a repository {values['repo_id']} already exists", "repo_id")
    _rewire(session, workspace_id, repository, values.get("destinations", []))
    return _repository_info(repository)


def update_repository(
    session: Session, *, workspace_id: int, repo_id: str, changes: Mapping[str, Any]
) -> RepositoryInfo:
    """A `destinations` list replaces the wiring, as in a config file."""
    repository = _existing_repository(session, workspace_id, repo_id)
    assign_changed(repository, {k: v for k, v in changes.items() if k in ("description", "signature")})
    if "metadata_wait" in changes:
        assign_changed(repository, {"metadata_wait_seconds": changes["metadata_wait"]})
    if "destinations" in changes:
        _rewire(session, workspace_id, repository, changes["destinations"])
    session.flush()
    return _repository_info(repository)


def put_repository(
    session: Session, *, workspace_id: int, values: Mapping[str, Any], now: dt.datetime
) -> tuple[str | None, bool]:
    """Create the repository or bring it to exactly `values` (`config apply`; loaded by RepositoryCreate),
    its wiring included. Answers ("created" | "updated" | None, whether an existing one was rewired)."""
    repository = _repository(session, workspace_id, values["repo_id"])
    if repository is None:
        create_repository(session, workspace_id=workspace_id, values=values, now=now)
        return "created", False
    changed = assign_changed(
        repository,
        {
            "description": values["description"],
            "signature": values["signature"],
            "metadata_wait_seconds": values["metadata_wait"],
        },
    )
    rewired = _rewire(session, workspace_id, repository, values["destinations"])
    return ("updated" if changed else None), rewired


def delete_repository(session: Session, *, workspace_id: int, repo_id: str) -> None:
    """Only an empty repository: its documents (and their delivery history) would go with it."""
    repository = _existing_repository(session, workspace_id, repo_id)
    if session.scalar(select(exists().where(ArchiveDocument.repository_id == repository.id))):
        raise Conflict(f"repository {repo_id} holds documents; it cannot be deleted")
    session.delete(repository)
    session.flush()


@dataclass(frozen=True)
class RouteInfo:
    repo_id: str
    destination_id: str


def list_routes(session: Session, *, workspace_id: int) -> list[RouteInfo]:
    rows = session.execute(
        select(Repository.repo_id, Destination.public_id)
        .join(Route, Route.repository_id == Repository.id)
        .join(Destination, Destination.id == Route.destination_id)
        .where(Repository.workspace_id == workspace_id)
        .order_by(Repository.repo_id, Destination.public_id)
    )
    return [RouteInfo(repo_id=r, destination_id=d) for r, d in rows]


def _route_ends(
    session: Session, workspace_id: int, repo_id: str, destination_id: str, missing: type[ConfigurationError]
) -> tuple[Repository, int]:
    """The repository and destination row id of a route; an unknown end raises `missing`: a bad
    request body (400) when wiring, an unknown URL (404) when unwiring."""
    repository = _repository(session, workspace_id, repo_id)
    if repository is None:
        raise missing(f"no repository {repo_id}", field="repo_id")
    destination = find_destination(session, workspace_id, destination_id)
    if destination is None:
        raise missing(f"no destination {destination_id}", field="destination_id")
    return repository, destination.id


def add_route(session: Session, *, workspace_id: int, repo_id: str, destination_id: str) -> RouteInfo:
    repository, row_id = _route_ends(session, workspace_id, repo_id, destination_id, InvalidInput)
    if session.get(Route, (repository.id, row_id)) is not None:
        raise Conflict(f"repository {repo_id} is already wired to {destination_id}")
    session.add(Route(repository_id=repository.id, destination_id=row_id))
    flush_or_conflict(session, f"repository {repo_id} is already wired to {destination_id}", "destination_id")
    return RouteInfo(repo_id=repo_id, destination_id=destination_id)


def remove_route(session: Session, *, workspace_id: int, repo_id: str, destination_id: str) -> None:
    repository, row_id = _route_ends(session, workspace_id, repo_id, destination_id, NotFound)
    route = session.get(Route, (repository.id, row_id))
    if route is None:
        raise NotFound(f"repository {repo_id} is not wired to {destination_id}")
    session.delete(route)
    session.flush()


def audit_view(session: Session, *, workspace_id: int, repo_id: str) -> dict[str, Any] | None:
    """The repository as the audit log compares it before and after a change (None: there is none)."""
    repository = _repository(session, workspace_id, repo_id)
    if repository is None:
        return None
    session.refresh(repository, ["destinations"])  # the wiring as it is now, not as first loaded
    info = _repository_info(repository)
    return {
        "description": info.description,
        "signature": info.signature,
        "metadata_wait": info.metadata_wait,
        "destinations": info.destinations,
    }
