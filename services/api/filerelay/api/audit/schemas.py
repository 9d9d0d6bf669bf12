"""Request and response shapes of the audit log; the console's audit page reads the same arguments."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from filerelay import audit
from filerelay.api.rest import CursorPageMeta, DateBound, UtcDateTime


class AuditArgs(ma.Schema):
    action = fields.String(validate=validate.OneOf(audit.ACTIONS), metadata={"description": "only this action"})
    target = fields.String(
        validate=validate.Length(min=1, max=255),
        metadata={
            "description": "only entries about this target: a destination or repository id, `Z1/dest_x` "
            "for a route or certificate, a key name, a document or file id"
        },
    )
    since = DateBound(metadata={"description": "only entries at or after this time (ISO 8601, UTC by default)"})
    per_page = fields.Integer(load_default=25, validate=validate.Range(min=1, max=100))
    cursor = fields.String(
        validate=validate.Length(max=512), metadata={"description": "meta.next_cursor of the previous page"}
    )


class AuditActor(ma.Schema):
    name = fields.String(required=True, metadata={"description": "the API key's name, or `cli`, `config-file`"})
    key_prefix = fields.String(
        required=True, allow_none=True, metadata={"description": "the key's first characters; null for cli/config-file"}
    )


class AuditEntry(ma.Schema):
    id = fields.Integer(required=True)
    at = UtcDateTime(required=True)
    actor = fields.Nested(AuditActor, required=True)
    channel = fields.String(required=True, metadata={"enum": list(audit.CHANNELS)})
    action = fields.String(required=True, metadata={"enum": list(audit.ACTIONS)})
    target = fields.String(required=True)
    changes = fields.Dict(
        keys=fields.String(),
        required=True,
        metadata={
            "description": 'the settings changed, {"field": {"before": …, "after": …}}; a secret only as '
            '{"field": "changed"}, never its value'
        },
    )
    detail = fields.Dict(
        keys=fields.String(),
        required=True,
        metadata={"description": "e.g. the deliveries re-queued, a bulk retry's filters"},
    )

    @ma.pre_dump
    def shape(self, event: Any, **_: Any) -> dict[str, Any]:
        return {
            "id": event.id,
            "at": event.at,
            "actor": {"name": event.actor, "key_prefix": event.actor_prefix},
            "channel": event.via,
            "action": event.action,
            "target": event.target,
            "changes": event.changes or {},
            "detail": event.detail or {},
        }


class AuditMeta(CursorPageMeta):
    """No total: the log is not counted."""


class AuditList(ma.Schema):
    data = fields.List(fields.Nested(AuditEntry), required=True)
    meta = fields.Nested(AuditMeta, required=True)
