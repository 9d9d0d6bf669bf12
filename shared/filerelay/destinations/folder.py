"""The `folder` destination: a directory on a filesystem this process can write."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from filerelay.destinations.base import DestinationKind, register


class FolderSettings(Schema):
    root = fields.String(required=True, validate=validate.Length(min=1))


KIND = register(DestinationKind(name="folder", schema=FolderSettings))
