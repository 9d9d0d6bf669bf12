"""The `s3` destination: any S3-compatible object store, through boto3."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from marshmallow import Schema, fields, validate

from filerelay.destinations.base import DestinationError, DestinationKind, Payload, register

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Up to this size one PUT carries the whole object with its full-object SHA-256; above it, a
# multipart upload whose parts each carry their own SHA-256 (S3 then reports a composite checksum).
MULTIPART_THRESHOLD = 16 * 1024 * 1024
PART_SIZE = 16 * 1024 * 1024
CHUNK = 1024 * 1024


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


def _error(exc: Exception, what: str) -> DestinationError:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        response: Any = exc.response
        code = response.get("Error", {}).get("Code", "?")
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        retry_after = headers.get("retry-after")
        return DestinationError(
            f"{what}: {code} (HTTP {status})",
            retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
        )
    return DestinationError(f"{what}: {type(exc).__name__}: {exc}")


class _Verified:
    """The staged bytes of a multipart upload, refused as their last byte is read if they are not the
    document's: each part's SHA-256 is computed from what is read, so S3 cannot tell. Raising before the
    upload completes makes the transfer abort it. Only `read`, so the transfer reads it in order."""

    def __init__(self, raw: BinaryIO, size: int, sha256: str) -> None:
        self._raw, self._size, self._sha256 = raw, size, sha256
        self._digest = hashlib.sha256()
        self._seen = 0

    def read(self, n: int = -1) -> bytes:
        chunk = self._raw.read(n)
        self._digest.update(chunk)
        self._seen += len(chunk)
        if self._seen > self._size or (self._seen == self._size and self._digest.hexdigest() != self._sha256):
            raise DestinationError("staged bytes do not match their sha256", retryable=False)
        if not chunk and n != 0 and self._seen < self._size:
            raise DestinationError(f"staging ended at {self._seen} of {self._size} bytes", retryable=False)
        return chunk


class S3Destination:
    def __init__(self, settings: Mapping[str, Any], secrets: Mapping[str, Any]) -> None:
        import boto3
        from botocore.config import Config

        self.bucket: str = settings["bucket"]
        self.client: S3Client = boto3.client(
            "s3",
            endpoint_url=settings.get("endpoint_url"),
            region_name=settings.get("region") or "us-east-1",
            aws_access_key_id=settings.get("access_key_id"),
            aws_secret_access_key=secrets.get("secret_access_key"),
            # FileRelay schedules its own retries (with backoff, in the database); one quick retry
            # here only smooths over a dropped connection.
            config=Config(
                retries={"max_attempts": 2, "mode": "standard"},
                connect_timeout=10,
                read_timeout=120,
                s3={"addressing_style": "path"} if settings.get("endpoint_url") else None,
            ),
        )

    @staticmethod
    def key(path: str) -> str:
        return path.lstrip("/")

    def deliver(self, payload: Payload) -> None:
        from boto3.s3.transfer import TransferConfig

        extra: dict[str, Any] = {
            "ContentType": payload.content_type,
            "Metadata": {**payload.metadata, "sha256": payload.sha256},
        }
        try:
            with payload.open() as body:
                if payload.size <= MULTIPART_THRESHOLD:
                    self.client.put_object(
                        Bucket=self.bucket,
                        Key=self.key(payload.path),
                        Body=body,
                        ContentLength=payload.size,
                        ChecksumSHA256=base64.b64encode(bytes.fromhex(payload.sha256)).decode(),
                        **extra,
                    )
                else:
                    self.client.upload_fileobj(
                        # Duck-typed: a file object the transfer can only read, never seek.
                        cast(BinaryIO, _Verified(body, payload.size, payload.sha256)),
                        self.bucket,
                        self.key(payload.path),
                        ExtraArgs={**extra, "ChecksumAlgorithm": "SHA256"},
                        Config=TransferConfig(
                            multipart_threshold=MULTIPART_THRESHOLD,
                            multipart_chunksize=PART_SIZE,
                            max_concurrency=4,
                        ),
                    )
        except DestinationError:
            raise
        except Exception as exc:
            raise _error(exc, f"upload to s3://{self.bucket}/{self.key(payload.path)} failed") from exc

    def read(self, path: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key(path)}
        if start or length is not None:
            end = "" if length is None else str(start + length - 1)
            args["Range"] = f"bytes={start}-{end}"
        try:
            body = self.client.get_object(**args)["Body"]
        except Exception as exc:
            raise _error(exc, f"read of s3://{self.bucket}/{self.key(path)} failed") from exc
        return body.iter_chunks(CHUNK)

    def check(self) -> None:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise _error(exc, f"bucket {self.bucket} is not usable") from exc


def build(settings: Mapping[str, Any], secrets: Mapping[str, Any]) -> S3Destination:
    return S3Destination(settings, secrets)


KIND = register(
    DestinationKind(name="s3", schema=S3Settings, build=build, secret_fields=frozenset({"secret_access_key"}))
)
