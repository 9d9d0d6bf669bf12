"""Staging in an S3 bucket, so API and worker pods on different hosts share it.

A write is a multipart upload fed chunk by chunk (one part in memory at a time), completed only on
commit: until then the object does not exist, so a reader never sees a partial one. A writer killed
mid-upload leaves an incomplete multipart upload, invisible to readers; `purge_orphans` aborts those
older than ORPHAN_AGE (S3 cannot tell a live writer from a dead one, so age decides).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

from filerelay.staging.base import AbortsOnExit, StagedObject, StagingError, Tally, check_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# S3's minimum part size is 5 MiB (except the last); 8 MiB keeps requests few and memory small.
PART_SIZE = 8 * 1024 * 1024
ORPHAN_AGE = dt.timedelta(hours=6)
# The most one readinto takes from the GET at a time: a caller filling a large buffer (a destination's
# part) gets it in pieces, so it is never held twice, once as the body's bytes and once copied.
READ_PIECE = 1024 * 1024


def _client(endpoint_url: str | None, region: str | None) -> S3Client:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region or "us-east-1",
        config=Config(
            retries={"max_attempts": 5, "mode": "standard"},
            s3={"addressing_style": "path"} if endpoint_url else None,
        ),
    )


class _S3Writer(AbortsOnExit):
    def __init__(self, store: S3StagingStore, key: str, limit: int | None) -> None:
        self._store = store
        self._key = key
        self._object = store.object_key(key)
        self._buffer = bytearray()
        self._tally = Tally(limit)
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._done = False

    def write(self, data: bytes) -> None:
        self._tally.add(data)
        self._buffer += data
        while len(self._buffer) >= PART_SIZE:
            self._send_part(bytes(self._buffer[:PART_SIZE]))
            del self._buffer[:PART_SIZE]

    def _send_part(self, part: bytes) -> None:
        client = self._store.client
        if self._upload_id is None:
            self._upload_id = client.create_multipart_upload(Bucket=self._store.bucket, Key=self._object)["UploadId"]
        number = len(self._parts) + 1
        answer = client.upload_part(
            Bucket=self._store.bucket, Key=self._object, UploadId=self._upload_id, PartNumber=number, Body=part
        )
        self._parts.append({"PartNumber": number, "ETag": answer["ETag"]})

    def commit(self) -> StagedObject:
        client = self._store.client
        try:
            if self._upload_id is None:
                # Small enough for one request: the object appears whole or not at all.
                client.put_object(Bucket=self._store.bucket, Key=self._object, Body=bytes(self._buffer))
            else:
                if self._buffer:
                    self._send_part(bytes(self._buffer))
                client.complete_multipart_upload(
                    Bucket=self._store.bucket,
                    Key=self._object,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},  # type: ignore[typeddict-item]
                )
        except Exception as exc:
            self.abort()
            raise StagingError(f"staging {self._key} in s3://{self._store.bucket} failed: {exc}") from exc
        self._done = True
        self._buffer = bytearray()
        return self._tally.staged(self._key)

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._buffer = bytearray()
        if self._upload_id is not None:
            # If this fails too, the sweeper's purge_orphans aborts it later.
            with contextlib.suppress(Exception):
                self._store.client.abort_multipart_upload(
                    Bucket=self._store.bucket, Key=self._object, UploadId=self._upload_id
                )


class S3Reader(io.RawIOBase):
    """A seekable reader over one object: sequential reads stream one GET; a seek starts another."""

    def __init__(self, client: S3Client, bucket: str, key: str, size: int) -> None:
        super().__init__()
        self._client, self._bucket, self._key, self._size = client, bucket, key, size
        self._position = 0
        self._body: Any = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        position = max(0, base + offset)
        if position != self._position:
            self._drop_body()
            self._position = position
        return self._position

    def read(self, size: int | None = -1) -> bytes:
        if self._position >= self._size:
            return b""
        if self._body is None:
            answer = self._client.get_object(Bucket=self._bucket, Key=self._key, Range=f"bytes={self._position}-")
            self._body = answer["Body"]
        data: bytes = self._body.read(None if size is None or size < 0 else size)
        self._position += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(min(len(buffer), READ_PIECE))
        buffer[: len(data)] = data
        return len(data)

    def _drop_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop_body()
        super().close()


class S3StagingStore:
    def __init__(self, bucket: str, prefix: str, *, endpoint_url: str | None = None, region: str | None = None) -> None:
        self.bucket = bucket
        self.prefix = f"{prefix}/" if prefix else ""
        self.client = _client(endpoint_url, region)

    def object_key(self, key: str) -> str:
        return f"{self.prefix}objects/{check_key(key)}"

    def writer(self, key: str, *, limit: int | None = None) -> _S3Writer:
        return _S3Writer(self, check_key(key), limit)

    def open(self, key: str) -> BinaryIO:
        return S3Reader(self.client, self.bucket, self.object_key(key), self.size(key))  # type: ignore[return-value]

    def size(self, key: str) -> int:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))["ContentLength"])
        except self.client.exceptions.ClientError as exc:
            raise StagingError(f"staged object {key} is gone ({exc})") from None

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except StagingError:
            return False
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    def purge_orphans(self, *, now: dt.datetime | None = None) -> int:
        """Abort multipart uploads older than ORPHAN_AGE: their writers are gone."""
        cutoff = (now or dt.datetime.now(dt.UTC)) - ORPHAN_AGE  # noqa: TID251 - S3 dates are wall-clock
        removed = 0
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}objects/"):
            for upload in page.get("Uploads", []):
                if upload["Initiated"] < cutoff:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    removed += 1
        return removed

    def stale_keys(self, *, older_than: dt.timedelta, now: dt.datetime | None = None) -> Iterator[str]:
        cutoff = (now or dt.datetime.now(dt.UTC)) - older_than  # noqa: TID251 - S3 dates are wall-clock
        prefix = f"{self.prefix}objects/"
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for entry in page.get("Contents", []):
                if entry["LastModified"] < cutoff:
                    yield entry["Key"].removeprefix(prefix)

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise StagingError(f"staging bucket {self.bucket} is not usable: {exc}") from exc
