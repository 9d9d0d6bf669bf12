"""Reading a delivered object back from the `s3` destination (what GET serves once staging was purged),
and its self-check, against a real S3 server (SeaweedFS): whole objects, byte ranges as SAP asks for
them, and the errors that tell the caller to try the next destination."""

from __future__ import annotations

import hashlib
import secrets

import pytest

from filerelay.destinations.base import Client, DestinationError, build_client, read_verified
from filerelay.destinations.s3 import CHUNK
from tests.support.policy import LOOPBACK
from tests.support.s3server import S3Server

# More than one CHUNK, so a read streams several pieces and a range can span a chunk boundary.
BODY = bytes(range(256)) * (CHUNK // 256 * 2 + 3)


@pytest.fixture
def bucket(s3: S3Server) -> str:
    name = f"back-{secrets.token_hex(4)}"
    s3.client().create_bucket(Bucket=name)
    s3.client().put_object(Bucket=name, Key="Z1/DOC1.pdf", Body=BODY)
    return name


def client(s3: S3Server, bucket: str, *, secret: str | None = None) -> Client:
    # Through the registry, as content.read_back builds it from a destination row.
    return build_client(
        "s3",
        {"bucket": bucket, "endpoint_url": s3.endpoint, "access_key_id": s3.access_key, "region": "us-east-1"},
        {"secret_access_key": secret or s3.secret_key},
        LOOPBACK,
    )


def test_the_whole_object_comes_back_from_the_path_with_its_leading_slash(s3: S3Server, bucket: str) -> None:
    chunks = list(client(s3, bucket).read("/Z1/DOC1.pdf"))
    assert b"".join(chunks) == BODY
    # Streamed in CHUNK pieces, not one body in memory.
    assert max(len(c) for c in chunks) <= CHUNK
    assert len(chunks) >= 3


@pytest.mark.parametrize(
    ("start", "length"),
    [(0, 1), (0, 10), (1, 1), (5, 100), (CHUNK - 3, 7), (len(BODY) - 4, 4)],
)
def test_a_range_is_exactly_the_bytes_asked_for(s3: S3Server, bucket: str, start: int, length: int) -> None:
    got = b"".join(client(s3, bucket).read("/Z1/DOC1.pdf", start, length))
    assert got == BODY[start : start + length]


def test_a_start_without_a_length_reads_to_the_end(s3: S3Server, bucket: str) -> None:
    got = b"".join(client(s3, bucket).read("/Z1/DOC1.pdf", 1000))
    assert got == BODY[1000:]


def test_a_missing_object_is_a_destination_error_naming_it(s3: S3Server, bucket: str) -> None:
    with pytest.raises(DestinationError) as caught:
        list(client(s3, bucket).read("/Z1/GONE.pdf"))
    message = str(caught.value)
    assert f"read of s3://{bucket}/Z1/GONE.pdf failed" in message
    assert "NoSuchKey" in message
    assert "HTTP 404" in message


def test_check_passes_for_a_usable_bucket(s3: S3Server, bucket: str) -> None:
    client(s3, bucket).check()


def test_check_fails_for_a_missing_bucket_and_for_a_wrong_secret(s3: S3Server, bucket: str) -> None:
    with pytest.raises(DestinationError, match=r"bucket no-such-bucket-here is not usable: .*\(HTTP 404\)"):
        client(s3, "no-such-bucket-here").check()
    with pytest.raises(DestinationError, match=rf"bucket {bucket} is not usable: .*\(HTTP 403\)"):
        client(s3, bucket, secret="not-the-secret").check()


def test_read_back_serves_only_an_object_with_the_delivered_size_and_sha256(s3: S3Server, bucket: str) -> None:
    sha = hashlib.sha256(BODY).hexdigest()
    # Written by someone else (the fixture's plain PUT): no sha256 of FileRelay's beside it.
    with pytest.raises(DestinationError, match="is not the delivered document") as refused:
        read_verified(client(s3, bucket), "/Z1/DOC1.pdf", sha256=sha, size=len(BODY), start=0, length=10)
    assert refused.value.retryable is False
    # As a delivery stores it: served.
    s3.client().put_object(Bucket=bucket, Key="Z1/DOC1.pdf", Body=BODY, Metadata={"sha256": sha})
    got = read_verified(client(s3, bucket), "/Z1/DOC1.pdf", sha256=sha, size=len(BODY), start=5, length=10)
    assert b"".join(got) == BODY[5:15]
