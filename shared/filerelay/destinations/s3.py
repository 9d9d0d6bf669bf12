"""The `s3` destination: any S3-compatible object store, through boto3."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from filerelay.destinations.base import DestinationKind, register


class S3Settings(Schema):
    # S3's own bucket naming rules: 3-63 lowercase letters, digits, dots and hyphens.
    bucket = fields.String(
        required=True,
        validate=validate.Regexp(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", error="not a valid bucket name"),
    )
    endpoint_url = fields.Url(load_default=None, require_tld=False, schemes={"http", "https"})
    region = fields.String(load_default="us-east-1", validate=validate.Length(min=1))
    access_key_id = fields.String(load_default=None)
    secret_access_key = fields.String(load_default=None)


KIND = register(DestinationKind(name="s3", schema=S3Settings, secret_fields=frozenset({"secret_access_key"})))
