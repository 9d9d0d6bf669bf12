"""Configuration endpoints (admin role): destinations, repositories, routes, retry settings, API keys.
Thin: parse, then read through filerelay.workspace_config or change through filerelay.operations (which
audits every change), shape. Their errors become 400, 404 and 409 here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Response
from sqlalchemy.orm import Session

from filerelay.api.admin import schemas
from filerelay.api.auth import acting, requires, workspace_id
from filerelay.api.context import runtime
from filerelay.api.errors import ApiError, ErrorsSchema, handle_api_error
from filerelay.api.rest import WORKSPACE_PREFIX, RestBlueprint
from filerelay.db.models import Role
from filerelay.db.session import read_scope
from filerelay.operations import configuration, relay, transaction
from filerelay.workspace_config import api_keys, destinations, repositories, retry_settings
from filerelay.workspace_config.common import ConfigurationError, Conflict, InvalidInput, NotFound

blueprint = RestBlueprint("admin", __name__, url_prefix=WORKSPACE_PREFIX, description="Configuration (admin)")

_STATUS = {InvalidInput: 400, NotFound: 404, Conflict: 409}


@blueprint.errorhandler(ConfigurationError)
def _configuration_error(error: ConfigurationError) -> Response:
    status = _STATUS.get(type(error), 400)
    pointer = "/" + error.field if error.field and status == 400 else None
    return handle_api_error(ApiError(status, str(error), pointer=pointer))


@contextmanager
def _session() -> Iterator[Session]:
    """A read: changes go through filerelay.operations."""
    with read_scope(runtime().sessions) as session:
        yield session


# --- destinations -----------------------------------------------------------------------------------


@blueprint.route("/destinations")
@requires(Role.ADMIN)
@blueprint.response(200, schemas.DestinationList)
def list_destinations(owner: str, slug: str) -> dict[str, Any]:
    """Every destination of the workspace; secrets are never shown, only which are set."""
    with _session() as session:
        return {"data": destinations.list_destinations(session, workspace_id=workspace_id())}


@blueprint.route("/destinations", methods=["POST"])
@requires(Role.ADMIN)
@blueprint.arguments(schemas.DestinationCreate)
@blueprint.response(201, schemas.DestinationEnvelope)
@blueprint.alt_response(409, schema=ErrorsSchema, description="a destination with this id exists")
def create_destination(body: dict[str, Any], owner: str, slug: str) -> dict[str, Any]:
    """Create a destination; its settings are checked by its kind."""
    with transaction(acting()) as tx:
        info = configuration.create_destination(
            tx, values=body, workspace_id=workspace_id(), policy=runtime().settings.policy
        )
    return {"data": info}


@blueprint.route("/destinations/<destination_id>")
@requires(Role.ADMIN)
@blueprint.response(200, schemas.DestinationEnvelope)
def get_destination(owner: str, slug: str, destination_id: str) -> dict[str, Any]:
    """One destination."""
    with _session() as session:
        return {
            "data": destinations.get_destination(session, destination_id=destination_id, workspace_id=workspace_id())
        }


@blueprint.route("/destinations/<destination_id>", methods=["PATCH"])
@requires(Role.ADMIN)
@blueprint.arguments(schemas.DestinationPatch)
@blueprint.response(200, schemas.DestinationEnvelope)
def update_destination(body: dict[str, Any], owner: str, slug: str, destination_id: str) -> dict[str, Any]:
    """Change a destination; settings of the same kind are merged, so secrets left out are kept."""
    with transaction(acting()) as tx:
        info = configuration.update_destination(
            tx,
            destination_id=destination_id,
            changes=body,
            workspace_id=workspace_id(),
            policy=runtime().settings.policy,
        )
    return {"data": info}


@blueprint.route("/destinations/<destination_id>", methods=["DELETE"])
@requires(Role.ADMIN)
@blueprint.response(204)
@blueprint.alt_response(409, schema=ErrorsSchema, description="deliveries were made to it: disable it instead")
def delete_destination(owner: str, slug: str, destination_id: str) -> None:
    """Delete a destination no document was ever delivered to, with its routes. One with deliveries
    answers 409: disable it (`PATCH {"enabled": false}`) to keep where documents went."""
    with transaction(acting()) as tx:
        configuration.delete_destination(tx, destination_id=destination_id, workspace_id=workspace_id())


@blueprint.route("/destinations/<destination_id>/test", methods=["POST"])
@requires(Role.ADMIN)
@blueprint.response(200, schemas.CheckResultEnvelope)
def check_destination(owner: str, slug: str, destination_id: str) -> dict[str, Any]:
    """Check the destination's credentials and reachability; 200 either way, with `ok` and the reason."""
    with _session() as session:
        check = destinations.destination_check(
            session, destination_id=destination_id, workspace_id=workspace_id(), policy=runtime().settings.policy
        )
    return {"data": check()}


