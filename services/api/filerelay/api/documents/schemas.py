"""Request and response shapes of the Documents API, field for field (tests/support/shapes/documents.json)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from filerelay.api.context import runtime
from filerelay.api.rest import CursorPageMeta, DateBound, UtcDateTime
from filerelay.catalog import COUNT_CAP, DocumentFilter
from filerelay.db.models import DocumentStatus
from filerelay.delivery import retention
from filerelay.delivery.retention import Retention
from filerelay.operations.business_context import MAX_ENTRIES

STATUSES = [s.value for s in DocumentStatus]


class DeliverySchema(ma.Schema):
    destination_id = fields.String(attribute="destination.public_id", required=True)
    destination_name = fields.String(attribute="destination.name", required=True)
    status = fields.String(required=True)
    delivered_at = UtcDateTime(allow_none=True, required=True)
    attempts = fields.Integer(required=True)


class DeliveryDetailSchema(DeliverySchema):
    path = fields.String(allow_none=True, required=True)


class DocumentAttributes(ma.Schema):
    doc_id = fields.String(required=True)
    repo_id = fields.String(attribute="repository.repo_id", required=True)
    comp_id = fields.String(required=True)
    content_type = fields.String(required=True)
    size_bytes = fields.Integer(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    received_at = UtcDateTime(required=True)
    deliveries = fields.List(fields.Nested(DeliverySchema), required=True)


class _Expiry(UtcDateTime):
    """A moment of the data lifecycle (filerelay.delivery.retention), from the document and this process's
    retention settings."""

    def __init__(self, rule: Callable[[Any, Retention], dt.datetime | None], **kwargs: Any) -> None:
        super().__init__(dump_only=True, **kwargs)
        self._rule = rule

    def get_value(self, obj: Any, attr: str, accessor: Any = None, default: Any = ma.missing) -> Any:
        return self._rule(obj, runtime().settings.retention)


class DocumentDetailAttributes(DocumentAttributes):
    metadata = fields.Dict(attribute="metadata_", required=True)
    deliveries = fields.List(fields.Nested(DeliveryDetailSchema), required=True)
    # The data lifecycle (docs/operations.md#data-lifecycle): fields added to the reference shape.
    staging_expires_at = _Expiry(
        retention.staging_expires_at,
        required=True,
        allow_none=True,
        metadata={
            "description": "when the sweeper releases the staged bytes (delivered: after"
            " FILERELAY_STAGING_RETENTION_SECONDS; failed: after FILERELAY_FAILED_RETENTION_DAYS); null while a"
            " delivery waits, when kept for ever, or once released"
        },
    )
    staging_released_at = UtcDateTime(
        required=True,
        allow_none=True,
        metadata={"description": "when the staged bytes of this failed document were released; a retry is refused"},
    )
    staging_released_reason = fields.String(required=True, allow_none=True)
    record_expires_at = _Expiry(
        retention.record_expires_at,
        required=True,
        allow_none=True,
        metadata={"description": "when the sweeper removes this document's rows (FILERELAY_RECORD_RETENTION_DAYS)"},
    )


class RetryAttributes(ma.Schema):
    """The retry answer carries fewer fields than a listing (tests/support/shapes/documents.json, the third)."""

    doc_id = fields.String(required=True)
    repo_id = fields.String(attribute="repository.repo_id", required=True)
    status = fields.String(required=True)
    received_at = UtcDateTime(required=True)
    deliveries = fields.List(fields.Nested(DeliverySchema), required=True)


def _resource(attributes_schema: type[ma.Schema]) -> type[ma.Schema]:
    class Resource(ma.Schema):
        id = fields.String(required=True)
        type = fields.Constant("document", required=True)
        attributes = fields.Nested(attributes_schema, required=True)

        @ma.pre_dump
        def wrap(self, document: Any, **_: Any) -> dict[str, Any]:
            return {"id": document.id, "attributes": document}

    Resource.__name__ = attributes_schema.__name__.replace("Attributes", "") + "Resource"
    return Resource


DocumentResource = _resource(DocumentAttributes)
DocumentDetailResource = _resource(DocumentDetailAttributes)
RetryResource = _resource(RetryAttributes)


class PageMeta(CursorPageMeta):
    """Paged by cursor or, as the seed's clients do, by page number."""

    current_page = fields.Integer(
        required=True, allow_none=True, metadata={"description": "null when the page was asked for by cursor"}
    )
    total = fields.Integer(
        required=True,
        metadata={"description": "documents matching the filters; at least this many when total_exact is false"},
    )
    total_exact = fields.Boolean(
        required=True,
        metadata={"description": f"false when more than {COUNT_CAP:,} match: total is then a lower bound"},
    )


class DocumentList(ma.Schema):
    data = fields.List(fields.Nested(DocumentResource), required=True)
    meta = fields.Nested(PageMeta, required=True)


class DocumentEnvelope(ma.Schema):
    data = fields.Nested(DocumentDetailResource, required=True)


class RetryEnvelope(ma.Schema):
    data = fields.Nested(RetryResource, required=True)


