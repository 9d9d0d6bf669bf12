"""The `s3` destination through the delivery engine (claim, upload, finish) with the real boto3 client:
against SeaweedFS for what lands (content, `x-amz-meta-sha256`, the SHA-256 checksum S3 stores and
verifies) and against a throttling stub for `503 SlowDown` with `Retry-After`.

SeaweedFS verifies `x-amz-checksum-sha256` (a body that does not match it is refused with BadDigest),
so staged bytes that no longer match the document's sha256 are caught by the server on the one-PUT
path; the multipart path computes its part checksums from the bytes it reads, so FileRelay itself
must refuse them there.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import secrets
from dataclasses import dataclass

import pytest
from marshmallow import ValidationError

from filerelay.clock import FrozenClock
from filerelay.db.models import Delivery
from filerelay.delivery import service
from filerelay.destinations import s3 as s3_destination
from filerelay.destinations.base import DestinationError, Payload
from filerelay.runtime import Runtime
from filerelay.staging.local import LocalStagingStore
from tests.support.answering_server import SECRET as PEER_SECRET
from tests.support.answering_server import Answering, answering_server
from tests.support.clock import half
from tests.support.destination_kinds import payload, wire
from tests.support.documents import accept, attempts, delivery
from tests.support.policy import DEFAULT, LOOPBACK, refused_by_the_guard
from tests.support.s3server import S3Server
from tests.support.s3stub import refusing_s3

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 64 + b"\n%%EOF\n"
# The workspace's backoff stays far below the Retry-After the stub sends, so only honouring the
# header can put the next attempt that late.
RETRY_AFTER = 120


@dataclass(frozen=True)
class Created:
    delivery_id: str
    staging_key: str
    key: str  # the object key the delivery writes


def configure(runtime: Runtime, endpoint: str, bucket: str, access_key: str, secret: str) -> None:
    """Z1 wired to one S3 destination, `dest_s3`, at /{repo_id}/{doc_id}{ext}."""
    settings: dict[str, object] = {
        "bucket": bucket,
        "endpoint_url": endpoint,
        "access_key_id": access_key,
        "secret_access_key": secret,
    }
    wire(runtime, "s3", settings)


def create_document(runtime: Runtime, data: bytes, doc_id: str = "DOC1") -> Created:
    outcome, staged = accept(runtime, doc_id, data)
    [(delivery_id, kind)] = outcome.enqueue
    assert kind == "s3"
    return Created(delivery_id, staged.key, f"Z1/{doc_id}.pdf")


def corrupt_staged(runtime: Runtime, key: str, at: int) -> None:
    """Flip one byte of the staged object in place: same size, different sha256 (a disk or copy error)."""
    assert isinstance(runtime.staging, LocalStagingStore)
    with open(runtime.staging.path_for(key), "r+b") as fp:
        fp.seek(at)
        byte = fp.read(1)
        fp.seek(at)
        fp.write(bytes([byte[0] ^ 0xFF]))


def b64sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def composite_sha256(data: bytes, part_size: int) -> str:
    """S3's checksum of a multipart object: the SHA-256 of the parts' SHA-256 digests, then -N."""
    parts = [data[i : i + part_size] for i in range(0, len(data), part_size)]
    digests = b"".join(hashlib.sha256(part).digest() for part in parts)
    return f"{base64.b64encode(hashlib.sha256(digests).digest()).decode()}-{len(parts)}"


@pytest.fixture
def bucket(s3: S3Server) -> str:
    name = f"dest-{secrets.token_hex(4)}"
    s3.client().create_bucket(Bucket=name)
    return name


@pytest.fixture
def to_seaweedfs(runtime: Runtime, s3: S3Server, bucket: str, engine: object) -> Runtime:
    configure(runtime, s3.endpoint, bucket, s3.access_key, s3.secret_key)
    return runtime


def listing(s3: S3Server, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.client().list_objects_v2(Bucket=bucket).get("Contents", [])]


# --- throttling: 503 SlowDown with Retry-After ---------------------------------------------------------


def test_a_503_slowdown_with_retry_after_schedules_the_next_attempt_no_sooner(
    runtime: Runtime, clock: FrozenClock, engine: object
) -> None:
    with refusing_s3(503, "SlowDown", headers={"Retry-After": str(RETRY_AFTER)}) as stub:
        configure(runtime, stub.endpoint, "archive", "AKIDEXAMPLE", "secret")
        created = create_document(runtime, PDF)
        finished_at = clock.now()

        assert service.run(runtime, created.delivery_id, rand=half) is True

        puts = [r for r in stub.requests if r.method == "PUT"]
    # boto3 retries a 503 once itself before FileRelay sees it (`total_max_attempts: 2`), so two PUTs
    # make one attempt; FileRelay's own schedule does the rest.
    assert len(puts) == 2
    assert {r.path for r in puts} == {f"/archive/{created.key}"}
    assert all(r.body_bytes == len(PDF) for r in puts)
    row = delivery(runtime, created.delivery_id)
    assert row.status == "retrying"
    assert row.attempts == 1
    assert "SlowDown" in (row.last_error or "")
    assert "HTTP 503" in (row.last_error or "")
    # The workspace's own backoff would say 0.75 s (rand 0.5, base 1 s); Retry-After is the floor.
    assert row.next_attempt_at == finished_at + dt.timedelta(seconds=RETRY_AFTER)
    [attempt] = attempts(runtime, created.delivery_id)
    assert (attempt.outcome, attempt.error_class) == ("failed", "DestinationError")

    # Not due a moment before the header's time, due at it.
    clock.advance(RETRY_AFTER - 1)
    assert service.run(runtime, created.delivery_id, rand=half) is False


def attempted_against_a_refusing_stub(runtime: Runtime, status: int, code: str) -> Delivery:
    """One attempt at an S3 stub that answers every request `status` with the error `code`; the row after."""
    with refusing_s3(status, code) as stub:
        configure(runtime, stub.endpoint, "archive", "AKIDEXAMPLE", "secret")
        created = create_document(runtime, PDF)
        assert service.run(runtime, created.delivery_id, rand=half) is True
    return delivery(runtime, created.delivery_id)


def test_a_503_without_retry_after_uses_the_workspace_backoff(
    runtime: Runtime, clock: FrozenClock, engine: object
) -> None:
    row = attempted_against_a_refusing_stub(runtime, 503, "SlowDown")
    assert row.status == "retrying"
    assert row.next_attempt_at == clock.now() + dt.timedelta(seconds=0.75)


# --- SeaweedFS: what no retry can fix ---------------------------------------------------------------------


def test_wrong_credentials_fail_at_once_with_the_reason(
    runtime: Runtime, s3: S3Server, bucket: str, engine: object
) -> None:
    configure(runtime, s3.endpoint, bucket, s3.access_key, "not-the-secret")
    created = create_document(runtime, PDF)

    assert service.run(runtime, created.delivery_id, rand=half) is True

    row = delivery(runtime, created.delivery_id)
    assert row.status == "failed"  # max_retries 3: only a permanent error ends it after one attempt
    assert row.attempts == 1
    assert "SignatureDoesNotMatch (HTTP 403)" in (row.last_error or "")
    assert listing(s3, bucket) == []


def test_a_missing_bucket_fails_at_once_with_the_reason(runtime: Runtime, engine: object) -> None:
    # SeaweedFS creates a missing bucket on the first PUT of an admin identity; S3 answers NoSuchBucket.
    row = attempted_against_a_refusing_stub(runtime, 404, "NoSuchBucket")
    assert row.status == "failed"
    assert row.attempts == 1
    assert "NoSuchBucket (HTTP 404)" in (row.last_error or "")


def test_addressing_style_is_a_setting_for_s3_compatible_stores(s3: S3Server, bucket: str) -> None:
    kind = s3_destination.KIND
    keys = {"access_key_id": "AK", "secret_access_key": "SK"}
    settings, _ = kind.validate(
        {"bucket": bucket, "endpoint_url": s3.endpoint, "addressing_style": "path", **keys}, LOOPBACK
    )

    def style(settings: dict[str, object]) -> object:
        destination = s3_destination.S3Destination(settings, {"secret_access_key": "SK"}, LOOPBACK)
        return destination.client.meta.config.s3  # type: ignore[attr-defined]

    assert style(settings) == {"addressing_style": "path"}
    aws, _ = kind.validate({"bucket": bucket, "addressing_style": "virtual", **keys}, LOOPBACK)
    assert style(aws) == {"addressing_style": "virtual"}
    assert style(kind.validate({"bucket": bucket, "endpoint_url": s3.endpoint, **keys}, LOOPBACK)[0]) == {
        "addressing_style": "path"
    }
    # Path style, as configured, reaches the S3-compatible server's bucket.
    usable, secret = kind.validate(
        {
            "bucket": bucket,
            "endpoint_url": s3.endpoint,
            "addressing_style": "path",
            "access_key_id": s3.access_key,
            "secret_access_key": s3.secret_key,
        },
        LOOPBACK,
    )
    s3_destination.S3Destination(usable, secret, LOOPBACK).check()
    with pytest.raises(ValidationError, match="addressing_style"):
        kind.validate({"bucket": bucket, "addressing_style": "sideways"}, LOOPBACK)


# --- SeaweedFS: metadata and checksums --------------------------------------------------------------------


def test_one_put_carries_the_sha256_as_metadata_and_as_the_checksum(
    to_seaweedfs: Runtime, s3: S3Server, bucket: str
) -> None:
    created = create_document(to_seaweedfs, PDF)

    assert service.run(to_seaweedfs, created.delivery_id, rand=half) is True

    assert delivery(to_seaweedfs, created.delivery_id).status == "delivered"
    head = s3.client().head_object(Bucket=bucket, Key=created.key, ChecksumMode="ENABLED")
    assert head["Metadata"] == {"sha256": hashlib.sha256(PDF).hexdigest()}
    assert head["ChecksumSHA256"] == b64sha256(PDF)
    assert head["ContentType"] == "application/pdf"
    assert s3.client().get_object(Bucket=bucket, Key=created.key)["Body"].read() == PDF


def test_staged_bytes_not_matching_the_sha256_are_refused_by_the_server(
    to_seaweedfs: Runtime, s3: S3Server, bucket: str
) -> None:
    created = create_document(to_seaweedfs, PDF)
    corrupt_staged(to_seaweedfs, created.staging_key, at=len(PDF) // 2)

    assert service.run(to_seaweedfs, created.delivery_id, rand=half) is True

    row = delivery(to_seaweedfs, created.delivery_id)
    assert row.status == "failed"  # at once, as the multipart and folder paths do: a retry sends the same bytes
    assert "BadDigest" in (row.last_error or "")
    assert row.delivered_at is None
    assert listing(s3, bucket) == []


def test_holds_tells_an_identical_object_from_another(s3: S3Server, bucket: str) -> None:
    target = s3_destination.S3Destination(
        {"bucket": bucket, "endpoint_url": s3.endpoint, "access_key_id": s3.access_key},
        {"secret_access_key": s3.secret_key},
        LOOPBACK,
    )
    sha = hashlib.sha256(PDF).hexdigest()
    assert not target.holds("/held/x.pdf", sha256=sha, size=len(PDF))  # nothing there
    target.deliver(
        Payload(
            open=lambda: io.BytesIO(PDF), size=len(PDF), sha256=sha, content_type="application/pdf", path="/held/x.pdf"
        )
    )
    assert target.holds("/held/x.pdf", sha256=sha, size=len(PDF))
    assert not target.holds("/held/x.pdf", sha256="0" * 64, size=len(PDF))
    assert not target.holds("/held/x.pdf", sha256=sha, size=len(PDF) + 1)


def large_body(size: int) -> bytes:
    block = hashlib.sha256(b"large").digest() * 2048
    return (block * (size // len(block) + 1))[:size]


MIB = 1024 * 1024


@pytest.fixture(params=["smallest parts", pytest.param("production sizes", marks=pytest.mark.slow)])
def part_size(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Multipart with S3's smallest part (5 MiB, above a 5 MiB threshold) in the fast suite, and with
    the production sizes (16 MiB threshold, 8 MiB parts) in the slow one: the same code either way."""
    if request.param == "smallest parts":
        monkeypatch.setattr(s3_destination, "MULTIPART_THRESHOLD", 5 * MIB)
        monkeypatch.setattr(s3_destination, "PART_SIZE", 5 * MIB)
    return s3_destination.PART_SIZE


