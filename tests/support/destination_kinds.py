"""What the destination kinds' tests share: a workspace whose Z1 is wired to one destination of the kind
under test, a document created the way `create` does it, and a payload for calling a client directly."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable

import pytest
import yaml

from filerelay.clock import FrozenClock
from filerelay.db.models import Delivery
from filerelay.delivery import service
from filerelay.destinations.base import Client, DestinationError, Payload
from filerelay.runtime import Runtime
from tests.support.clock import half
from tests.support.documents import accept, attempts, delivery
from tests.support.workspaces import configure

PDF = b"%PDF-1.4\n" + bytes(range(256)) * 64 + b"\n%%EOF\n"
# Retries are allowed: a delivery that ends `failed` after its first attempt was refused for good.
RETRY = {"max_retries": 3, "ttl": "1h", "backoff_base": "1s", "backoff_max": "10s"}


def wire(runtime: Runtime, kind: str, settings: dict[str, object], *, destination_id: str | None = None) -> None:
    """acme/production with Z1 wired to one `kind` destination, `destination_id` (`dest_<kind>` unless
    given), at /{repo_id}/{doc_id}{ext}."""
    destination = {
        "id": destination_id or f"dest_{kind}",
        "name": kind,
        "kind": kind,
        **settings,
        "path": "/{repo_id}/{doc_id}{ext}",
    }
    workspace = {
        "owner": "acme",
        "slug": "production",
        "retry": RETRY,
        "destinations": [destination],
        "repositories": [
            {"id": "Z1", "description": "Invoices", "signature": "none", "destinations": [destination["id"]]}
        ],
    }
    configure(runtime, yaml.safe_dump({"workspaces": [workspace]}))


def create(runtime: Runtime, kind: str, data: bytes, doc_id: str = "DOC1") -> str:
    """A document accepted as `create` accepts it; the id of its one delivery (to the `kind` destination)."""
    outcome, _ = accept(runtime, doc_id, data)
    [(delivery_id, queued)] = outcome.enqueue
    assert queued == kind
    return delivery_id


def sized(size: int) -> bytes:
    return (PDF * (size // len(PDF) + 1))[:size]


def attempted(runtime: Runtime, delivery_id: str) -> Delivery:
    """One attempt, run to its end by the real delivery service; the delivery row after it."""
    assert service.run(runtime, delivery_id, rand=half) is True
    return delivery(runtime, delivery_id)


def delivered(runtime: Runtime, kind: str, settings: dict[str, object], data: bytes) -> str:
    """A document of `data` wired to one new destination of `kind`, delivered by its first attempt; the
    delivery's id."""
    wire(runtime, kind, settings)
    delivery_id = create(runtime, kind, data)
    assert attempted(runtime, delivery_id).status == "delivered"
    return delivery_id


def payload(data: bytes, sha256: str | None = None, path: str = "/Z1/DOC1.pdf") -> Payload:
    """`data` on its way to `path`; `sha256` other than the data's stands for staged bytes gone wrong."""
    return Payload(
        open=lambda: io.BytesIO(data),
        size=len(data),
        sha256=sha256 or hashlib.sha256(data).hexdigest(),
        content_type="application/pdf",
        path=path,
    )


def assert_reads_back(target: Client, *, missing: str) -> None:
    """What a kind that reads back promises, from an empty destination: `holds` only once the object is
    there with that sha256, `read` gives the whole object and any range of it, and reading an object that
    is not there is a DestinationError whose message matches `missing`."""
    sha = hashlib.sha256(PDF).hexdigest()
    assert target.holds("/Z1/DOC1.pdf", sha256=sha, size=len(PDF)) is False
    target.deliver(payload(PDF))
    assert b"".join(target.read("/Z1/DOC1.pdf")) == PDF
    assert b"".join(target.read("/Z1/DOC1.pdf", 100, 50)) == PDF[100:150]
    assert target.holds("/Z1/DOC1.pdf", sha256=sha, size=len(PDF)) is True
    assert target.holds("/Z1/DOC1.pdf", sha256="0" * 64, size=len(PDF)) is False
    with pytest.raises(DestinationError, match=missing):
        list(target.read("/Z1/GONE.pdf"))


def delivered_after_an_outage(
    runtime: Runtime,
    clock: FrozenClock,
    delivery_id: str,
    *,
    stop: Callable[[], None],
    start: Callable[[], None],
    error: str,
) -> None:
    """The server is down for the first attempt (`retrying`, its error naming `error`) and back, on the
    same address, for the next (`delivered`): two attempts, the first failed."""
    stop()
    try:
        assert service.run(runtime, delivery_id, rand=half) is True
        row = delivery(runtime, delivery_id)
        assert row.status == "retrying"
        assert error in (row.last_error or "")
    finally:
        start()
    clock.advance(60)
    assert service.run(runtime, delivery_id, rand=half) is True
    assert delivery(runtime, delivery_id).status == "delivered"
    assert [a.outcome for a in attempts(runtime, delivery_id)] == ["failed", "delivered"]
