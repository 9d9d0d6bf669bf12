"""Request and response shapes of the Files API: file information and the export
status reported by a pull integration), field for field."""

from __future__ import annotations

import datetime as dt
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from filerelay.api.rest import DateBound, UtcDateTime
from filerelay.clock import as_utc
from filerelay.delivery.transitions import ExportStatus
from filerelay.files import CURSOR_PATTERN, BadCursor, Cursor, FileStatus

MAX_MESSAGES = 100
MAX_MESSAGE_LENGTH = 2000


class UtcMillisDateTime(ma.fields.DateTime):
    """Serialises as 2025-01-26T14:30:00.000Z, the export report's format."""

    def _serialize(self, value: dt.datetime | None, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        return as_utc(value).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class CursorField(ma.fields.String):
    """The opaque next_cursor: a Cursor inside, a string on the wire."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["metadata"] = {"pattern": CURSOR_PATTERN, **kwargs.get("metadata", {})}
        super().__init__(**kwargs)

    def _serialize(self, value: Cursor | None, attr: str | None, obj: Any, **kwargs: Any) -> str | None:  # type: ignore[override]
        return None if value is None else value.encode()

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Cursor:  # type: ignore[override]
        try:
            return Cursor.decode(super()._deserialize(value, attr, data, **kwargs))
        except BadCursor as exc:
            raise ma.ValidationError(str(exc)) from None


class ExportInfo(ma.Schema):
    """What the integration last reported: the PATCH's answer and every file carry it (filerelay.files.ExportInfo)."""

    export_status = fields.String(
        required=True, validate=validate.OneOf([s.value for s in ExportStatus]), data_key="integrationExportStatus"
    )
    export_messages = fields.List(fields.String(), required=True, data_key="integrationExportMessages")
    export_updated_at = UtcMillisDateTime(
        required=True,
        allow_none=True,
        data_key="integrationExportUpdatedAt",
        metadata={"description": "when it was last reported (or cleared); null until the first report"},
    )


class FileInfo(ma.Schema):
    id = fields.String(required=True)
    filename = fields.String(
        required=True,
        metadata={"description": "the component's own name when it is a file name, else `{doc_id}_{comp_id}{ext}`"},
    )
    file_id = fields.String(required=True, metadata={"description": "stable storage identifier"})
    type = fields.String(
        required=True,
        metadata={"description": "SAP's document type (metadata `ar_object`) when known, else the format"},
    )
    status = fields.String(required=True, validate=validate.OneOf([s.value for s in FileStatus]))
    size = fields.Integer(required=True)
    created_at = UtcDateTime(required=True)
    completed_at = UtcDateTime(required=True, allow_none=True)
    processed_data = fields.Dict(required=True, metadata={"description": "the document's metadata"})
    export_info = fields.Nested(
        ExportInfo,
        required=True,
        data_key="exportInfo",
        metadata={"description": "the pull integration's last report, as `PATCH /files/{id}` answers it"},
    )


class FileEnvelope(ma.Schema):
    success = fields.Boolean(required=True, metadata={"enum": [True]})
    data = fields.Nested(FileInfo, required=True)


class FileList(ma.Schema):
    success = fields.Boolean(required=True, metadata={"enum": [True]})
    data = fields.List(fields.Nested(FileInfo), required=True)
    next_cursor = CursorField(
        required=True,
        allow_none=True,
        metadata={"description": "pass back as `cursor` to continue after this page; store it to poll on"},
    )


class ListArgs(ma.Schema):
    destination_id = fields.String(
        validate=validate.Length(min=1, max=64),
        metadata={"description": "the pull destination whose files to list (default: every pull destination's)"},
    )
    updated_after = DateBound(
        data_key="updatedAfter", metadata={"description": "changed after this time (ISO 8601 date or date-time)"}
    )
    cursor = CursorField(metadata={"description": "a next_cursor from before"})
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=100))


class ExportReport(ma.Schema):
    status = fields.Enum(
        ExportStatus, by_value=True, required=True, data_key="integrationExportStatus", metadata={"type": "string"}
    )
    messages = fields.List(
        fields.String(validate=validate.Length(max=MAX_MESSAGE_LENGTH)),
        load_default=list,
        validate=validate.Length(max=MAX_MESSAGES),
        data_key="integrationExportMessages",
    )


class ExportReply(ma.Schema):
    file_id = fields.String(required=True, data_key="fileId")
    export_info = fields.Nested(ExportInfo, required=True, data_key="exportInfo")


class ContentArgs(ma.Schema):
    token = fields.String(
        validate=validate.Length(min=1, max=1024),
        metadata={"description": "a signed download link's token, instead of an API key (webhook notifications)"},
    )