def test_multipart_parts_carry_sha256_checksums_and_the_metadata(
    to_seaweedfs: Runtime, s3: S3Server, bucket: str, part_size: int
) -> None:
    data = large_body(s3_destination.MULTIPART_THRESHOLD + part_size + 7)  # a part and 7 bytes past the threshold
    created = create_document(to_seaweedfs, data)

    assert service.run(to_seaweedfs, created.delivery_id, rand=half) is True

    assert delivery(to_seaweedfs, created.delivery_id).status == "delivered"
    head = s3.client().head_object(Bucket=bucket, Key=created.key, ChecksumMode="ENABLED")
    assert head["Metadata"] == {"sha256": hashlib.sha256(data).hexdigest()}
    # A composite SHA-256 is what S3 keeps only when every part was sent with its own SHA-256.
    assert head["ChecksumSHA256"] == composite_sha256(data, part_size)
    assert head.get("ChecksumType") == "COMPOSITE"
    body = s3.client().get_object(Bucket=bucket, Key=created.key)["Body"].read()
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()


def test_multipart_staged_bytes_not_matching_the_sha256_fail_and_leave_nothing(
    to_seaweedfs: Runtime, s3: S3Server, bucket: str, part_size: int
) -> None:
    data = large_body(s3_destination.MULTIPART_THRESHOLD + part_size + 7)
    created = create_document(to_seaweedfs, data)
    corrupt_staged(to_seaweedfs, created.staging_key, at=len(data) - 3)  # in the last part

    assert service.run(to_seaweedfs, created.delivery_id, rand=half) is True

    row = delivery(to_seaweedfs, created.delivery_id)
    assert row.status == "failed"  # the staged copy is bad: no retry will send a good one
    assert "sha256" in (row.last_error or "")
    assert listing(s3, bucket) == []
    uploads = s3.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["Key"] for u in uploads] == []


