"""Destination kinds: one module per kind, registered in `base.REGISTRY`."""

from filerelay.destinations import azure_blob, email, folder, gcs, pull, s3, sftp, sharepoint, webhook
from filerelay.destinations.base import REGISTRY, DestinationKind, get_kind

__all__ = [
    "REGISTRY",
    "DestinationKind",
    "azure_blob",
    "email",
    "folder",
    "gcs",
    "get_kind",
    "pull",
    "s3",
    "sftp",
    "sharepoint",
    "webhook",
]
