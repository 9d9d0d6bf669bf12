"""Files for pull integrations: list changes, info, content, export status, soft delete.

Thin: parse, call the shared core (filerelay.files), shape. The mapping from a document to a
file is documented on filerelay.files.describe and its helpers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Response
from sqlalchemy.orm import Session

from filerelay import files
from filerelay.api import served_content
from filerelay.api.auth import acting, requires, workspace_id
from filerelay.api.context import runtime
from filerelay.api.errors import ApiError
from filerelay.api.files import schemas
from filerelay.api.rest import WORKSPACE_PREFIX, RestBlueprint
from filerelay.content import open_content
from filerelay.db.models import Document, Role
from filerelay.db.session import session_scope
from filerelay.files import Cursor
from filerelay.operations import UnknownItem, relay, transaction

blueprint = RestBlueprint(
    "files", __name__, url_prefix=f"{WORKSPACE_PREFIX}/files", description="Files for pull integrations"
)


def _file(session: Session, file_id: str, *, lock: bool = False) -> Document:
    document = files.find(session, workspace_id=workspace_id(), file_id=file_id, lock=lock)
    if document is None:
        raise ApiError(404, f"no file {file_id}")
    return document


def _live_file(session: Session, file_id: str, *, lock: bool = False) -> Document:
    document = _file(session, file_id, lock=lock)
    if document.deleted_at is not None:
        raise ApiError(409, f"file {file_id} was deleted", code="file_deleted")
    return document


@blueprint.route("")
@requires(Role.VIEWER)
@blueprint.arguments(schemas.ListArgs, location="query", as_kwargs=True)
@blueprint.response(200, schemas.FileList)
@blueprint.alt_response(404, description="no destination `destination_id` in this workspace")
def list_files(
    owner: str,
    slug: str,
    limit: int,
    destination_id: str | None = None,
    updated_after: dt.datetime | None = None,
    cursor: Cursor | None = None,
) -> dict[str, Any]:
    """The work list of a pull integration: files delivered to a `pull` destination (`destination_id`
    picks one), changed after `updatedAfter` (and after `cursor`), oldest change first, deleted ones
    included. New content, a manual retry and a delete bring a file back; the integration's own export
    report does not. Store `next_cursor` and pass it back as `cursor`: no change is missed or repeated.
    A page shorter than `limit` means there is nothing newer for now."""
    with session_scope(runtime().sessions) as session:
        try:
            wired = files.pull_destinations(session, workspace_id=workspace_id(), destination_id=destination_id)
        except files.UnknownDestination as exc:
            raise ApiError(404, str(exc), parameter="destination_id") from None
        except files.NotPull as exc:
            raise ApiError(400, str(exc), code="not_a_pull_destination", parameter="destination_id") from None
        page, next_cursor = files.changes(
            session,
            workspace_id=workspace_id(),
            destinations=wired,
            updated_after=updated_after,
            after=cursor,
            limit=limit,
        )
    return {"success": True, "data": page, "next_cursor": next_cursor}


@blueprint.route("/<file_id>")
@requires(Role.VIEWER)
@blueprint.response(200, schemas.FileEnvelope)
def get_file(owner: str, slug: str, file_id: str) -> dict[str, Any]:
    """One file, deleted ones included with status `deleted`."""
    with session_scope(runtime().sessions) as session:
        return {"success": True, "data": files.describe(_file(session, file_id))}


@blueprint.route("/<file_id>/content")
@requires(Role.VIEWER, link_for="file_id")
@blueprint.arguments(schemas.ContentArgs, location="query", as_kwargs=True)
@blueprint.response(200, content_type="application/octet-stream", description="the file's bytes, streamed")
@blueprint.alt_response(409, description="deleted, or no copy of the bytes can be read any more")
def get_content(owner: str, slug: str, file_id: str, token: str | None = None) -> Response:
    """The bytes: from staging while it holds them, afterwards from a destination that has them. With
    `token` (a webhook notification's signed download link) no API key is needed."""
    rt = runtime()
    with session_scope(rt.sessions) as session:
        document = _live_file(session, file_id)
        body = open_content(rt.staging, session, document, clients=rt.clients)
        if body is None:
            raise ApiError(409, f"no copy of file {file_id} can be read any more", code="content_unavailable")
        response = Response(body, content_type=files.media_type(document))
        response.headers["Content-Length"] = str(document.size_bytes)
        response.headers.set("Content-Disposition", "attachment", filename=files.filename(document))
    return served_content.protect(response)


@blueprint.route("/<file_id>", methods=["PATCH"])
@requires(Role.MEMBER)
@blueprint.arguments(schemas.ExportReport)
@blueprint.response(200, schemas.ExportReply)
@blueprint.alt_response(409, description="the file was deleted")
def report_export(report: dict[str, Any], owner: str, slug: str, file_id: str) -> dict[str, Any]:
    """The integration's export status. It also moves the file's pull deliveries:
    exporting → delivering, completed → delivered, error → failed, empty → pending again. It does not
    bring the file back into the feed."""
    rt = runtime()
    with session_scope(rt.sessions) as session:
        document = _live_file(session, file_id, lock=True)
        files.report_export(session, document, status=report["status"], messages=report["messages"], now=rt.clock.now())
        return {"file_id": document.id, "export_info": files.export_info(document)}


@blueprint.route("/<file_id>", methods=["DELETE"])
@requires(Role.ADMIN)
@blueprint.response(204)
def delete_file(owner: str, slug: str, file_id: str) -> None:
    """Soft delete: gone from the documents list and from SAP, still in the change feed as `deleted`."""
    try:
        with transaction(acting()) as tx:
            relay.delete_file(tx, workspace_id=workspace_id(), file_id=file_id)
    except UnknownItem as exc:
        raise ApiError(404, str(exc)) from None
