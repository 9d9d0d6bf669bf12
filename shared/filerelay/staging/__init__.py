"""The staging store: where accepted bytes wait, durably, until every delivery is final.

A local directory (the embedded default, or a volume shared by the pods of one host) or an S3 bucket
(`s3://bucket/prefix`, for API and worker pods on different hosts).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from filerelay.staging.base import (
    CHUNK_SIZE,
    IncompleteBody,
    StagedObject,
    StagingError,
    StagingStore,
    StagingWriter,
    TooLarge,
    check_key,
    copy_stream,
)
from filerelay.staging.local import LocalStagingStore

__all__ = [
    "CHUNK_SIZE",
    "IncompleteBody",
    "LocalStagingStore",
    "StagedObject",
    "StagingError",
    "StagingStore",
    "StagingWriter",
    "TooLarge",
    "check_key",
    "copy_stream",
    "open_staging",
]


def open_staging(url: str, *, endpoint_url: str | None = None, region: str | None = None) -> StagingStore:
    parts = urlsplit(url)
    if parts.scheme == "file":
        return LocalStagingStore(Path(unquote(parts.path)))
    if parts.scheme == "s3":
        from filerelay.staging.s3 import S3StagingStore

        if not parts.netloc:
            raise StagingError(f"FILERELAY_STAGING_URL {url!r} names no bucket: use s3://bucket/prefix")
        return S3StagingStore(parts.netloc, unquote(parts.path).strip("/"), endpoint_url=endpoint_url, region=region)
    raise StagingError(f"unsupported FILERELAY_STAGING_URL scheme {parts.scheme!r}: use file:// or s3://")
