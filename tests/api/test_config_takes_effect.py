"""Nothing about a repository is cached between requests: a configuration change made through the admin
API (unwiring a destination, switching the signature mode) governs the very next ArchiveLink request."""

from __future__ import annotations

from typing import Any

import requests
from sqlalchemy import select

from filerelay.db.models import Delivery, Destination, Document
from filerelay.db.session import session_scope
from filerelay.runtime import Runtime
from tests.conftest import ADMIN_KEY
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