# --- the egress guard ---------------------------------------------------------------------------------------


def test_the_default_policy_refuses_the_loopback_endpoint_at_connect(s3: S3Server, bucket: str) -> None:
    """Written under LOOPBACK (the tests' policy), connected under the defaults: botocore sends through
    the guarded session, whose refusal comes before any connection, and botocore's own retry repeats it."""
    values = {"bucket": bucket, "endpoint_url": s3.endpoint, "access_key_id": s3.access_key}
    settings, secrets_ = s3_destination.KIND.validate({**values, "secret_access_key": s3.secret_key}, LOOPBACK)
    target = s3_destination.S3Destination(settings, secrets_, DEFAULT)
    with pytest.raises(DestinationError) as info:
        target.check()
    refused_by_the_guard(info.value)
    assert not info.value.retryable
    s3_destination.S3Destination(settings, secrets_, LOOPBACK).check()


def test_the_endpoints_error_code_is_shown_and_its_message_is_not(bucket: str) -> None:
    """An endpoint that answers S3's XML error with a message: the code goes into the error, the text not."""
    answer = Answering(
        status=403,
        body=f"<Error><Code>AccessDenied</Code><Message>{PEER_SECRET}</Message></Error>".encode(),
        headers={"content-type": "application/xml"},
    )
    with answering_server(answer) as peer:
        settings, secrets_ = s3_destination.KIND.validate(
            {"bucket": bucket, "endpoint_url": peer.url, "access_key_id": "k", "secret_access_key": "s"}, LOOPBACK
        )
        with pytest.raises(DestinationError) as info:
            s3_destination.S3Destination(settings, secrets_, LOOPBACK).deliver(payload(PDF))
    assert "AccessDenied (HTTP 403)" in str(info.value)
    assert PEER_SECRET not in str(info.value)


@pytest.mark.parametrize("endpoint", ["http://169.254.169.254", "http://[::1]:8333", "http://0.0.0.0:8333"])
def test_an_endpoint_the_policy_refuses_is_refused_when_written(endpoint: str) -> None:
    with pytest.raises(ValidationError, match="endpoint_url"):
        s3_destination.KIND.validate({"bucket": "docs", "endpoint_url": endpoint}, DEFAULT)
