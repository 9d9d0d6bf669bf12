"""One schema per configuration resource, used by both write paths: the admin API's request bodies
and `config apply`'s YAML. A setting accepted by one is accepted by the other, with the same message.

A `*Patch` schema names every field as optional and sets no defaults; its `*Create` sibling adds what
a new item needs and the defaults. Lengths are the columns'; PostgreSQL text cannot hold NUL, so free
text refuses it here rather than fail there.
"""

from __future__ import annotations

import math
import re
from typing import Any

import marshmallow as ma
from marshmallow import ValidationError, fields, validate, validates_schema

from filerelay.db.models import Role, SignatureMode
from filerelay.destinations import REGISTRY

DEFAULT_PATH = "/{repo_id}/{doc_id}_{comp_id}{ext}"
# Stored in a 32-bit column; ten years is beyond any sensible retry window.
MAX_DURATION_SECONDS = 3650 * 86400

NO_NUL = validate.Regexp(r"^[^\x00]*$", error="must not contain NUL characters")
SLUG = validate.Regexp(r"^[a-z0-9][a-z0-9-]{0,62}$", error="use lowercase letters, digits and '-'")
DESTINATION_ID = validate.Regexp(r"^[A-Za-z0-9_-]{1,64}$", error="use 1 to 64 letters, digits, '_' or '-'")
DESTINATION_NAME = [validate.Length(min=1, max=255), NO_NUL]
PATH_TEMPLATE = [validate.Length(min=1, max=512), NO_NUL]
REPO_ID = validate.Regexp(r"^[A-Za-z0-9_]{1,30}$", error="use 1 to 30 letters, digits or '_'")
DESCRIPTION = [validate.Length(max=255), NO_NUL]
SIGNATURE = validate.OneOf([m.value for m in SignatureMode])
KEY_NAME = [validate.Length(min=1, max=100), NO_NUL]
ROLE = validate.OneOf([r.value for r in Role])
MAX_RETRIES = validate.Range(min=0, max=100)

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
DURATION_HELP = "seconds, or a duration such as 30s, 5m, 24h, 7d"


