"""Documents: list, get, retry one, retry in bulk. Thin: parse, call the shared core, shape."""

from __future__ import annotations

from typing import Any

from filerelay import catalog
from filerelay.api.auth import acting, requires, workspace_id
from filerelay.api.context import runtime
from filerelay.api.documents import schemas
from filerelay.api.errors import ApiError
from filerelay.api.rest import WORKSPACE_PREFIX, RestBlueprint
from filerelay.db.models import Role
from filerelay.db.session import session_scope
from filerelay.delivery.retry import NothingToRetry, StagedBytesReleased
from filerelay.operations import UnknownItem, relay, transaction

blueprint = RestBlueprint(
    "documents", __name__, url_prefix=f"{WORKSPACE_PREFIX}/documents", description="Documents received from SAP"
)


@blueprint.route("")
@requires(Role.VIEWER)
@blueprint.arguments(schemas.ListArgs, location="query", as_kwargs=True)
@blueprint.response(200, schemas.DocumentList)
def list_documents(
    owner: str, slug: str, per_page: int, page: int | None = None, cursor: str | None = None, **filters: Any
) -> dict[str, Any]:
    """List documents, newest first. Page by `page` or, faster deep down, by `cursor` (meta.next_cursor)."""
    try:
        after = catalog.Cursor.decode(cursor) if cursor is not None else None
    except ValueError as exc:
        raise ApiError(400, f"cursor: {exc}", parameter="cursor") from None
    with session_scope(runtime().sessions) as session:
        found = catalog.list_documents(
            session,
            workspace_id=workspace_id(),
            filters=schemas.to_filter(filters),
            page=page or 1,
            after=after,
            per_page=per_page,
        )
        meta = {
            "current_page": None if after is not None else page or 1,
            "per_page": per_page,
            "total": found.total,
            "total_exact": found.total_exact,
            "next_cursor": found.next_cursor.encode() if found.next_cursor is not None else None,
        }
        return {"data": found.documents, "meta": meta}


def _document(session: Any, document_id: str) -> Any:
    document = catalog.get_document(session, workspace_id=workspace_id(), document_id=document_id)
    if document is None:
        raise ApiError(404, f"no document {document_id}")
    return document


@blueprint.route("/<document_id>")
@requires(Role.VIEWER)
@blueprint.response(200, schemas.DocumentEnvelope)
def get_document(owner: str, slug: str, document_id: str) -> dict[str, Any]:
    """One document with its metadata and each delivery's path."""
    with session_scope(runtime().sessions) as session:
        return {"data": _document(session, document_id)}


@blueprint.route("/<document_id>/retry", methods=["POST"])
@requires(Role.MEMBER)
@blueprint.response(200, schemas.RetryEnvelope)
@blueprint.alt_response(
    409,
    description="no delivery of this document has failed (`nothing_to_retry`), or its staged bytes were"
    " released after FILERELAY_FAILED_RETENTION_DAYS (`staging_released`)",
)
def retry(owner: str, slug: str, document_id: str) -> dict[str, Any]:
    """Re-queue every failed delivery of the document; delivered ones are never re-sent."""
    try:
        with transaction(acting()) as tx:  # wakes the deliveries after its commit
            relay.retry(tx, workspace_id=workspace_id(), document_id=document_id)
    except UnknownItem as exc:
        raise ApiError(404, str(exc)) from None
    except StagedBytesReleased as exc:
        raise ApiError(409, str(exc), code="staging_released") from None
    except NothingToRetry as exc:
        raise ApiError(409, str(exc), code="nothing_to_retry") from None
    with session_scope(runtime().sessions) as session:
        return {"data": _document(session, document_id)}


@blueprint.route("/retry", methods=["POST"])
@requires(Role.MEMBER)
@blueprint.arguments(schemas.BulkRetryArgs, location="query", as_kwargs=True)
@blueprint.response(200, schemas.BulkRetryEnvelope)
def bulk_retry(owner: str, slug: str, **filters: Any) -> dict[str, Any]:
    """Re-queue the failed deliveries of every document matching the filters (and destination)."""
    done = relay.retry_matching(
        acting(),
        workspace_id=workspace_id(),
        filters=schemas.to_filter(filters),
        described={k: str(v) for k, v in filters.items()},
    )
    return {"data": {"attributes": {"documents": done.documents, "deliveries": done.deliveries}}}