@blueprint.route("/destinations/<destination_id>/pause", methods=["POST"])
@requires(Role.ADMIN)
@blueprint.response(200, schemas.DestinationEnvelope)
@blueprint.alt_response(409, schema=ErrorsSchema, description="already paused, or a pull destination")
def pause_destination(owner: str, slug: str, destination_id: str) -> dict[str, Any]:
    """Hold the destination's deliveries: none is attempted and none spends its retry TTL until resumed.
    Kept apart from `enabled` (which `config apply` sets)."""
    with transaction(acting()) as tx:
        info = relay.pause(tx, destination_id=destination_id, workspace_id=workspace_id())
    return {"data": info}


@blueprint.route("/destinations/<destination_id>/resume", methods=["POST"])
@requires(Role.ADMIN)
@blueprint.response(200, schemas.DestinationEnvelope)
@blueprint.alt_response(409, schema=ErrorsSchema, description="not paused")
def resume_destination(owner: str, slug: str, destination_id: str) -> dict[str, Any]:
    """Let the deliveries go again (unless the circuit breaker holds them); their TTL deadlines move by
    the time they waited, and those due are sent at once."""
    with transaction(acting()) as tx:  # wakes the due deliveries after its commit
        info = relay.resume(tx, destination_id=destination_id, workspace_id=workspace_id())
    return {"data": info}


# --- repositories -----------------------------------------------------------------------------------


@blueprint.route("/repositories")
@requires(Role.ADMIN)
@blueprint.response(200, schemas.RepositoryList)
def list_repositories(owner: str, slug: str) -> dict[str, Any]:
    """Every content repository of the workspace, with the destinations wired to it."""
    with _session() as session:
        return {"data": repositories.list_repositories(session, workspace_id=workspace_id())}


@blueprint.route("/repositories", methods=["POST"])
@requires(Role.ADMIN)
@blueprint.arguments(schemas.RepositoryCreate)
@blueprint.response(201, schemas.RepositoryEnvelope)
@blueprint.alt_response(409, schema=ErrorsSchema, description="a repository with this id exists")
def create_repository(body: dict[str, Any], owner: str, slug: str) -> dict[str, Any]:
    """Create a content repository (SAP contRep), optionally wired to destinations."""
    with transaction(acting()) as tx:
        return {"data": configuration.create_repository(tx, values=body, workspace_id=workspace_id())}


@blueprint.route("/repositories/<repo_id>")
@requires(Role.ADMIN)
@blueprint.response(200, schemas.RepositoryEnvelope)
def get_repository(owner: str, slug: str, repo_id: str) -> dict[str, Any]:
    """One content repository."""
    with _session() as session:
        return {"data": repositories.get_repository(session, repo_id=repo_id, workspace_id=workspace_id())}


@blueprint.route("/repositories/<repo_id>", methods=["PATCH"])
@requires(Role.ADMIN)
@blueprint.arguments(schemas.RepositoryPatch)
@blueprint.response(200, schemas.RepositoryEnvelope)
def update_repository(body: dict[str, Any], owner: str, slug: str, repo_id: str) -> dict[str, Any]:
    """Change a repository; a `destinations` list replaces its wiring."""
    with transaction(acting()) as tx:
        return {"data": configuration.update_repository(tx, repo_id=repo_id, changes=body, workspace_id=workspace_id())}


@blueprint.route("/repositories/<repo_id>", methods=["DELETE"])
@requires(Role.ADMIN)
@blueprint.response(204)
@blueprint.alt_response(409, schema=ErrorsSchema, description="the repository holds documents")
def delete_repository(owner: str, slug: str, repo_id: str) -> None:
    """Delete a repository that holds no documents, with its routes."""
    with transaction(acting()) as tx:
        configuration.delete_repository(tx, repo_id=repo_id, workspace_id=workspace_id())


