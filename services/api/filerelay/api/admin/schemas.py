"""Request and response shapes of the configuration endpoints. Field rules come from config_file,
so a request is held to what a config file is held to. A PATCH schema names every field as optional;
its create schema adds what a new item needs (defaults are the shared core's)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields

from filerelay.api.rest import UtcDateTime
from filerelay.config_file import (
    DEFAULT_PATH,
    DESCRIPTION,
    DESTINATION_ID,
    DESTINATION_NAME,
    KEY_NAME,
    MAX_RETRIES,
    PATH_TEMPLATE,
    REPO_ID,
    ROLE,
    SIGNATURE,
    Duration,
)
from filerelay.destinations import REGISTRY

DURATION_HELP = "seconds, or a duration such as 30s, 5m, 24h, 7d"
# Documented, not validated here: the shared core checks the kind and answers with the known ones.
KIND_DOC = {"enum": sorted(REGISTRY), "description": "the destination kind; its settings follow"}


def _duration(description: str, *, allow_none: bool = False) -> Duration:
    # The custom field would otherwise be documented as "any type".
    metadata = {
        "description": f"{description}: {DURATION_HELP}",
        "type": "string",
        "pattern": r"^\s*\d+\s*[smhd]?\s*$",
        "example": "24h",
    }
    return Duration(metadata=metadata, allow_none=allow_none)


def envelope(item: type[ma.Schema], *, many: bool = False) -> type[ma.Schema]:
    """`{"data": item}` or `{"data": [item, ...]}`, named after the item for the OpenAPI document."""
    name = item.__name__ + ("List" if many else "Envelope")
    return ma.Schema.from_dict(
        {"data": fields.List(fields.Nested(item), required=True) if many else fields.Nested(item, required=True)},
        name=name,
    )


# --- destinations -----------------------------------------------------------------------------------


class DestinationPatch(ma.Schema):
    name = fields.String(validate=DESTINATION_NAME)
    kind = fields.String(metadata=KIND_DOC)
    settings = fields.Dict(
        keys=fields.String(),
        metadata={
            "description": "the kind's settings, secrets included (write-only). On PATCH of the same kind, "
            "merged over the stored ones, so secrets left out are kept"
        },
    )
    path = fields.String(validate=PATH_TEMPLATE, metadata={"description": f"path template; default {DEFAULT_PATH}"})
    enabled = fields.Boolean(metadata={"description": "default true; false stops new deliveries"})
    max_retries = fields.Integer(
        allow_none=True, validate=MAX_RETRIES, metadata={"description": "overrides the workspace's; null clears"}
    )
    retry_ttl = _duration("overrides the workspace's TTL; null clears", allow_none=True)


class DestinationCreate(DestinationPatch):
    id = fields.String(required=True, validate=DESTINATION_ID, metadata={"example": "dest_s3prod"})
    name = fields.String(required=True, validate=DESTINATION_NAME)
    kind = fields.String(required=True, metadata=KIND_DOC)


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


class CheckResult(ma.Schema):
    ok = fields.Boolean(required=True)
    detail = fields.String(required=True)


# --- repositories and routes ------------------------------------------------------------------------


class RepositoryPatch(ma.Schema):
    description = fields.String(validate=DESCRIPTION)
    signature = fields.String(validate=SIGNATURE, metadata={"description": "default required"})
    destinations = fields.List(
        fields.String(validate=DESTINATION_ID),
        metadata={"description": "ids of the destinations wired to it: the whole wiring, replacing the old"},
    )


class RepositoryCreate(RepositoryPatch):
    repo_id = fields.String(required=True, validate=REPO_ID, metadata={"example": "Z1"})


class Repository(ma.Schema):
    repo_id = fields.String(required=True)
    description = fields.String(required=True)
    signature = fields.String(required=True)
    destinations = fields.List(fields.String(), required=True)
    created_at = UtcDateTime(required=True)


class Route(ma.Schema):
    repo_id = fields.String(required=True, validate=REPO_ID)
    destination_id = fields.String(required=True, validate=DESTINATION_ID)


# --- settings ---------------------------------------------------------------------------------------


class RetrySettingsPatch(ma.Schema):
    max_retries = fields.Integer(validate=MAX_RETRIES)
    ttl = _duration("how long a document is retried")
    backoff_base = _duration("first retry delay")
    backoff_max = _duration("longest retry delay")


class RetrySettings(ma.Schema):
    max_retries = fields.Integer(required=True)
    ttl = Duration(required=True, metadata={"type": "string", "example": "1d"})
    ttl_seconds = fields.Integer(attribute="ttl", dump_only=True, required=True)
    backoff_base = Duration(required=True, metadata={"type": "string", "example": "30s"})
    backoff_base_seconds = fields.Integer(attribute="backoff_base", dump_only=True, required=True)
    backoff_max = Duration(required=True, metadata={"type": "string", "example": "1h"})
    backoff_max_seconds = fields.Integer(attribute="backoff_max", dump_only=True, required=True)


# --- API keys ---------------------------------------------------------------------------------------


class ApiKeyCreate(ma.Schema):
    name = fields.String(required=True, validate=KEY_NAME)
    role = fields.String(required=True, validate=ROLE)


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
