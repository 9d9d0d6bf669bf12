"""Request and response shapes of the configuration endpoints. Request bodies are the shared core's
schemas (filerelay.workspace_config.schemas), the very ones `config apply` holds a file to; the answers
are shaped here."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields

from filerelay.api.rest import UtcDateTime
from filerelay.workspace_config.schemas import (
    DESTINATION_ID,
    REPO_ID,
    ApiKeyCreate,
    DestinationCreate,
    DestinationPatch,
    Duration,
    RepositoryCreate,
    RepositoryPatch,
    RetrySettingsPatch,
)

__all__ = [
    "ApiKeyCreate",
    "DestinationCreate",
    "DestinationPatch",
    "RepositoryCreate",
    "RepositoryPatch",
    "RetrySettingsPatch",
]


def envelope(item: type[ma.Schema], *, many: bool = False) -> type[ma.Schema]:
    """`{"data": item}` or `{"data": [item, ...]}`, named after the item for the OpenAPI document."""
    name = item.__name__ + ("List" if many else "Envelope")
    return ma.Schema.from_dict(
        {"data": fields.List(fields.Nested(item), required=True) if many else fields.Nested(item, required=True)},
        name=name,
    )


# --- destinations -----------------------------------------------------------------------------------


class Destination(ma.Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    kind = fields.String(required=True)
    settings = fields.Dict(keys=fields.String(), required=True, metadata={"description": "secrets left out"})
    secrets_set = fields.List(
        fields.String(), required=True, metadata={"description": "which secret settings hold a value"}
    )
    path = fields.String(required=True)
    enabled = fields.Boolean(required=True)
    max_retries = fields.Integer(required=True, allow_none=True)
    retry_ttl = Duration(required=True, allow_none=True, metadata={"type": "string", "example": "1h"})
    retry_ttl_seconds = fields.Integer(attribute="retry_ttl", dump_only=True, required=True, allow_none=True)
    created_at = UtcDateTime(required=True)
    updated_at = UtcDateTime(required=True)
    health = fields.Nested(lambda: DestinationHealth(), required=True, dump_only=True)


class DestinationHealth(ma.Schema):
    """Operational state (not configuration): paused by an admin, and the circuit breaker."""

    paused = fields.Boolean(required=True)
    paused_at = UtcDateTime(required=True, allow_none=True)
    breaker = fields.String(
        required=True,
        metadata={
            "enum": ["closed", "open", "probing"],
            "description": "open: deliveries wait; probing: one is let through",
        },
    )
    breaker_opened_at = UtcDateTime(required=True, allow_none=True)
    consecutive_failures = fields.Integer(required=True)
    held_since = UtcDateTime(
        required=True, allow_none=True, metadata={"description": "deliveries wait (no attempts, no TTL) since"}
    )


class CheckResult(ma.Schema):
    ok = fields.Boolean(required=True)
    detail = fields.String(required=True)


# --- repositories and routes ------------------------------------------------------------------------


class Repository(ma.Schema):
    repo_id = fields.String(required=True)
    description = fields.String(required=True)
    signature = fields.String(required=True)
    metadata_wait = Duration(
        zero=True,
        required=True,
        metadata={"type": "string", "example": "10m", "description": "0s: deliveries do not wait for metadata"},
    )
    metadata_wait_seconds = fields.Integer(attribute="metadata_wait", dump_only=True, required=True)
    destinations = fields.List(fields.String(), required=True)
    created_at = UtcDateTime(required=True)


class Route(ma.Schema):
    repo_id = fields.String(required=True, validate=REPO_ID)
    destination_id = fields.String(required=True, validate=DESTINATION_ID)


# --- settings ---------------------------------------------------------------------------------------


class RetrySettings(ma.Schema):
    max_retries = fields.Integer(required=True)
    ttl = Duration(required=True, metadata={"type": "string", "example": "1d"})
    ttl_seconds = fields.Integer(attribute="ttl", dump_only=True, required=True)
    backoff_base = Duration(required=True, metadata={"type": "string", "example": "30s"})
    backoff_base_seconds = fields.Integer(attribute="backoff_base", dump_only=True, required=True)
    backoff_max = Duration(required=True, metadata={"type": "string", "example": "1h"})
    backoff_max_seconds = fields.Integer(attribute="backoff_max", dump_only=True, required=True)


# --- API keys ---------------------------------------------------------------------------------------


class ApiKey(ma.Schema):
    name = fields.String(required=True)
    role = fields.String(required=True)
    prefix = fields.String(required=True, metadata={"description": "the key's first characters, to tell keys apart"})
    created_at = UtcDateTime(required=True)
    last_used_at = UtcDateTime(required=True, allow_none=True)
    revoked_at = UtcDateTime(required=True, allow_none=True)


class NewApiKey(ApiKey):
    key = fields.String(required=True, metadata={"description": "the key itself: shown this once, never again"})


# Each envelope once: apispec names a component per class, and a second class of the same name
# would be documented as "…Envelope1".
DestinationList = envelope(Destination, many=True)
DestinationEnvelope = envelope(Destination)
CheckResultEnvelope = envelope(CheckResult)
RepositoryList = envelope(Repository, many=True)
RepositoryEnvelope = envelope(Repository)
RouteList = envelope(Route, many=True)
RouteEnvelope = envelope(Route)
RetrySettingsEnvelope = envelope(RetrySettings)
ApiKeyList = envelope(ApiKey, many=True)
ApiKeyEnvelope = envelope(ApiKey)
NewApiKeyEnvelope = envelope(NewApiKey)