# --- routes -----------------------------------------------------------------------------------------


@blueprint.route("/routes")
@requires(Role.ADMIN)
@blueprint.response(200, schemas.RouteList)
def list_routes(owner: str, slug: str) -> dict[str, Any]:
    """Every repository → destination wire."""
    with _session() as session:
        return {"data": repositories.list_routes(session, workspace_id=workspace_id())}


@blueprint.route("/routes", methods=["POST"])
@requires(Role.ADMIN)
@blueprint.arguments(schemas.Route)
@blueprint.response(201, schemas.RouteEnvelope)
@blueprint.alt_response(409, schema=ErrorsSchema, description="already wired")
def create_route(body: dict[str, Any], owner: str, slug: str) -> dict[str, Any]:
    """Wire a repository to a destination: documents received from now on are delivered there too."""
    with transaction(acting()) as tx:
        return {
            "data": configuration.add_route(
                tx, repo_id=body["repo_id"], destination_id=body["destination_id"], workspace_id=workspace_id()
            )
        }


@blueprint.route("/routes/<repo_id>/<destination_id>", methods=["DELETE"])
@requires(Role.ADMIN)
@blueprint.response(204)
def delete_route(owner: str, slug: str, repo_id: str, destination_id: str) -> None:
    """Unwire: documents received from now on are not delivered there; deliveries made stay."""
    with transaction(acting()) as tx:
        configuration.remove_route(tx, repo_id=repo_id, destination_id=destination_id, workspace_id=workspace_id())


# --- settings ---------------------------------------------------------------------------------------


@blueprint.route("/settings")
@requires(Role.ADMIN)
@blueprint.response(200, schemas.RetrySettingsEnvelope)
def get_settings(owner: str, slug: str) -> dict[str, Any]:
    """The workspace's retry settings, durations in seconds and in short form."""
    with _session() as session:
        return {"data": retry_settings.get_retry_settings(session, workspace_id=workspace_id())}


@blueprint.route("/settings", methods=["PATCH"])
@requires(Role.ADMIN)
@blueprint.arguments(schemas.RetrySettingsPatch)
@blueprint.response(200, schemas.RetrySettingsEnvelope)
def update_settings(body: dict[str, Any], owner: str, slug: str) -> dict[str, Any]:
    """Change retry settings; they apply to retry cycles that start from now on."""
    with transaction(acting()) as tx:
        return {"data": configuration.update_retry_settings(tx, changes=body, workspace_id=workspace_id())}


# --- API keys ---------------------------------------------------------------------------------------


@blueprint.route("/api-keys")
@requires(Role.ADMIN)
@blueprint.response(200, schemas.ApiKeyList)
def list_api_keys(owner: str, slug: str) -> dict[str, Any]:
    """Every key of the workspace, revoked ones included; never the key or its hash."""
    with _session() as session:
        return {"data": api_keys.list_keys(session, workspace_id=workspace_id())}


@blueprint.route("/api-keys", methods=["POST"])
@requires(Role.ADMIN)
@blueprint.arguments(schemas.ApiKeyCreate)
@blueprint.response(201, schemas.NewApiKeyEnvelope)
@blueprint.alt_response(
    409, schema=ErrorsSchema, description="a key with this name exists (revoked keys keep their names)"
)
def create_api_key(body: dict[str, Any], owner: str, slug: str) -> dict[str, Any]:
    """Create a key; the answer carries the key itself, once: only its hash is stored."""
    with transaction(acting()) as tx:
        new = configuration.create_key(tx, name=body["name"], role=body["role"], workspace_id=workspace_id())
    return {"data": {**vars(new.info), "key": new.key}}


@blueprint.route("/api-keys/<path:name>", methods=["DELETE"])
@requires(Role.ADMIN)
@blueprint.response(200, schemas.ApiKeyEnvelope)
def revoke_api_key(owner: str, slug: str, name: str) -> dict[str, Any]:
    """Revoke a key: from now on it gets 401. It stays listed, with `revoked_at`."""
    with transaction(acting()) as tx:
        return {"data": configuration.revoke_key(tx, name=name, workspace_id=workspace_id())}
