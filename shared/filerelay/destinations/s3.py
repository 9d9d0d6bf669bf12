"""The `s3` destination: any S3-compatible object store, through boto3."""

from __future__ import annotations

import base64
import contextlib
import hashlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

from marshmallow import Schema, ValidationError, fields, validate

from filerelay import egress
from filerelay.destinations.base import (
    DestinationError,
    DestinationKind,
    Payload,
    admit_every,
    admit_host_of,
    filled,
    register,
    require_sha256,
)
from filerelay.destinations.transport import guard_boto_client, peer_code
from filerelay.policy import OperatorPolicy, ambient_refused

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Up to this size one PUT carries the whole object with its full-object SHA-256; above it, a
# multipart upload whose parts each carry their own SHA-256 (S3 then reports a composite checksum).
MULTIPART_THRESHOLD = 16 * 1024 * 1024
# One part is held in memory while it is sent (its checksum is computed before it goes out), in one
# buffer that each part overwrites: a worker running N deliveries holds at most N parts.
PART_SIZE = 8 * 1024 * 1024
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
    # S3-compatible stores (R2, MinIO, Wasabi…) mostly want `path`; AWS wants `virtual` (its default).
    addressing_style = fields.String(validate=validate.OneOf(["path", "virtual"]))


OWN_CREDENTIALS = "access_key_id and secret_access_key"


def credentials_problem(values: Mapping[str, Any], policy: OperatorPolicy) -> tuple[str, str] | None:
    """(setting, reason) when the settings' credentials are not the destination's own and complete, and
    the operator does not allow the installation's identity; None when they may be used."""
    key, secret = values.get("access_key_id"), values.get("secret_access_key")
    if key and secret:
        return None
    if key or secret:
        # boto3 would fail on half a key pair; say so when it is written, not at the first delivery.
        return ("secret_access_key" if key else "access_key_id", f"give both {OWN_CREDENTIALS}")
    if policy.allow_ambient_credentials:
        return None
    return ("access_key_id", ambient_refused("s3", OWN_CREDENTIALS))


def admit_credentials(values: Mapping[str, Any], policy: OperatorPolicy) -> None:
    """An s3 destination, when written, brings its own keys unless the operator allows ambient ones."""
    problem = credentials_problem(values, policy)
    if problem is not None:
        raise ValidationError({problem[0]: [problem[1]]})


# Answers no retry can change until someone fixes the configuration: the bucket is missing, the
# credentials are wrong or not allowed. (Throttling, 5xx and connection errors are worth retrying.)
PERMANENT_CODES = frozenset(
    {
        "NoSuchBucket",
        "AccessDenied",
        "AllAccessDisabled",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidBucketName",
        "AccountProblem",
        "InvalidToken",
        "ExpiredToken",
        # The body does not match the SHA-256 FileRelay sent with it, which is the accepted document's:
        # the staged copy is damaged, and sending it again sends the same damage.
        "BadDigest",
    }
)
# HEAD requests carry no body, so their errors have only the status as a code.
PERMANENT_STATUSES = frozenset({401, 403})


def _error(exc: Exception, what: str) -> DestinationError:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        response: Any = exc.response
        code = peer_code(response.get("Error", {}).get("Code"))
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
        retry_after = headers.get("retry-after")
        return DestinationError(
            f"{what}: {code} (HTTP {status})",
            retryable=code not in PERMANENT_CODES and status not in PERMANENT_STATUSES,
            retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
        )
    refused = egress.refused_in(exc)
    if refused is not None:
        return DestinationError(f"{what}: {refused}", retryable=False)
    return DestinationError(f"{what}: {type(exc).__name__}: {egress.scrub(str(exc))}")


