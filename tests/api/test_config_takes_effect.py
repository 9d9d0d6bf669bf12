"""A configuration change made through the admin API (wiring, unwiring or disabling a destination, switching
the signature mode, changing the retry settings) governs the very next ArchiveLink request, though each
process keeps a snapshot of the configuration between requests (filerelay.workspace_snapshot). Each test
makes a request first, so the change lands on a snapshot already kept."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from sqlalchemy import event, select

from filerelay.db.models import Delivery, Destination, Document
from filerelay.db.session import session_scope
from filerelay.runtime import Runtime
from tests.support.keys import ADMIN_KEY
from tests.support.sapclient import SapClient

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


def wired_to(runtime: Runtime, doc_id: str) -> set[str]:
    with session_scope(runtime.sessions) as session:
        return set(
            session.scalars(
                select(Destination.public_id)
                .join(Delivery, Delivery.destination_id == Destination.id)
                .join(Document, Document.id == Delivery.document_id)
                .where(Document.doc_id == doc_id)
            )
        )


def admin(server: str, method: str, path: str, body: Any) -> None:
    reply = requests.request(method, f"{server}/api/acme/production{path}", json=body, headers=ADMIN, timeout=10)
    assert reply.status_code < 300, reply.text


def test_unwiring_a_destination_governs_the_next_create(server: str, sap: SapClient, configured: Runtime) -> None:
    assert sap.create("BEFORE", "data", b"%PDF one").status == 201
    admin(server, "PATCH", "/repositories/Z1", {"destinations": ["dest_folder"]})
    assert sap.create("AFTER", "data", b"%PDF two").status == 201
    assert wired_to(configured, "BEFORE") == {"dest_folder", "dest_s3prod"}
    assert wired_to(configured, "AFTER") == {"dest_folder"}


def test_disabling_a_destination_governs_the_next_create(server: str, sap: SapClient, configured: Runtime) -> None:
    assert sap.create("BEFORE", "data", b"%PDF one").status == 201
    admin(server, "PATCH", "/destinations/dest_s3prod", {"enabled": False})
    assert sap.create("AFTER", "data", b"%PDF two").status == 201
    assert wired_to(configured, "AFTER") == {"dest_folder"}


def test_switching_the_signature_mode_governs_the_next_request(server: str, sap: SapClient) -> None:
    assert sap.create("OPEN", "data", b"%PDF one").status == 201
    admin(server, "PATCH", "/repositories/Z1", {"signature": "required"})
    refused = sap.create("CLOSED", "data", b"%PDF two")
    assert refused.status == 401
    assert sap.get("OPEN").status == 401
    admin(server, "PATCH", "/repositories/Z1", {"signature": "none"})
    assert sap.get("OPEN").status == 200


def test_wiring_a_destination_governs_the_next_create(server: str, sap: SapClient, configured: Runtime) -> None:
    admin(server, "PATCH", "/repositories/Z1", {"destinations": ["dest_folder"]})
    assert sap.create("BEFORE", "data", b"%PDF one").status == 201
    admin(server, "POST", "/routes", {"repo_id": "Z1", "destination_id": "dest_s3prod"})
    assert sap.create("AFTER", "data", b"%PDF two").status == 201
    assert wired_to(configured, "BEFORE") == {"dest_folder"}
    assert wired_to(configured, "AFTER") == {"dest_folder", "dest_s3prod"}


def test_removing_a_route_governs_the_next_create(server: str, sap: SapClient, configured: Runtime) -> None:
    assert sap.create("BEFORE", "data", b"%PDF one").status == 201
    admin(server, "DELETE", "/routes/Z1/dest_s3prod", None)
    assert sap.create("AFTER", "data", b"%PDF two").status == 201
    assert wired_to(configured, "AFTER") == {"dest_folder"}


def retry_window(runtime: Runtime, doc_id: str) -> set[dt.timedelta]:
    """How long each delivery of the document is retried: its cycle's TTL, set from the settings at wiring."""
    with session_scope(runtime.sessions) as session:
        deliveries = session.scalars(select(Delivery).join(Document).where(Document.doc_id == doc_id)).all()
        return {d.expires_at - d.cycle_started_at for d in deliveries if d.expires_at and d.cycle_started_at}


def test_retry_settings_govern_the_next_create(server: str, sap: SapClient, configured: Runtime) -> None:
    assert sap.create("BEFORE", "data", b"%PDF one").status == 201
    admin(server, "PATCH", "/settings", {"ttl": "5h"})
    assert sap.create("AFTER", "data", b"%PDF two").status == 201
    assert retry_window(configured, "BEFORE") == {dt.timedelta(hours=1)}
    assert retry_window(configured, "AFTER") == {dt.timedelta(hours=5)}


def test_a_create_reads_nothing_while_the_configuration_is_unchanged(sap: SapClient, configured: Runtime) -> None:
    """The repository and its wiring come from the snapshot, and its version is checked by the INSERT itself:
    a create's only statements are its writes, on PostgreSQL a single one (header, component, deliveries)."""
    assert sap.create("FIRST", "data", b"%PDF one").status == 201
    with statements(configured) as seen:
        assert sap.create("SECOND", "data", b"%PDF two").status == 201
    writes = [s for s in seen if not s.upper().startswith("BEGIN")]
    if configured.engine.dialect.name == "postgresql":
        assert len(writes) == 1
        assert " ".join(writes[0].split()).startswith("WITH archive AS (INSERT INTO archive_documents")
    else:
        assert [s.split("(")[0].strip() for s in writes] == [
            "INSERT INTO archive_documents",
            "INSERT INTO documents",
            "INSERT INTO deliveries",
        ]
    assert wired_to(configured, "SECOND") == {"dest_folder", "dest_s3prod"}


@contextmanager
def statements(runtime: Runtime) -> Iterator[list[str]]:
    """Every SQL statement the app's engine (served in this process) runs inside the block."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(runtime.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(runtime.engine, "before_cursor_execute", record)