def parse_duration(value: object, *, zero: bool = False) -> int:
    """`30s`, `5m`, `24h`, `7d`, or a number of seconds; 0 only where `zero` allows it."""
    if isinstance(value, bool):
        raise ValidationError("not a duration")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValidationError(f"{value!r} is not a duration; write e.g. 30s, 5m, 24h or 7d")
        seconds = int(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValidationError(f"{value!r} is not a duration; write e.g. 30s, 5m, 24h or 7d")
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 0 or (seconds == 0 and not zero):
        raise ValidationError("a duration must be positive" if not zero else "a duration must not be negative")
    if seconds > MAX_DURATION_SECONDS:
        raise ValidationError(f"a duration must not exceed {MAX_DURATION_SECONDS // 86400}d")
    return seconds


def format_duration(seconds: int) -> str:
    """The inverse of parse_duration, in the largest unit that divides exactly: 86400 -> `1d`."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class Duration(fields.Field[int]):
    """Reads a duration in any form parse_duration accepts; writes the short form (`24h` as `1d`).
    With `zero=True`, 0 is a duration too (`0`, `0s`: "none")."""

    def __init__(self, *, zero: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.zero = zero

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        return parse_duration(value, zero=self.zero)

    def _serialize(self, value: int | None, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value == 0 and self.zero:
            return "0s"
        return None if value is None else format_duration(value)


def duration(description: str, **kwargs: Any) -> Duration:
    # Without the metadata the custom field would be documented as "any type".
    metadata = {
        "description": f"{description}: {DURATION_HELP}",
        "type": "string",
        "pattern": r"^\s*\d+\s*[smhd]?\s*$",
        "example": "24h",
    }
    return Duration(metadata=metadata, **kwargs)


# Long enough for SAP's link to arrive from a nightly job; short enough that a document is never held
# back indefinitely.
MAX_METADATA_WAIT_SECONDS = 7 * 86400
METADATA_WAIT = validate.Range(max=MAX_METADATA_WAIT_SECONDS, error="must not exceed 7d")
METADATA_WAIT_HELP = (
    "how long a new document's deliveries wait for its business context (PUT …/metadata) before they go "
    "out without it; 0 (the default): they do not wait. At most 7d"
)


def flatten_messages(messages: Any, prefix: str = "") -> list[str]:
    """marshmallow's nested {"field": ["message"]} as ["field: message", ...]."""
    if isinstance(messages, dict):
        out: list[str] = []
        for key, value in messages.items():
            out += flatten_messages(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        return [f"{prefix}: {m}" for m in messages]
    return [f"{prefix}: {messages}"]


# Documented, not validated here: the kind's own schema checks the settings, and get_kind answers an
# unknown kind with the known ones.
KIND_DOC = {"enum": sorted(REGISTRY), "description": "the destination kind; its settings follow"}


SETTINGS_DOC = {
    "description": "the kind's settings, secrets included (write-only). On PATCH of the same kind, "
    "merged over the stored ones, so secrets left out are kept"
}


class DestinationPatch(ma.Schema):
    name = fields.String(validate=DESTINATION_NAME)
    kind = fields.String(metadata=KIND_DOC)
    settings = fields.Dict(keys=fields.String(), metadata=SETTINGS_DOC)
    path = fields.String(validate=PATH_TEMPLATE, metadata={"description": f"path template; default {DEFAULT_PATH}"})
    enabled = fields.Boolean(metadata={"description": "default true; false stops new deliveries"})
    max_retries = fields.Integer(
        allow_none=True, validate=MAX_RETRIES, metadata={"description": "overrides the workspace's; null clears"}
    )
    retry_ttl = duration("overrides the workspace's TTL; null clears", allow_none=True)


class DestinationCreate(DestinationPatch):
    id = fields.String(required=True, validate=DESTINATION_ID, metadata={"example": "dest_s3prod"})
    name = fields.String(required=True, validate=DESTINATION_NAME)
    kind = fields.String(required=True, metadata=KIND_DOC)
    settings = fields.Dict(keys=fields.String(), load_default=dict, metadata=SETTINGS_DOC)
    path = fields.String(load_default=DEFAULT_PATH, validate=PATH_TEMPLATE, metadata={"description": "path template"})
    enabled = fields.Boolean(load_default=True, metadata={"description": "false stops new deliveries"})
    max_retries = fields.Integer(
        allow_none=True, load_default=None, validate=MAX_RETRIES, metadata={"description": "overrides the workspace's"}
    )
    retry_ttl = duration("overrides the workspace's TTL", allow_none=True, load_default=None)


class RepositoryPatch(ma.Schema):
    description = fields.String(validate=DESCRIPTION)
    signature = fields.String(validate=SIGNATURE, metadata={"description": "default required"})
    metadata_wait = duration(METADATA_WAIT_HELP, zero=True, validate=METADATA_WAIT)
    destinations = fields.List(
        fields.String(validate=DESTINATION_ID),
        metadata={"description": "ids of the destinations wired to it: the whole wiring, replacing the old"},
    )


class RepositoryCreate(RepositoryPatch):
    repo_id = fields.String(required=True, validate=REPO_ID, metadata={"example": "Z1"})
    description = fields.String(load_default="", validate=DESCRIPTION)
    signature = fields.String(load_default=SignatureMode.REQUIRED.value, validate=SIGNATURE)
    metadata_wait = duration(METADATA_WAIT_HELP, zero=True, validate=METADATA_WAIT, load_default=0)
    destinations = fields.List(
        fields.String(validate=DESTINATION_ID),
        load_default=list,
        metadata={"description": "ids of the destinations wired to it"},
    )


class RetrySettingsPatch(ma.Schema):
    max_retries = fields.Integer(validate=MAX_RETRIES)
    ttl = duration("how long a document is retried")
    backoff_base = duration("first retry delay")
    backoff_max = duration("longest retry delay")


class RetrySettingsSchema(RetrySettingsPatch):
    """The whole of a workspace's retry settings, with the defaults of a new workspace."""

    max_retries = fields.Integer(load_default=5, validate=MAX_RETRIES)
    ttl = duration("how long a document is retried", load_default=24 * 3600)
    backoff_base = duration("first retry delay", load_default=30)
    backoff_max = duration("longest retry delay", load_default=3600)

    @validates_schema
    def _order(self, data: dict[str, Any], **_: Any) -> None:
        if data["backoff_base"] > data["backoff_max"]:
            raise ValidationError("backoff_base must not exceed backoff_max")


class ApiKeyCreate(ma.Schema):
    name = fields.String(required=True, validate=KEY_NAME)
    role = fields.String(required=True, validate=ROLE)
