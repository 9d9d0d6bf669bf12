"""SharePoint through the real worker: the real office365 client against the REST emulator on loopback."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from filerelay.api import create_app
from filerelay.config_file import apply, load
from filerelay.db.models import Delivery, DeliveryAttempt, Destination, Document
from filerelay.db.session import session_scope
from filerelay.destinations.sharepoint import INLINE_WAIT_MAX
from tests.support.policy import LOOPBACK
from tests.support.relay import Relay, acme_config, s3_entry, wait_until
from tests.support.s3server import S3Server
from tests.support.sharepoint_emulator import FIELD_MISSING_CODE, Emulator, sharepoint_emulator

pytestmark = pytest.mark.slow

MB = 1024 * 1024
LIBRARY = "/sites/team/Shared Documents"


@pytest.fixture
def sp() -> Iterator[Emulator]:
    with sharepoint_emulator() as emulator:
        emulator.library().columns.add("DocId")
        yield emulator


def config(
    sp: Emulator,
    s3: S3Server | None = None,
    *,
    max_retries: int = 2,
    path: str = "/{repo_id}/invoice_{doc_id}{ext}",
    columns: dict[str, str] | None = None,
) -> Callable[[str, Path], str]:
    sharepoint: dict[str, object] = {
        "id": "dest_sharepoint",
        "name": "SharePoint Team Site",
        "kind": "sharepoint",
        "site_url": sp.site_url,
        "library": "Shared Documents",
        "access_token": sp.token,
        "columns": columns or {"DocId": "doc_id"},
        "path": path,
    }

    def build(bucket: str, out: Path) -> str:
        if s3 is None:
            return acme_config([sharepoint], max_retries=max_retries)
        s3prod = s3_entry(s3, bucket, secret=s3.secret_key, path="/{doc_id}{ext}")
        return acme_config([sharepoint, s3prod], max_retries=max_retries, wired=["dest_s3prod", "dest_sharepoint"])

    return build


def body(seed: int, size: int) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * 2048
    return (block * (size // len(block) + 1))[:size]


def delivery_states(relay: Relay) -> dict[str, tuple[str, int]]:
    with session_scope(relay.runtime.sessions) as session:
        rows = session.execute(
            select(Destination.public_id, Delivery.status, Delivery.attempts).join(Destination).join(Document)
        )
        return {public_id: (status, attempts) for public_id, status, attempts in rows}


def document_status(relay: Relay) -> str:
    with session_scope(relay.runtime.sessions) as session:
        return str(session.scalars(select(Document.status)).one())


def test_small_and_50_mb_files_arrive_byte_identical_at_the_templated_path(
    make_relay: Callable[..., Relay], sp: Emulator
) -> None:
    relay = make_relay(config_for=config(sp))
    relay.start("worker", "worker", "--queues", "sharepoint")
    small, large = body(1, 12_345), body(2, 50 * MB)
    assert relay.sap.create("SMALL1", "data", small, "application/pdf").status == 201
    assert relay.sap.create("LARGE1", "data", large, "application/pdf").status == 201

    def both_delivered() -> bool:
        with session_scope(relay.runtime.sessions) as session:
            return set(session.scalars(select(Document.status))) == {"delivered"}

    wait_until(both_delivered, timeout=120, what="both delivered")
    assert sp.files[f"{LIBRARY}/Z1/invoice_SMALL1.pdf"] == small
    assert hashlib.sha256(sp.files[f"{LIBRARY}/Z1/invoice_LARGE1.pdf"]).digest() == hashlib.sha256(large).digest()
    assert sp.list_items[f"{LIBRARY}/Z1/invoice_LARGE1.pdf"]["DocId"] == "LARGE1"
    # The large one went up in chunks through an upload session, the small one in one request.
    assert sum("startUpload" in path for _, path, _ in sp.requests) == 1
    assert sum("continueUpload" in path for _, path, _ in sp.requests) >= 4


def test_429_mid_upload_is_waited_out_and_only_the_chunk_is_resent(
    make_relay: Callable[..., Relay], sp: Emulator
) -> None:
    relay = make_relay(config_for=config(sp))
    sp.inject(429, times=1, match="continueUpload", retry_after=2)
    relay.start("worker", "worker", "--queues", "sharepoint")
    content = body(3, 20 * MB)
    assert relay.sap.create("THROTTLED", "data", content, "application/pdf").status == 201
    wait_until(lambda: document_status(relay) == "delivered", timeout=120, what="delivered after throttling")

    assert sp.files[f"{LIBRARY}/Z1/invoice_THROTTLED.pdf"] == content
    assert delivery_states(relay) == {"dest_sharepoint": ("delivered", 1)}  # one attempt: retried inside it
    continues = [
        (status, at)
        for (method, path, status), at in zip(sp.requests, sp.request_times, strict=True)
        if "continueUpload" in path
    ]
    assert continues[0][0] == 429
    assert continues[1][0] == 200
    assert continues[1][1] - continues[0][1] >= 2.0  # Retry-After honoured
    assert sum("startUpload" in path for _, path, _ in sp.requests) == 1


def test_a_permanently_failing_site_ends_failed(make_relay: Callable[..., Relay], sp: Emulator) -> None:
    relay = make_relay(config_for=config(sp, max_retries=1))
    sp.fail_always(503)
    relay.start("worker", "worker", "--queues", "sharepoint")
    relay.start("sweeper", "sweeper")
    assert relay.sap.create("DOOMED", "data", b"%PDF doomed", "application/pdf").status == 201
    wait_until(lambda: document_status(relay) == "failed", timeout=120, what="failed")
    assert delivery_states(relay) == {"dest_sharepoint": ("failed", 2)}


def test_s3_delivered_sharepoint_failed_and_a_retry_resends_sharepoint_only(
    make_relay: Callable[..., Relay], sp: Emulator, s3: S3Server
) -> None:
    relay = make_relay(config_for=config(sp, s3, max_retries=0))
    sp.fail_always(503)
    relay.start("worker", "worker", "--queues", "s3,sharepoint")
    content = body(4, 300_000)
    assert relay.sap.create("MIXED1", "data", content, "application/pdf").status == 201
    expected = {"dest_s3prod": ("delivered", 1), "dest_sharepoint": ("failed", 1)}
    # Not the document's status: "failed" outranks "delivering" in the roll-up, so it reads failed while
    # the S3 upload may still be running.
    wait_until(lambda: delivery_states(relay) == expected, timeout=120, what="S3 delivered, SharePoint failed")
    assert document_status(relay) == "failed"

    sp.heal()
    key = "fr_live_sp_retry_0123456789abcdef"
    with session_scope(relay.runtime.sessions) as session:
        keys = f"workspaces: [{{owner: acme, slug: production, api_keys: [{{name: ops, role: member, key: {key}}}]}}]"
        apply(session, load(keys, {}), now=relay.runtime.clock.now(), policy=LOOPBACK)
        document_id = session.scalars(select(Document.id)).one()
    reply = (
        create_app(runtime=relay.runtime)
        .test_client()
        .post(f"/api/acme/production/documents/{document_id}/retry", headers={"Authorization": f"Bearer {key}"})
    )
    assert reply.status_code == 200, reply.get_json()
    wait_until(lambda: document_status(relay) == "delivered", timeout=120, what="delivered after retry")
    assert delivery_states(relay) == {"dest_s3prod": ("delivered", 1), "dest_sharepoint": ("delivered", 2)}
    assert sp.files[f"{LIBRARY}/Z1/invoice_MIXED1.pdf"] == content


def sharepoint_delivery(relay: Relay) -> Delivery:
    with session_scope(relay.runtime.sessions) as session:
        delivery = session.scalars(
            select(Delivery).join(Destination).where(Destination.public_id == "dest_sharepoint")
        ).one()
        session.expunge(delivery)
        return delivery


def test_reserved_names_are_delivered_under_sanitised_names(make_relay: Callable[..., Relay], sp: Emulator) -> None:
    # Renders to /Z1/CON/~$scan_CON.pdf: a reserved folder name and a refused "~$" file prefix.
    relay = make_relay(config_for=config(sp, path="/{repo_id}/{doc_id}/~$scan_{doc_id}{ext}"))
    relay.start("worker", "worker", "--queues", "sharepoint")
    assert relay.sap.create("CON", "data", b"%PDF con", "application/pdf").status == 201
    wait_until(lambda: document_status(relay) == "delivered", timeout=120, what="delivered")

    assert sp.files[f"{LIBRARY}/Z1/CON_/_$scan_CON.pdf"] == b"%PDF con"
    assert sp.list_items[f"{LIBRARY}/Z1/CON_/_$scan_CON.pdf"]["DocId"] == "CON"
    assert 400 not in sp.statuses()
    assert delivery_states(relay) == {"dest_sharepoint": ("delivered", 1)}
    # The path the REST API reports is where the file is, not the template's expansion.
    with session_scope(relay.runtime.sessions) as session:
        assert session.scalars(select(Delivery.path)).one() == "/Z1/CON_/_$scan_CON.pdf"


def test_a_400_from_sharepoint_fails_the_delivery_without_retry(make_relay: Callable[..., Relay], sp: Emulator) -> None:
    relay = make_relay(config_for=config(sp, max_retries=2))
    sp.inject(400, times=10, match="AddUsingPath")
    relay.start("worker", "worker", "--queues", "sharepoint")
    relay.start("sweeper", "sweeper")
    assert relay.sap.create("BAD400", "data", b"%PDF bad", "application/pdf").status == 201
    wait_until(lambda: document_status(relay) == "failed", timeout=120, what="failed")

    assert delivery_states(relay) == {"dest_sharepoint": ("failed", 1)}
    assert sp.statuses("AddUsingPath") == [400]
    assert "HTTP 400" in str(sharepoint_delivery(relay).last_error)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_sets_the_next_attempt_at_least_that_far_out(
    make_relay: Callable[..., Relay], sp: Emulator, status: int
) -> None:
    # Longer than the in-attempt wait limit, so the attempt ends and the engine reschedules; far longer
    # than the workspace's backoff (at most 2 s), so only the header can explain the delay.
    retry_after = INLINE_WAIT_MAX + 90
    relay = make_relay(config_for=config(sp, max_retries=2))
    sp.inject(status, times=1, match="AddUsingPath", retry_after=retry_after)
    relay.start("worker", "worker", "--queues", "sharepoint")
    assert relay.sap.create("SLOW", "data", b"%PDF slow", "application/pdf").status == 201
    wait_until(lambda: sharepoint_delivery(relay).status == "retrying", timeout=120, what="retrying")

    delivery = sharepoint_delivery(relay)
    with session_scope(relay.runtime.sessions) as session:
        finished_at = session.scalars(
            select(DeliveryAttempt.finished_at).where(DeliveryAttempt.delivery_id == delivery.id)
        ).one()
    assert delivery.next_attempt_at is not None
    assert finished_at is not None
    assert (delivery.next_attempt_at - finished_at).total_seconds() >= retry_after
    assert f"HTTP {status}" in str(delivery.last_error)


def test_a_missing_column_fails_the_delivery_for_good_naming_it(make_relay: Callable[..., Relay], sp: Emulator) -> None:
    relay = make_relay(config_for=config(sp, columns={"DocId": "doc_id", "Kunde": "repo_id"}))
    relay.start("worker", "worker", "--queues", "sharepoint")
    relay.start("sweeper", "sweeper")
    assert relay.sap.create("NOCOL", "data", b"%PDF", "application/pdf").status == 201
    wait_until(lambda: document_status(relay) == "failed", timeout=120, what="failed")

    assert delivery_states(relay) == {"dest_sharepoint": ("failed", 1)}
    error = str(sharepoint_delivery(relay).last_error)
    assert "did not set the columns Kunde" in error
    # SharePoint's code for the column, not its message: the site's text is not repeated.
    assert f"Kunde: error {FIELD_MISSING_CODE}" in error