class S3Destination:
    def __init__(self, settings: Mapping[str, Any], secrets: Mapping[str, Any], policy: OperatorPolicy) -> None:
        import boto3
        from botocore.config import Config

        own = bool(settings.get("access_key_id") and secrets.get("secret_access_key"))
        if not own and not policy.allow_ambient_credentials:
            raise DestinationError(ambient_refused("s3", OWN_CREDENTIALS), retryable=False)
        self.bucket: str = settings["bucket"]
        self.client: S3Client = boto3.client(
            "s3",
            endpoint_url=settings.get("endpoint_url"),
            region_name=settings.get("region") or "us-east-1",
            aws_access_key_id=settings.get("access_key_id"),
            aws_secret_access_key=secrets.get("secret_access_key"),
            # FileRelay schedules its own retries (with backoff, in the database); one quick retry
            # here only smooths over a dropped connection. (`max_attempts` would count retries only:
            # 2 of them, three requests.)
            config=Config(
                retries={"total_max_attempts": 2, "mode": "standard"},
                connect_timeout=10,
                read_timeout=120,
                s3=_addressing(settings),
                # With keys of its own, nothing of the installation's AWS configuration applies either:
                # an endpoint from AWS_ENDPOINT_URL or a profile would send the workspace's requests
                # (and keys) to wherever the installation's own store is.
                ignore_configured_endpoint_urls=own,  # type: ignore[call-arg]  # botocore has it; its stubs lag
            ),
        )
        guard_boto_client(self.client, policy, timeout=(10, 120))

    @staticmethod
    def key(path: str) -> str:
        return path.lstrip("/")

    def deliver(self, payload: Payload) -> str | None:
        key = self.key(payload.path)
        try:
            with payload.open() as body:
                if payload.size <= MULTIPART_THRESHOLD:
                    self.client.put_object(
                        Bucket=self.bucket,
                        Key=key,
                        Body=body,
                        ContentLength=payload.size,
                        ChecksumSHA256=_b64(bytes.fromhex(payload.sha256)),
                        **_extra(payload),
                    )
                else:
                    self._multipart(key, body, payload)
        except DestinationError:
            raise
        except Exception as exc:
            raise _error(exc, f"upload to s3://{self.bucket}/{key} failed") from exc
        return None  # at the template's path

    def _multipart(self, key: str, body: BinaryIO, payload: Payload) -> None:
        """Part by part, each with its SHA-256; the object appears only when completed, and an upload
        that fails is aborted, so neither a partial object nor orphaned parts are left behind."""
        upload_id = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256", **_extra(payload)
        )["UploadId"]
        try:
            parts = self._parts(key, upload_id, body, payload)
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
        except BaseException:
            with contextlib.suppress(Exception):  # the failure that got us here is the one to report
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    def _parts(self, key: str, upload_id: str, body: BinaryIO, payload: Payload) -> list[Any]:
        parts: list[Any] = []
        whole = hashlib.sha256()
        # One part's buffer for the whole upload, hashed and sent as it is: botocore accepts a bytearray
        # body (its stubs say bytes) and hands it to the socket whole, where bytes would be wrapped in a
        # file and read out again in pieces.
        for data in filled(body, payload.size, bytearray(PART_SIZE)):
            whole.update(data)
            checksum = _b64(hashlib.sha256(data).digest())
            number = len(parts) + 1
            reply = self.client.upload_part(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=data,  # type: ignore[arg-type]
                ChecksumSHA256=checksum,
            )
            parts.append({"PartNumber": number, "ETag": reply["ETag"], "ChecksumSHA256": checksum})
        # Each part's checksum was computed from what was read, so S3 cannot tell wrong staged bytes:
        # check the whole before completing, and the object never appears.
        require_sha256(whole.hexdigest(), payload.sha256)
        return parts

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

    def holds(self, path: str, *, sha256: str, size: int) -> bool:
        """One HEAD: the object's size and the sha256 every upload stores in its metadata."""
        from botocore.exceptions import ClientError

        key = self.key(path)
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise _error(exc, f"cannot look at s3://{self.bucket}/{key}") from exc
        except Exception as exc:
            raise _error(exc, f"cannot look at s3://{self.bucket}/{key}") from exc
        return head.get("ContentLength") == size and head.get("Metadata", {}).get("sha256") == sha256


def _addressing(settings: Mapping[str, Any]) -> Any:
    """The configured addressing style; without one, path-style for a custom endpoint (what most
    S3-compatible servers answer) and boto3's own choice for AWS."""
    style = settings.get("addressing_style") or ("path" if settings.get("endpoint_url") else None)
    return {"addressing_style": style} if style else None


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _extra(payload: Payload) -> dict[str, Any]:
    return {"ContentType": payload.content_type, "Metadata": {**payload.metadata, "sha256": payload.sha256}}


KIND = register(
    DestinationKind(
        name="s3",
        schema=S3Settings,
        build=S3Destination,
        pushed=True,
        readable=True,
        secret_fields=frozenset({"secret_access_key"}),
        admit=admit_every(admit_credentials, admit_host_of("endpoint_url", url=True)),
        # The bucket and the server holding it. Not the region (AWS bucket names are global; the region
        # only routes the request) nor the addressing style (the same bucket, addressed differently).
        location_fields=frozenset({"bucket", "endpoint_url"}),
    )
)