class FilterArgs(ma.Schema):
    repo_id = fields.String(validate=validate.Length(min=1, max=32))
    status = fields.String(validate=validate.OneOf(STATUSES))
    date_from = DateBound(metadata={"description": "received on or after (ISO 8601 date or date-time)"})
    date_to = DateBound(end=True, metadata={"description": "received on or before (ISO 8601 date or date-time)"})
    destination_id = fields.String(
        validate=validate.Length(min=1, max=64), metadata={"description": "documents with a delivery to it"}
    )
    doc_id = fields.String(
        validate=[validate.Length(min=1, max=128), validate.Regexp(r"^[^\x00]*$")],
        metadata={"description": "SAP's docId (every component of it)"},
    )

    sap_object_type = fields.String(
        validate=validate.Regexp(r"^[A-Z0-9_]{1,10}$", error="use 1 to 10 uppercase letters, digits or '_'"),
        metadata={"description": "documents linked to this SAP business object type (metadata), e.g. BKPF"},
    )
    sap_object_id = fields.String(
        validate=[validate.Length(min=1, max=90), validate.Regexp(r"^[^\x00-\x1f\x7f]*$")],
        metadata={"description": "and to this object key (needs sap_object_type)"},
    )

    @ma.validates_schema
    def _object_key_needs_type(self, data: dict[str, Any], **_: Any) -> None:
        if "sap_object_id" in data and "sap_object_type" not in data:
            raise ma.ValidationError("give sap_object_type with sap_object_id", field_name="sap_object_id")


FILTERS = (
    "status",
    "repo_id",
    "destination_id",
    "doc_id",
    "sap_object_type",
    "sap_object_id",
    "date_from",
    "date_to",
)


def to_filter(args: dict[str, Any]) -> DocumentFilter:
    """The filters as loaded by FilterArgs (the REST API's names) for the catalog's queries."""
    return DocumentFilter(
        repo_id=args.get("repo_id"),
        status=args.get("status"),
        received_from=args.get("date_from"),
        received_before=args.get("date_to"),
        destination_id=args.get("destination_id"),
        doc_id=args.get("doc_id"),
        sap_object_type=args.get("sap_object_type"),
        sap_object_id=args.get("sap_object_id"),
    )


class ListArgs(FilterArgs):
    page = fields.Integer(validate=validate.Range(min=1, max=1_000_000), metadata={"description": "default 1"})
    per_page = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))
    cursor = fields.String(
        validate=validate.Length(min=1, max=512),
        metadata={"description": "meta.next_cursor of the previous page; instead of `page`"},
    )

    @ma.validates_schema
    def _one_way_to_page(self, data: dict[str, Any], **_: Any) -> None:
        if "page" in data and "cursor" in data:
            raise ma.ValidationError("give either page or cursor, not both", field_name="cursor")


class BulkRetryArgs(FilterArgs):
    pass


class BulkRetryAttributes(ma.Schema):
    documents = fields.Integer(required=True, metadata={"description": "documents with a delivery re-queued"})
    deliveries = fields.Integer(required=True, metadata={"description": "failed deliveries re-queued"})


class BulkRetryResource(ma.Schema):
    type = fields.Constant("bulk_retry", required=True)
    attributes = fields.Nested(BulkRetryAttributes, required=True)


class BulkRetryEnvelope(ma.Schema):
    data = fields.Nested(BulkRetryResource, required=True)


# --- business context ---------------------------------------------------------------------------------


def _known(description: str) -> fields.Raw:
    return fields.Raw(metadata={"type": "string", "description": description})


class MetadataBody(ma.Schema):
    """The metadata object, documented here and checked by filerelay.business_context (one rule for both
    endpoints): the well-known keys in SAP's formats, other keys free strings."""

    class Meta:
        unknown = ma.INCLUDE

    sap_object_type = _known("SAP business object type (SAP_OBJECT): 1-10 of A-Z 0-9 _, e.g. BKPF, BUS2081")
    sap_object_id = _known("the object's key (OBJECT_ID): 1-90 characters; needs sap_object_type")
    ar_object = _known("ArchiveLink document type (AR_OBJECT): 1-10 of A-Z 0-9 _")
    client = _known("SAP client (MANDT): 3 digits")


class MetadataEntry(ma.Schema):
    repo_id = fields.String(required=True, validate=validate.Length(min=1, max=32))
    doc_id = fields.String(required=True, validate=[validate.Length(min=1, max=128), validate.Regexp(r"^[^\x00]*$")])
    metadata = fields.Dict(
        required=True, metadata={"description": "replaces the metadata of every live component of the document"}
    )


class MetadataBatch(ma.Schema):
    entries = fields.List(fields.Nested(MetadataEntry), required=True, validate=validate.Length(min=1, max=MAX_ENTRIES))


class EntryError(ma.Schema):
    status = fields.String(required=True)
    code = fields.String(required=True)
    title = fields.String(required=True)
    detail = fields.String(required=True)
    source = fields.Dict(metadata={"description": "{pointer} into the request body"})


class EntryResultSchema(ma.Schema):
    repo_id = fields.String(required=True)
    doc_id = fields.String(required=True)
    status = fields.Integer(
        required=True,
        metadata={
            "description": "200 set (or already so), 400 invalid metadata, 404 unknown, 409 deleted or discarded"
        },
    )
    changed = fields.Boolean(required=True, metadata={"description": "false when it already had this metadata"})
    documents = fields.List(fields.String(), required=True, metadata={"description": "the components set"})
    errors = fields.List(fields.Nested(EntryError), required=True)


class BatchMeta(ma.Schema):
    changed = fields.Integer(required=True)
    unchanged = fields.Integer(required=True)
    failed = fields.Integer(required=True)


class MetadataBatchEnvelope(ma.Schema):
    data = fields.List(fields.Nested(EntryResultSchema), required=True)
    meta = fields.Nested(BatchMeta, required=True)
