"""The `webhook` destination through the delivery engine (claim, POST, finish) against a real receiver
on loopback that checks the Standard Webhooks signature (tests/support/webhook_receiver.py)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterator

import pytest
import requests
from marshmallow import ValidationError
from sqlalchemy import select

from filerelay.clock import FrozenClock
from filerelay.db.models import Destination
from filerelay.db.session import session_scope
from filerelay.delivery import service, sweep
from filerelay.destinations import webhook
from filerelay.destinations.base import DestinationError
from filerelay.runtime import Runtime, build_runtime
from tests.support.answering_server import SECRET as PEER_SECRET
from tests.support.answering_server import Answering, answering_server
from tests.support.clock import half
from tests.support.destination_kinds import PDF, attempted, create, delivered_after_an_outage, payload, sized, wire
from tests.support.documents import delivery, failed_at_once
from tests.support.policy import DEFAULT, LOOPBACK, refused_by_the_guard
from tests.support.webhook_receiver import Receiver, webhook_receiver

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OTHER_SECRET = "whsec_" + base64.b64encode(b"x" * 32).decode()


def configure(runtime: Runtime, url: str, secret: str = SECRET) -> None:
    wire(runtime, "webhook", {"url": url, "secret": secret, "headers": {"x-api-token": "t0ken"}})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver(SECRET) as live:
        yield live


@pytest.mark.parametrize("size", [len(PDF), 20 * 1024 * 1024 + 7])
def test_a_document_arrives_byte_identical_and_signed(
    runtime: Runtime, receiver: Receiver, engine: object, size: int
) -> None:
    data = sized(size)
    configure(runtime, receiver.url)
    delivery_id = create(runtime, "webhook", data)

    assert attempted(runtime, delivery_id).status == "delivered"
    [got] = receiver.received
    assert (got.size, got.sha256) == (size, hashlib.sha256(data).hexdigest())
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["content-length"] == str(size)
    assert got.headers["webhook-id"].startswith(f"msg_{delivery_id}.")
    assert got.headers["x-filerelay-doc-id"] == "DOC1"
    assert got.headers["x-filerelay-repo-id"] == "Z1"
    assert got.headers["x-filerelay-sha256"] == hashlib.sha256(data).hexdigest()
    assert got.headers["x-api-token"] == "t0ken"


def test_a_text_document_passes_the_reference_librarys_check(
    runtime: Runtime, receiver: Receiver, engine: object
) -> None:
    configure(runtime, receiver.url)
    delivery_id = create(runtime, "webhook", "Rechnung Nr. 4711, Grüße".encode())
    assert attempted(runtime, delivery_id).status == "delivered"
    assert len(receiver.received) == 1


def test_a_throttled_attempt_waits_for_retry_after_and_the_repeat_keeps_its_webhook_id(
    runtime: Runtime, receiver: Receiver, clock: FrozenClock, engine: object
) -> None:
    configure(runtime, receiver.url)
    receiver.script.append((429, {"retry-after": "120"}))
    delivery_id = create(runtime, "webhook", PDF)

    row = attempted(runtime, delivery_id)
    assert row.status == "retrying"
    assert row.next_attempt_at is not None
    assert row.next_attempt_at >= clock.now() + dt.timedelta(seconds=120)
    assert "HTTP 429" in (row.last_error or "")

    clock.advance(121)
    assert attempted(runtime, delivery_id).status == "delivered"
    # Both attempts carried one webhook-id: a receiver that saw the first drops the second.
    [got] = receiver.received
    assert got.headers["webhook-id"] == f"msg_{delivery_id}.1"


def test_a_stopped_receiver_means_retrying_then_delivered_when_it_is_back(
    runtime: Runtime, receiver: Receiver, clock: FrozenClock, engine: object
) -> None:
    configure(runtime, receiver.url)
    delivery_id = create(runtime, "webhook", PDF)
    delivered_after_an_outage(
        runtime, clock, delivery_id, stop=receiver.stop, start=receiver.start, error="ConnectionError"
    )


@pytest.mark.parametrize(
    ("secret", "script", "expected"), [(OTHER_SECRET, [], "HTTP 401"), (SECRET, [(410, {})], "HTTP 410")]
)
def test_a_refused_signature_or_a_gone_endpoint_fails_at_once(
    runtime: Runtime,
    receiver: Receiver,
    engine: object,
    secret: str,
    script: list[tuple[int, dict[str, str]]],
    expected: str,
) -> None:
    configure(runtime, receiver.url, secret)
    receiver.script.extend(script)
    delivery_id = create(runtime, "webhook", PDF)

    assert expected in failed_at_once(runtime, delivery_id)
    assert receiver.received == []


def test_check_reaches_the_receiver_without_delivering(receiver: Receiver) -> None:
    settings, secrets = webhook.KIND.validate({"url": receiver.url, "secret": SECRET}, LOOPBACK)
    webhook.WebhookDestination(settings, secrets, LOOPBACK).check()
    assert receiver.received == []
    gone, secrets = webhook.KIND.validate(
        {"url": receiver.url.replace("/hooks/", "/nothing/"), "secret": SECRET}, LOOPBACK
    )
    with pytest.raises(DestinationError, match="HTTP 404"):
        webhook.WebhookDestination(gone, secrets, LOOPBACK).check()
    receiver.stop()
    with pytest.raises(DestinationError, match="cannot be reached"):
        webhook.WebhookDestination(settings, secrets, LOOPBACK).check()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"url": "http://127.0.0.1:9/x", "secret": "s3cr3t"}, "starts with whsec_"),
        ({"url": "http://127.0.0.1:9/x", "secret": "whsec_%%%"}, "base64"),
        ({"url": "http://127.0.0.1:9/x", "secret": "whsec_" + base64.b64encode(b"short").decode()}, "24 bytes"),
        ({"url": "ftp://example.com/x", "secret": SECRET}, "url"),
        ({"url": "http://127.0.0.1:9/x", "secret": SECRET, "mode": "carrier-pigeon"}, "mode"),
    ],
)
def test_settings_are_checked(values: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        webhook.KIND.validate(values, LOOPBACK)


def test_the_secret_and_headers_are_stored_apart_and_the_key_is_what_whsec_carries() -> None:
    key = os.urandom(32)
    secret = "whsec_" + base64.b64encode(key).decode()
    settings, secrets = webhook.KIND.validate(
        {"url": "https://erp.example.com/in", "secret": secret, "headers": {"a": "b"}}, LOOPBACK
    )
    assert settings == {"url": "https://erp.example.com/in", "mode": "content"}
    assert secrets == {"secret": secret, "headers": {"a": "b"}}
    assert webhook.signing_key(secret) == key


# --- notification mode: a signed download link instead of the bytes -----------------------------------------


def notifying(runtime: Runtime, receiver: Receiver, public_url: str | None) -> Runtime:
    """acme/production's Z1 wired to a notification webhook; the worker's runtime knows where the API is."""
    configure(runtime, receiver.url)
    with session_scope(runtime.sessions) as session:
        found = session.scalars(select(Destination).where(Destination.public_id == "dest_webhook")).one()
        found.settings = {**found.settings, "mode": "notification"}
    return build_runtime(runtime.settings.with_overrides(public_url=public_url), clock=runtime.clock)


def test_a_notification_carries_a_link_that_serves_the_file_without_a_key_until_it_expires(
    runtime: Runtime, receiver: Receiver, server: str, clock: FrozenClock
) -> None:
    worker = notifying(runtime, receiver, server)
    delivery_id = create(runtime, "webhook", PDF)

    assert service.run(worker, delivery_id, rand=half) is True

    assert delivery(runtime, delivery_id).status == "delivered"
    [got] = receiver.received  # a JSON body: checked by the reference library
    assert got.headers["content-type"] == "application/json"
    event = json.loads(got.path.read_bytes())
    assert event["type"] == "document.available"
    data = event["data"]
    assert (data["doc_id"], data["repo_id"], data["size_bytes"]) == ("DOC1", "Z1", len(PDF))
    assert data["sha256"] == hashlib.sha256(PDF).hexdigest()
    link = data["download_url"]
    assert link.startswith(f"{server}/api/acme/production/files/{data['document_id']}/content?token=")
    assert dt.datetime.fromisoformat(data["download_expires_at"]) == clock.now() + dt.timedelta(hours=1)
    # The link alone fetches the bytes; no API key.
    reply = requests.get(link, timeout=10)
    assert reply.status_code == 200
    assert reply.content == PDF
    # A token changed by one character, or moved to another file, opens nothing. Not the last
    # character: its low bits are base64 padding, so A and B there can decode to the same bytes.
    at = len(link) - 5
    forged = link[:at] + ("A" if link[at] != "A" else "B") + link[at + 1 :]
    assert requests.get(forged, timeout=10).status_code == 401
    other = link.replace(data["document_id"], "doc_00000000000000000000")
    assert requests.get(other, timeout=10).status_code == 401
    # Expired: the API's clock has moved past it.
    clock.advance(3601)
    assert requests.get(link, timeout=10).status_code == 401
    worker.close()


def test_without_a_public_url_a_notification_fails_at_once_saying_what_to_set(
    runtime: Runtime, receiver: Receiver, engine: object
) -> None:
    worker = notifying(runtime, receiver, None)
    delivery_id = create(runtime, "webhook", PDF)

    assert service.run(worker, delivery_id, rand=half) is True

    row = delivery(runtime, delivery_id)
    assert row.status == "failed"
    assert "FILERELAY_PUBLIC_URL" in (row.last_error or "")
    assert receiver.received == []
    worker.close()


def test_a_link_expires_before_staging_lets_its_bytes_go(
    runtime: Runtime, receiver: Receiver, server: str, clock: FrozenClock
) -> None:
    short = runtime.settings.with_overrides(public_url=server, staging_retention_seconds=60, file_link_seconds=3600)
    worker = build_runtime(short, clock=clock)
    notifying(runtime, receiver, server).close()
    delivery_id = create(runtime, "webhook", PDF)
    assert service.run(worker, delivery_id, rand=half) is True
    data = json.loads(receiver.received[0].path.read_bytes())["data"]
    assert dt.datetime.fromisoformat(data["download_expires_at"]) == clock.now() + dt.timedelta(seconds=60)
    clock.advance(59)
    assert sweep.sweep(worker).purged == 0
    assert requests.get(data["download_url"], timeout=10).content == PDF
    clock.advance(2)
    assert sweep.sweep(worker).purged == 1
    assert requests.get(data["download_url"], timeout=10).status_code == 401
    worker.close()


# --- the egress guard ---------------------------------------------------------------------------------------


def test_the_default_policy_refuses_the_loopback_receiver_at_connect(receiver: Receiver) -> None:
    """Written under LOOPBACK (the tests' policy), connected under the defaults: the guard refuses, for good."""
    settings, secrets = webhook.KIND.validate({"url": receiver.url, "secret": SECRET}, LOOPBACK)
    target = webhook.WebhookDestination(settings, secrets, DEFAULT)
    with pytest.raises(DestinationError) as checked:
        target.check()
    refused_by_the_guard(checked.value)
    with pytest.raises(DestinationError) as delivered:
        target.deliver(payload(PDF))
    refused_by_the_guard(delivered.value)
    assert not delivered.value.retryable
    assert receiver.received == []


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest", "http://[::ffff:127.0.0.1]:9/x", "http://localhost:9"]
)
def test_a_url_the_policy_refuses_is_refused_when_written(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        webhook.KIND.validate({"url": url, "secret": SECRET}, DEFAULT)
    assert "url" in info.value.messages_dict


def test_neither_the_peers_body_nor_the_urls_credentials_reach_the_recorded_error(
    runtime: Runtime, engine: object
) -> None:
    with answering_server() as peer:
        configure(runtime, peer.url.replace("://", "://relay:pa55w0rd@") + "/hooks/in")
        delivery_id = create(runtime, "webhook", PDF)
        assert service.run(runtime, delivery_id, rand=half) is True
    error = delivery(runtime, delivery_id).last_error or ""
    assert "HTTP 500" in error
    assert PEER_SECRET not in error
    assert "pa55w0rd" not in error
    assert "relay:" not in error
    assert peer.asked == ["POST /hooks/in"]


def test_a_redirect_is_not_followed(runtime: Runtime, engine: object) -> None:
    with answering_server(Answering(status=307, body=b"", headers={})) as peer:
        peer.headers["location"] = f"{peer.url}/elsewhere"
        configure(runtime, f"{peer.url}/hooks/in")
        delivery_id = create(runtime, "webhook", PDF)
        assert service.run(runtime, delivery_id, rand=half) is True
        settings, secrets = webhook.KIND.validate({"url": f"{peer.url}/hooks/in", "secret": SECRET}, LOOPBACK)
        with pytest.raises(DestinationError, match=r"HTTP 307 \(a redirect, not followed"):
            webhook.WebhookDestination(settings, secrets, LOOPBACK).check()
    assert "HTTP 307 (a redirect, not followed" in (delivery(runtime, delivery_id).last_error or "")
    assert peer.asked == ["POST /hooks/in", "HEAD /hooks/in"]
