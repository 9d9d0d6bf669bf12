"""The `pull` destination's client: nothing is ever pushed to it or read back from it, and saying so
must fail in the way the engine acts on (a non-retryable error gives up at once instead of retrying
a delivery that can never succeed; a read-back error makes GET try the next destination)."""

from __future__ import annotations

import io

import pytest
from marshmallow import ValidationError

from filerelay.destinations import get_kind
from filerelay.destinations.base import DestinationError, Payload, build_client
from tests.support.policy import LOOPBACK


def payload() -> Payload:
    return Payload(
        open=lambda: io.BytesIO(b"%PDF"),
        size=4,
        sha256="0" * 64,
        content_type="application/pdf",
        path="/Z1/DOC1.pdf",
    )


def test_a_push_to_a_pull_destination_fails_for_good() -> None:
    with pytest.raises(DestinationError) as caught:
        build_client("pull", {}, {}, LOOPBACK).deliver(payload())
    assert caught.value.retryable is False
    assert caught.value.retry_after is None
    assert str(caught.value) == "a pull destination is fetched by its integration, never pushed to"


def test_nothing_can_be_read_back_from_a_pull_destination() -> None:
    with pytest.raises(DestinationError) as caught:
        list(build_client("pull", {}, {}, LOOPBACK).read("/Z1/DOC1.pdf", 0, 4))
    assert str(caught.value) == "the integration keeps its copy; FileRelay cannot read it back"


def test_a_pull_destination_takes_no_settings_of_its_own() -> None:
    kind = get_kind("pull")
    assert kind.validate({}, LOOPBACK) == ({}, {})
    with pytest.raises(ValidationError):
        kind.validate({"bucket": "archive"}, LOOPBACK)
