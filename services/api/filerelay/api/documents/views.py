"""Documents: list, get, retry one, retry in bulk. Thin: parse, call the shared core, shape."""

from __future__ import annotations

from typing import Any

from flask import Response

from filerelay import catalog
from filerelay.api.auth import acting, requires, workspace_id
from filerelay.api.context import runtime
from filerelay.api.documents import schemas
from filerelay.api.errors import ApiError, ErrorsSchema, error_entry, error_response
from filerelay.api.rest import WORKSPACE_PREFIX, RestBlueprint, parse_cursor
from filerelay.db.models import Role
from filerelay.db.session import session_scope
from filerelay.delivery.retry import NothingToRetry, StagedBytesReleased
from filerelay.operations import UnknownItem, business_context, relay, transaction
from filerelay.operations.business_context import EntryResult, InvalidMetadata, NotAccepted

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
    after = parse_cursor(cursor, catalog.Cursor.decode)
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
    document = catalog.find_document(session, workspace_id=workspace_id(), document_id=document_id)
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


# --- business context ---------------------------------------------------------------------------------


def _problems(exc: InvalidMetadata, prefix: str = "") -> list[dict[str, Any]]:
    return [
        error_entry(400, f"{p.pointer.lstrip('/') or 'metadata'}: {p.message}", pointer=prefix + p.pointer or "/")
        for p in exc.problems
    ]


@blueprint.route("/<document_id>/metadata", methods=["PUT"])
@requires(Role.MEMBER)
@blueprint.arguments(schemas.MetadataBody)
@blueprint.response(200, schemas.DocumentEnvelope)
@blueprint.alt_response(400, schema=ErrorsSchema, description="invalid metadata; nothing was changed")
@blueprint.alt_response(409, schema=ErrorsSchema, description="the document was deleted or discarded")
def put_metadata(body: dict[str, Any], owner: str, slug: str, document_id: str) -> dict[str, Any] | Response:
    """Set the document's business context: the body replaces its metadata (the same body again changes
    nothing). Deliveries waiting for it (the repository's `metadata_wait`) go out now."""
    try:
        with transaction(acting()) as tx:  # wakes the deliveries after its commit
            business_context.set_metadata(tx, workspace_id=workspace_id(), document_id=document_id, metadata=body)
    except InvalidMetadata as exc:
        return error_response(400, _problems(exc))
    except UnknownItem as exc:
        raise ApiError(404, str(exc)) from None
    except NotAccepted as exc:
        raise ApiError(409, f"document {document_id}: {exc}", code="not_accepted") from None
    with session_scope(runtime().sessions) as session:
        return {"data": _document(session, document_id)}


def _entry(index: int, result: EntryResult) -> dict[str, Any]:
    errors: list[dict[str, Any]] = []
    if result.problems:
        errors = _problems(InvalidMetadata(result.problems), f"/entries/{index}/metadata")
    elif result.detail is not None:
        errors = [error_entry(result.status, result.detail, pointer=f"/entries/{index}")]
    return {
        "repo_id": result.repo_id,
        "doc_id": result.doc_id,
        "status": result.status,
        "changed": result.changed,
        "documents": result.documents,
        "errors": errors,
    }


@blueprint.route("/metadata", methods=["POST"])
@requires(Role.MEMBER)
@blueprint.arguments(schemas.MetadataBatch)
@blueprint.response(200, schemas.MetadataBatchEnvelope)
def post_metadata(body: dict[str, Any], owner: str, slug: str) -> dict[str, Any]:
    """Set the business context of up to 1,000 SAP documents, named by `repo_id` and `doc_id` (every live
    component of each); answered per entry, in order. An entry refused (invalid, unknown, deleted or
    discarded) changes nothing, and the others go ahead; a malformed body changes nothing at all."""
    results = business_context.set_many(acting(), workspace_id=workspace_id(), entries=body["entries"])
    data = [_entry(i, r) for i, r in enumerate(results)]
    return {
        "data": data,
        "meta": {
            "changed": sum(1 for r in results if r.changed),
            "unchanged": sum(1 for r in results if r.status == 200 and not r.changed),
            "failed": sum(1 for r in results if r.status != 200),
        },
    }
