"""The `gcs` destination through the delivery engine against fake-gcs-server and a token endpoint that
checks the service account's signed JWT (tests/support/fake_gcs.py): what lands, how (one request or a
resumable upload), outages, a refused key, a missing bucket, reading back."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from marshmallow import ValidationError

from filerelay.clock import FrozenClock
from filerelay.destinations import gcs
from filerelay.destinations.base import DestinationError
from filerelay.policy import OperatorPolicy
from filerelay.runtime import Runtime
from tests.support.answering_server import SECRET as PEER_SECRET
from tests.support.answering_server import Answering, answering_server
from tests.support.destination_kinds import (
    PDF,
    assert_reads_back,
    create,
    delivered,
    delivered_after_an_outage,
    payload,
    sized,
    wire,
)
from tests.support.documents import failed_at_once
from tests.support.fake_gcs import FakeGcs, TokenEndpoint, fake_gcs, service_account
from tests.support.policy import DEFAULT, LOOPBACK, refused_by_the_guard


@pytest.fixture(scope="module")
def google(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeGcs, TokenEndpoint]]:
    with fake_gcs(tmp_path_factory.mktemp("gcs")) as live:
        yield live


@pytest.fixture
def account(google: tuple[FakeGcs, TokenEndpoint]) -> str:
    """A service account key the token endpoint knows, as its JSON."""
    _, tokens = google
    info, public = service_account(tokens.url, f"relay-{secrets.token_hex(3)}@filerelay-test.iam.gserviceaccount.com")
    tokens.known[info["client_email"]] = public
    return json.dumps(info)


@pytest.fixture
def bucket(google: tuple[FakeGcs, TokenEndpoint], account: str) -> str:
    server, _ = google
    name = f"docs-{secrets.token_hex(4)}"
    destination = client(server, name, account)
    destination.bucket.client.create_bucket(name)
    return name


def client(server: FakeGcs, bucket: str, account: str) -> gcs.GcsDestination:
    settings, secrets_ = gcs.KIND.validate(
        {"bucket": bucket, "credentials_json": account, "endpoint_url": server.endpoint}, LOOPBACK
    )
    return gcs.GcsDestination(settings, secrets_, LOOPBACK)


def stored(server: FakeGcs, bucket: str, account: str, name: str) -> Any:
    return client(server, bucket, account).bucket.get_blob(name)


@pytest.mark.parametrize("size", [len(PDF), 20 * 1024 * 1024 + 13])
def test_a_document_lands_byte_identical_with_its_sha256(
    runtime: Runtime, google: tuple[FakeGcs, TokenEndpoint], account: str, bucket: str, engine: object, size: int
) -> None:
    server, _ = google
    data = sized(size)
    delivered(runtime, "gcs", {"bucket": bucket, "credentials_json": account, "endpoint_url": server.endpoint}, data)
    blob = stored(server, bucket, account, "Z1/DOC1.pdf")
    assert blob.size == size
    assert blob.metadata == {"sha256": hashlib.sha256(data).hexdigest()}
    assert blob.content_type == "application/pdf"
    assert hashlib.sha256(blob.download_as_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_stopped_service_means_retrying_then_delivered_when_it_is_back(
    runtime: Runtime,
    google: tuple[FakeGcs, TokenEndpoint],
    account: str,
    bucket: str,
    clock: FrozenClock,
    engine: object,
) -> None:
    server, _ = google
    wire(runtime, "gcs", {"bucket": bucket, "credentials_json": account, "endpoint_url": server.endpoint})
    delivery_id = create(runtime, "gcs", PDF)
    # The same port and folder when it is back.
    delivered_after_an_outage(
        runtime, clock, delivery_id, stop=server.stop, start=server.start, error="upload to gs://"
    )


def test_a_key_the_token_endpoint_refuses_fails_at_once(
    runtime: Runtime, google: tuple[FakeGcs, TokenEndpoint], bucket: str, engine: object
) -> None:
    server, tokens = google
    unknown, _ = service_account(tokens.url, "deleted@filerelay-test.iam.gserviceaccount.com")  # never registered
    wire(runtime, "gcs", {"bucket": bucket, "credentials_json": json.dumps(unknown), "endpoint_url": server.endpoint})
    delivery_id = create(runtime, "gcs", PDF)

    error = failed_at_once(runtime, delivery_id)
    assert re.search(r"service account key was refused.*invalid_grant", error), error


def test_a_missing_bucket_fails_at_once(
    runtime: Runtime, google: tuple[FakeGcs, TokenEndpoint], account: str, engine: object
) -> None:
    server, _ = google
    wire(
        runtime, "gcs", {"bucket": "no-such-bucket-here", "credentials_json": account, "endpoint_url": server.endpoint}
    )
    delivery_id = create(runtime, "gcs", PDF)
    assert "HTTP 404" in failed_at_once(runtime, delivery_id)


def test_a_failed_re_delivery_leaves_the_previous_object_intact(
    google: tuple[FakeGcs, TokenEndpoint], account: str, bucket: str
) -> None:
    server, _ = google
    target = client(server, bucket, account)
    target.deliver(payload(PDF))
    with pytest.raises(DestinationError, match="do not match their sha256"):
        target.deliver(payload(b"a new version", sha256="0" * 64))
    blob = stored(server, bucket, account, "Z1/DOC1.pdf")
    assert blob.download_as_bytes() == PDF
    assert blob.metadata == {"sha256": hashlib.sha256(PDF).hexdigest()}


def test_read_back_holds_and_check(google: tuple[FakeGcs, TokenEndpoint], account: str, bucket: str) -> None:
    server, _ = google
    target = client(server, bucket, account)
    assert_reads_back(target, missing="HTTP 404")
    target.check()
    with pytest.raises(DestinationError, match="HTTP 404"):
        client(server, "no-such-bucket-here", account).check()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"bucket": "Bad Name", "credentials_json": "{}"}, "bucket"),
        ({"bucket": "docs", "credentials_json": "not json"}, "service account key"),
        ({"bucket": "docs", "credentials_json": '{"type": "authorized_user"}'}, "service_account"),
        ({"bucket": "docs", "credentials_json": '{"type": "service_account"}'}, "lacks"),
    ],
)
def test_settings_are_checked(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        gcs.KIND.validate(values, LOOPBACK)


def test_throttling_is_retried_after_what_retry_after_says() -> None:
    from google.api_core import exceptions as api
    from requests import Response

    def answered(status: int, message: str, **headers: str) -> Exception:
        reply = Response()
        reply.status_code = status
        reply.headers.update(headers)
        return api.from_http_status(status, message, response=reply)  # type: ignore[no-untyped-call, no-any-return]

    error = gcs._error(answered(429, "rate limited", **{"Retry-After": "7"}), "upload")
    assert (error.retryable, error.retry_after) == (True, 7.0)
    assert gcs._error(answered(404, "The specified bucket does not exist."), "upload").retryable is False
    assert gcs._error(answered(403, "forbidden"), "upload").retryable is False
    assert gcs._error(answered(503, "backend error"), "upload").retryable is True


# --- the egress guard ---------------------------------------------------------------------------------------


def test_the_default_policy_refuses_the_loopback_service_at_connect(
    google: tuple[FakeGcs, TokenEndpoint], account: str, bucket: str
) -> None:
    server, _ = google
    settings, secrets_ = gcs.KIND.validate(
        {"bucket": bucket, "credentials_json": account, "endpoint_url": server.endpoint}, LOOPBACK
    )
    with pytest.raises(DestinationError) as info:
        gcs.GcsDestination(settings, secrets_, DEFAULT).check()
    refused_by_the_guard(info.value)
    assert not info.value.retryable


def test_the_token_request_goes_through_the_guard(google: tuple[FakeGcs, TokenEndpoint], bucket: str) -> None:
    """The storage endpoint on 127.0.0.1 is allowed, the key's token_uri on 127.0.0.2 is not: the refusal
    names 127.0.0.2, so the token request was judged (unguarded, it would have met a closed port)."""
    server, tokens = google
    info, _ = service_account(tokens.url.replace("127.0.0.1", "127.0.0.2"))
    only_one = OperatorPolicy(folder_roots=LOOPBACK.folder_roots, egress_allow=(ipaddress.ip_network("127.0.0.1/32"),))
    values = {"bucket": bucket, "credentials_json": json.dumps(info), "endpoint_url": server.endpoint}
    settings, secrets_ = gcs.KIND.validate(values, LOOPBACK)
    with pytest.raises(DestinationError, match=r"egress refused: 127\.0\.0\.2 is a loopback address") as refused:
        gcs.GcsDestination(settings, secrets_, only_one).check()
    refused_by_the_guard(refused.value)


def test_the_token_endpoints_body_is_not_shown_beyond_its_error_code(bucket: str) -> None:
    answer = Answering(
        status=400,
        body=json.dumps({"error": "invalid_grant", "error_description": PEER_SECRET}).encode(),
        headers={"content-type": "application/json"},
    )
    with answering_server(answer) as peer:
        info, _ = service_account(f"{peer.url}/token")
        settings, secrets_ = gcs.KIND.validate({"bucket": bucket, "credentials_json": json.dumps(info)}, LOOPBACK)
        with pytest.raises(DestinationError) as refused:
            gcs.GcsDestination(settings, secrets_, LOOPBACK).check()
    assert str(refused.value).endswith("the service account key was refused: invalid_grant")
    assert PEER_SECRET not in str(refused.value)


def test_the_apis_error_reason_is_shown_and_its_message_is_not(account: str) -> None:
    body = {"error": {"code": 403, "message": PEER_SECRET, "errors": [{"reason": "forbidden", "message": PEER_SECRET}]}}
    with answering_server(Answering(status=403, body=json.dumps(body).encode())) as peer:
        settings, secrets_ = gcs.KIND.validate(
            {"bucket": "docs", "credentials_json": account, "endpoint_url": peer.url}, LOOPBACK
        )
        with pytest.raises(DestinationError) as refused:
            gcs.GcsDestination(settings, secrets_, LOOPBACK).check()
    assert str(refused.value).endswith("HTTP 403 forbidden")
    assert PEER_SECRET not in str(refused.value)
