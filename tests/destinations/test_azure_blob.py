"""The `azure_blob` destination through the delivery engine against Azurite (tests/support/azurite.py):
what lands (bytes, content type, the sha256 in metadata), how (one Put Blob, or blocks committed only
after the whole was checked), outages, refusals, and reading back."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from marshmallow import ValidationError

from filerelay.clock import FrozenClock
from filerelay.destinations import azure_blob
from filerelay.destinations.base import DestinationError
from filerelay.runtime import Runtime
from tests.support.answering_server import SECRET as PEER_SECRET
from tests.support.answering_server import Answering, answering_server
from tests.support.azurite import ACCOUNT, KEY, Azurite, azurite
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
from tests.support.policy import DEFAULT, LOOPBACK, refused_by_the_guard


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with azurite(tmp_path_factory.mktemp("azurite")) as live:
        yield live


@pytest.fixture
def container(storage: Azurite) -> str:
    from azure.storage.blob import BlobServiceClient

    name = f"docs-{secrets.token_hex(4)}"
    BlobServiceClient.from_connection_string(storage.connection_string).create_container(name)
    return name


def blob_of(storage: Azurite, container: str, name: str) -> Any:
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(storage.connection_string).get_blob_client(container, name)


def client(storage: Azurite, container: str, **changes: object) -> azure_blob.AzureBlobDestination:
    values: dict[str, object] = {"container": container, "connection_string": storage.connection_string, **changes}
    settings, secrets_ = azure_blob.KIND.validate({k: v for k, v in values.items() if v is not None}, LOOPBACK)
    return azure_blob.AzureBlobDestination(settings, secrets_, LOOPBACK)


@pytest.mark.parametrize("size", [len(PDF), 20 * 1024 * 1024 + 11])
def test_a_document_lands_byte_identical_with_its_sha256(
    runtime: Runtime, storage: Azurite, container: str, engine: object, size: int
) -> None:
    data = sized(size)
    delivered(
        runtime, "azure_blob", {"container": container, "account_url": storage.account_url, "account_key": KEY}, data
    )
    blob = blob_of(storage, container, "Z1/DOC1.pdf")
    properties = blob.get_blob_properties()
    assert properties.size == size
    assert properties.metadata == {"sha256": hashlib.sha256(data).hexdigest()}
    assert properties.content_settings.content_type == "application/pdf"
    assert hashlib.sha256(blob.download_blob().readall()).hexdigest() == hashlib.sha256(data).hexdigest()


def test_a_stopped_service_means_retrying_then_delivered_when_it_is_back(
    runtime: Runtime, storage: Azurite, container: str, clock: FrozenClock, engine: object
) -> None:
    wire(runtime, "azure_blob", {"container": container, "connection_string": storage.connection_string})
    delivery_id = create(runtime, "azure_blob", PDF)
    # The same port and data when it is back.
    delivered_after_an_outage(
        runtime, clock, delivery_id, stop=storage.stop, start=storage.start, error="upload to azure://"
    )


@pytest.mark.parametrize(
    ("problem", "expected"),
    # Azure answers a wrong key with AuthenticationFailed; Azurite with AuthorizationFailure.
    [
        ("wrong key", r"(AuthenticationFailed|AuthorizationFailure) \(HTTP 403\)"),
        ("missing container", r"ContainerNotFound \(HTTP 404\)"),
    ],
)
def test_a_wrong_key_or_a_missing_container_fails_at_once(
    runtime: Runtime, storage: Azurite, container: str, engine: object, problem: str, expected: str
) -> None:
    wrong_key = "A" * 86 + "=="
    values: dict[str, object] = {"container": container, "account_url": storage.account_url, "account_key": wrong_key}
    if problem == "missing container":
        values = {"container": "no-such-container", "connection_string": storage.connection_string}
    wire(runtime, "azure_blob", values)
    delivery_id = create(runtime, "azure_blob", PDF)

    error = failed_at_once(runtime, delivery_id)
    assert re.search(expected, error), error


@pytest.mark.parametrize("size", [len(PDF), 9 * 1024 * 1024])
def test_a_failed_re_delivery_leaves_the_previous_blob_intact(storage: Azurite, container: str, size: int) -> None:
    target = client(storage, container)
    target.deliver(payload(PDF))
    new = (b"new version " * (size // 12 + 1))[:size]
    with pytest.raises(DestinationError, match="do not match their sha256"):
        target.deliver(payload(new, sha256="0" * 64))  # staged bytes that are not what was accepted
    blob = blob_of(storage, container, "Z1/DOC1.pdf")
    assert blob.download_blob().readall() == PDF
    assert blob.get_blob_properties().metadata == {"sha256": hashlib.sha256(PDF).hexdigest()}


def test_read_back_holds_and_check(storage: Azurite, container: str) -> None:
    target = client(storage, container)
    assert_reads_back(target, missing="BlobNotFound")
    target.check()
    with pytest.raises(DestinationError, match="ContainerNotFound"):
        client(storage, "no-such-container").check()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"container": "Bad_Name"}, "container"),
        ({"container": "docs"}, "connection_string, or an account_url"),
        ({"container": "docs", "account_url": "https://acme.blob.core.windows.net"}, "account_key or a sas_token"),
    ],
)
def test_settings_are_checked(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        azure_blob.KIND.validate(values, LOOPBACK)


def test_credentials_are_secrets_and_the_account_comes_from_the_url() -> None:
    settings, secrets_ = azure_blob.KIND.validate(
        {"container": "docs", "account_url": "https://acme.blob.core.windows.net", "account_key": KEY}, LOOPBACK
    )
    assert "account_key" not in settings
    assert secrets_["account_key"] == KEY
    assert azure_blob._account_name("https://acme.blob.core.windows.net") == "acme"
    assert azure_blob._account_name("http://127.0.0.1:10000/devstoreaccount1") == "devstoreaccount1"


# --- the egress guard ---------------------------------------------------------------------------------------


def test_the_default_policy_refuses_the_loopback_service_at_connect(storage: Azurite, container: str) -> None:
    """Written under LOOPBACK (the tests' policy), connected under the defaults: azure-core's transport
    sends through the guarded session."""
    values = {"container": container, "connection_string": storage.connection_string}
    settings, secrets_ = azure_blob.KIND.validate(values, LOOPBACK)
    with pytest.raises(DestinationError) as info:
        azure_blob.AzureBlobDestination(settings, secrets_, DEFAULT).check()
    refused_by_the_guard(info.value)
    assert not info.value.retryable


def test_the_services_error_code_is_shown_its_message_is_not_and_a_redirect_is_not_followed(container: str) -> None:
    refusing = Answering(
        status=403,
        body=f"<Error><Code>AuthorizationFailure</Code><Message>{PEER_SECRET}</Message></Error>".encode(),
        headers={"content-type": "application/xml", "x-ms-error-code": "AuthorizationFailure"},
    )
    with answering_server(refusing) as peer:
        values = {"container": container, "account_url": f"{peer.url}/{ACCOUNT}", "account_key": KEY}
        with pytest.raises(DestinationError) as info:
            azure_blob.AzureBlobDestination(*azure_blob.KIND.validate(values, LOOPBACK), LOOPBACK).check()
        assert "AuthorizationFailure (HTTP 403)" in str(info.value)
        assert PEER_SECRET not in str(info.value)
        peer.status, peer.body, peer.headers = 302, b"", {"location": f"{peer.url}/elsewhere"}
        with pytest.raises(DestinationError, match=r"HTTP 302"):
            azure_blob.AzureBlobDestination(*azure_blob.KIND.validate(values, LOOPBACK), LOOPBACK).check()
    assert not any("/elsewhere" in asked for asked in peer.asked)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"account_url": "http://169.254.169.254/acct", "sas_token": "s"}, "account_url"),
        ({"connection_string": "UseDevelopmentStorage=true"}, "connection_string"),
        (
            {"connection_string": f"AccountName=a;AccountKey={KEY};BlobEndpoint=http://[::1]:10000/a"},
            "connection_string",
        ),
    ],
)
def test_an_endpoint_the_policy_refuses_is_refused_when_written(values: dict[str, str], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        azure_blob.KIND.validate({"container": "docs", **values}, DEFAULT)
    assert field in info.value.messages_dict
