"""Destination kinds: one module per kind, registered in `base.REGISTRY`."""

from filerelay.destinations import email, folder, pull, s3, sftp, sharepoint, webhook
from filerelay.destinations.base import REGISTRY, DestinationKind, get_kind

__all__ = ["REGISTRY", "DestinationKind", "email", "folder", "get_kind", "pull", "s3", "sftp", "sharepoint", "webhook"]
