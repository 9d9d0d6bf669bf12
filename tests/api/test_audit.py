"""The audit log through the real app: every kind of change made over REST and in the console is one entry
with its actor, channel, action, target and settings before/after; secrets only as "changed"; a refused
change leaves no entry; GET /audit pages by cursor and filters, for admins only; the console shows the
same rows. (The command line and `config apply`: tests/unit/test_cli_*.py, tests/unit/test_config_file.py.)"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from flask.testing import FlaskClient
from sqlalchemy import select

from filerelay.api import create_app
from filerelay.clock import FrozenClock
from filerelay.db.models import AuditEvent
from filerelay.db.session import session_scope
from filerelay.runtime import Runtime
from tests.support.audit import audit_entries
from tests.support.console import csrf_token, signed_in
from tests.support.documents import failed_document, statuses
from tests.support.keys import ADMIN_KEY, MEMBER_KEY, OTHER_KEY, VIEWER_KEY, headers
from tests.support.sapclient import SapClient
from tests.support.signing import certificate

API = "/api/acme/production"
AUDIT = f"{API}/audit"
UI = "/ui/acme/production"
ADMIN = {"name": "ops", "key_prefix": ADMIN_KEY[:12]}
CLERK = {"name": "clerk", "key_prefix": MEMBER_KEY[:12]}
SECRET = "S3CRET-never-shown-0001"
OTHER_SECRET = "S3CRET-never-shown-0002"


def every_entry(client: FlaskClient, **filters: str) -> list[dict[str, Any]]:
    return audit_entries(client, ADMIN_KEY, **filters)


def last_id(client: FlaskClient) -> int:
    entries = every_entry(client)
    return entries[0]["id"] if entries else 0


def one_new_entry(client: FlaskClient, since_id: int) -> dict[str, Any]:
    new = [e for e in every_entry(client) if e["id"] > since_id]
    assert len(new) == 1, new
    return new[0]


def change(
    client: FlaskClient, method: str, url: str, *, key: str = ADMIN_KEY, body: Any = None, status: int = 200
) -> tuple[Any, dict[str, Any]]:
    """Make a change over REST; its answer and the one entry it wrote."""
    before = last_id(client)
    reply = client.open(f"{API}{url}", method=method, headers=headers(key), json=body)
    assert reply.status_code == status, reply.get_json(silent=True)
    return reply.get_json(silent=True), one_new_entry(client, before)


def refused(client: FlaskClient, method: str, url: str, status: int, body: Any = None, key: str = ADMIN_KEY) -> None:
    """A change the API refuses: the status, and no entry."""
    before = every_entry(client)
    reply = client.open(f"{API}{url}", method=method, headers=headers(key), json=body)
    assert reply.status_code == status, reply.get_json(silent=True)
    assert every_entry(client) == before


def stored_rows(runtime: Runtime) -> str:
    """Every audit row as stored, as one text to search."""
    with session_scope(runtime.sessions) as session:
        rows = session.scalars(select(AuditEvent))
        return json.dumps(
            [[e.actor, e.actor_prefix, e.via, e.action, e.target, e.detail, e.changes] for e in rows], default=str
        )


def test_every_configuration_change_over_rest_is_one_entry_with_before_and_after(populated: Runtime) -> None:
    client = create_app(runtime=populated).test_client()
    s3 = {"bucket": "archive", "access_key_id": "AKIA1", "secret_access_key": SECRET}

    answer, entry = change(
        client,
        "POST",
        "/destinations",
        body={"id": "dest_new", "name": "New", "kind": "s3", "settings": s3},
        status=201,
    )
    assert SECRET not in json.dumps(answer)
    assert entry["actor"] == ADMIN
    assert (entry["channel"], entry["action"], entry["target"]) == ("api", "destination.create", "dest_new")
    assert entry["changes"]["name"] == {"before": None, "after": "New"}
    assert entry["changes"]["settings.bucket"] == {"before": None, "after": "archive"}
    assert entry["changes"]["settings.secret_access_key"] == "changed"

    _, entry = change(client, "PATCH", "/destinations/dest_new", body={"settings": {"secret_access_key": OTHER_SECRET}})
    assert (entry["action"], entry["changes"]) == ("destination.update", {"settings.secret_access_key": "changed"})
    _, entry = change(client, "PATCH", "/destinations/dest_new", body={"name": "Renamed", "enabled": False})
    assert entry["changes"] == {
        "name": {"before": "New", "after": "Renamed"},
        "enabled": {"before": True, "after": False},
    }

    _, entry = change(client, "POST", "/repositories", body={"repo_id": "Z9", "destinations": ["dest_new"]}, status=201)
    assert (entry["action"], entry["target"]) == ("repository.create", "Z9")
    assert entry["changes"]["signature"] == {"before": None, "after": "required"}
    assert entry["changes"]["destinations"] == {"before": None, "after": ["dest_new"]}
    # Switching signature checks off is one of the changes an auditor looks for.
    _, entry = change(client, "PATCH", "/repositories/Z9", body={"signature": "none"})
    assert (entry["action"], entry["target"]) == ("repository.update", "Z9")
    assert entry["changes"] == {"signature": {"before": "required", "after": "none"}}

    _, entry = change(client, "POST", "/routes", body={"repo_id": "Z9", "destination_id": "dest_folder"}, status=201)
    assert (entry["action"], entry["target"]) == ("route.create", "Z9/dest_folder")
    _, entry = change(client, "DELETE", "/routes/Z9/dest_folder", status=204)
    assert (entry["action"], entry["target"]) == ("route.delete", "Z9/dest_folder")

    _, entry = change(client, "PATCH", "/settings", body={"max_retries": 7, "ttl": "2h"})
    assert (entry["action"], entry["target"]) == ("settings.update", "retry")
    assert entry["changes"] == {
        "max_retries": {"before": 0, "after": 7},
        "ttl": {"before": 3600, "after": 7200},
    }

    answer, entry = change(client, "POST", "/api-keys", body={"name": "robot", "role": "member"}, status=201)
    new_key = answer["data"]["key"]
    assert (entry["action"], entry["target"]) == ("api_key.create", "robot")
    assert entry["changes"]["role"] == {"before": None, "after": "member"}
    assert entry["changes"]["prefix"] == {"before": None, "after": new_key[:12]}
    _, entry = change(client, "DELETE", "/api-keys/robot")
    assert (entry["action"], entry["changes"]) == ("api_key.revoke", {"revoked": {"before": False, "after": True}})

    _, entry = change(client, "DELETE", "/repositories/Z9", status=204)
    assert (entry["action"], entry["changes"]["signature"]) == (
        "repository.delete",
        {"before": "none", "after": None},
    )
    _, entry = change(client, "DELETE", "/destinations/dest_new", status=204)
    assert entry["action"] == "destination.delete"
    assert entry["changes"]["settings.secret_access_key"] == "changed"

    # Secrets and keys: never in a stored row, never in an answer of the audit API.
    text = stored_rows(populated) + json.dumps(every_entry(client))
    for secret in (SECRET, OTHER_SECRET, new_key, "s3cr3t"):
        assert secret not in text


def test_a_refused_change_leaves_no_entry_and_changes_nothing(populated: Runtime) -> None:
    client = create_app(runtime=populated).test_client()
    settings = client.get(f"{API}/settings", headers=headers()).get_json()
    destination = client.get(f"{API}/destinations/dest_folder", headers=headers()).get_json()
    refused(client, "POST", "/destinations", 409, {"id": "dest_folder", "name": "Again", "kind": "pull"})
    refused(client, "POST", "/destinations", 400, {"id": "dest_x", "name": "X", "kind": "nope"})
    refused(client, "PATCH", "/destinations/dest_folder", 400, {"path": "/{nope}"})
    refused(client, "DELETE", "/destinations/dest_folder", 409)  # documents were delivered there
    refused(client, "PATCH", "/settings", 400, {"backoff_base": "2h"})  # above backoff_max
    refused(client, "PATCH", "/repositories/Z1", 400, {"signature": "none", "destinations": ["dest_gone"]})
    refused(client, "POST", "/routes", 409, {"repo_id": "Z1", "destination_id": "dest_folder"})
    refused(client, "POST", "/api-keys", 409, {"name": "ops", "role": "viewer"})
    refused(client, "DELETE", "/api-keys/nobody", 404)
    refused(client, "POST", "/destinations/dest_folder/resume", 409)  # not paused
    refused(client, "DELETE", "/files/doc_unknown", 404)
    refused(client, "POST", "/documents/doc_unknown/retry", 404, key=MEMBER_KEY)
    refused(client, "POST", "/certificates/Z1/" + "ab" * 32 + "/activate", 404)
    assert client.get(f"{API}/settings", headers=headers()).get_json() == settings
    assert client.get(f"{API}/destinations/dest_folder", headers=headers()).get_json() == destination
    repository = client.get(f"{API}/repositories/Z1", headers=headers()).get_json()["data"]
    assert (repository["signature"], repository["destinations"]) == ("none", ["dest_folder", "dest_s3prod"])


def test_every_operation_over_rest_is_one_entry(populated: Runtime, clock: FrozenClock) -> None:
    client = create_app(runtime=populated).test_client()
    document_id = failed_document(populated)

    answer, entry = change(client, "POST", f"/documents/{document_id}/retry", key=MEMBER_KEY)
    assert answer["data"]["attributes"]["status"] == "retrying"
    assert (entry["actor"], entry["channel"], entry["action"], entry["target"]) == (
        CLERK,
        "api",
        "document.retry",
        document_id,
    )
    assert entry["detail"] == {"deliveries": 1}
    refused(client, "POST", f"/documents/{document_id}/retry", 409, key=MEMBER_KEY)  # nothing failed any more

    answer, entry = change(client, "POST", "/documents/retry?repo_id=Z1", key=MEMBER_KEY)
    assert answer["data"]["attributes"] == {"documents": 2, "deliveries": 2}
    assert (entry["action"], entry["target"], entry["detail"]) == (
        "documents.retry",
        "documents",
        {"filters": {"repo_id": "Z1"}, "deliveries": 2},
    )

    _, entry = change(client, "POST", "/destinations/dest_s3prod/pause")
    assert (entry["action"], entry["target"]) == ("destination.pause", "dest_s3prod")
    assert entry["changes"] == {"paused": {"before": False, "after": True}}
    refused(client, "POST", "/destinations/dest_s3prod/pause", 409)
    clock.advance(60)
    _, entry = change(client, "POST", "/destinations/dest_s3prod/resume")
    assert (entry["action"], entry["changes"]) == ("destination.resume", {"paused": {"before": True, "after": False}})

    _, entry = change(client, "DELETE", f"/files/{document_id}", status=204)
    assert (entry["actor"], entry["action"], entry["target"]) == (ADMIN, "file.delete", document_id)
    assert entry["changes"] == {"deleted": {"before": False, "after": True}}
    assert client.get(f"{API}/files/{document_id}", headers=headers()).get_json()["data"]["status"] == "deleted"
    # Deleting it again changes nothing, and records nothing.
    refused(client, "DELETE", f"/files/{document_id}", 204)


def test_certificate_switches_are_entries_over_rest_and_in_the_console(populated: Runtime, server: str) -> None:
    cert = certificate(populated.clock.now())
    der = cert.public_bytes(serialization.Encoding.DER)
    sap = SapClient(f"{server}/archivelink/acme/production")
    assert sap.raw("PUT", "putCert&pVersion=0047&contRep=Z1&authId=CN%3DS4H", der).status == 200
    fingerprint = cert.fingerprint(hashes.SHA256()).hex()
    client = create_app(runtime=populated).test_client()

    _, entry = change(client, "POST", f"/certificates/Z1/{fingerprint.upper()}/activate")
    assert (entry["action"], entry["target"]) == ("certificate.activate", f"Z1/{fingerprint}")
    assert entry["changes"] == {"active": {"before": False, "after": True}}
    assert entry["detail"] == {"subject": "CN=S4H"}

    admin = signed_in(populated, ADMIN_KEY)
    token = csrf_token(admin, f"{UI}/certificates")
    before = last_id(client)
    assert admin.post(f"{UI}/certificates/Z1/{fingerprint}/revoke", data={"csrf_token": token}).status_code == 302
    entry = one_new_entry(client, before)
    assert (entry["actor"], entry["channel"], entry["action"]) == (ADMIN, "console", "certificate.revoke")
    assert entry["changes"] == {"active": {"before": True, "after": False}}


def test_console_operations_are_entries_and_the_page_shows_the_apis_rows(populated: Runtime) -> None:
    client = create_app(runtime=populated).test_client()
    document_id = failed_document(populated)
    member = signed_in(populated, MEMBER_KEY)
    admin = signed_in(populated, ADMIN_KEY)

    before = last_id(client)
    token = csrf_token(member, f"{UI}/documents/{document_id}")
    assert member.post(f"{UI}/documents/{document_id}/retry", data={"csrf_token": token}).status_code == 302
    entry = one_new_entry(client, before)
    assert (entry["actor"], entry["channel"], entry["action"], entry["target"]) == (
        CLERK,
        "console",
        "document.retry",
        document_id,
    )

    before = last_id(client)
    token = csrf_token(member, f"{UI}/documents/retry?status=failed")
    reply = member.post(f"{UI}/documents/retry", data={"csrf_token": token, "status": "failed"})
    assert reply.status_code == 302
    entry = one_new_entry(client, before)
    assert (entry["channel"], entry["action"], entry["detail"]) == (
        "console",
        "documents.retry",
        {"filters": {"status": "failed"}, "deliveries": 2},
    )

    token = csrf_token(admin, f"{UI}/destinations")
    for action in ("pause", "resume"):
        before = last_id(client)
        assert admin.post(f"{UI}/destinations/dest_s3prod/{action}", data={"csrf_token": token}).status_code == 302
        entry = one_new_entry(client, before)
        assert (entry["actor"], entry["channel"], entry["action"]) == (ADMIN, "console", f"destination.{action}")
    # A refused switch: no entry.
    before_refused = every_entry(client)
    assert admin.post(f"{UI}/destinations/dest_s3prod/resume", data={"csrf_token": token}).status_code == 302
    assert every_entry(client) == before_refused

    # The console's page and the API list the same rows, in the same order.
    page = admin.get(f"{UI}/audit?per_page=100").get_data(as_text=True)
    shown = re.findall(r'<tr data-action="([^"]+)" data-target="([^"]*)">', page)
    assert shown == [(e["action"], e["target"]) for e in every_entry(client)]
    assert "fr_live_admi…" in page
    assert "→" in page
    filtered = admin.get(f"{UI}/audit?action=destination.pause").get_data(as_text=True)
    assert re.findall(r'<tr data-action="([^"]+)"', filtered) == ["destination.pause"]
    assert admin.get(f"{UI}/audit?action=nope").status_code == 400
    assert signed_in(populated, MEMBER_KEY).get(f"{UI}/audit").status_code == 403
    assert signed_in(populated, VIEWER_KEY).get(f"{UI}/audit").status_code == 403
    assert statuses(populated, "dest_s3prod") == ["retrying"] * 3


def test_paging_by_cursor_and_each_filter(populated: Runtime, clock: FrozenClock) -> None:
    client = create_app(runtime=populated).test_client()
    start = clock.now()
    for n in range(7):
        clock.advance(60)
        # Two changes in the same second: the id orders them.
        change(client, "PATCH", "/destinations/dest_folder", body={"name": f"Folder {n}"})
        change(client, "PATCH", "/settings", body={"max_retries": n + 1})
    everything = every_entry(client)
    assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)
    # Three at a time, following next_cursor: every entry once, newest first.
    walked: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"per_page": 3} | ({"cursor": cursor} if cursor else {})
        body = client.get(AUDIT, query_string=params, headers=headers()).get_json()
        assert len(body["data"]) <= 3
        assert body["meta"]["per_page"] == 3
        walked += body["data"]
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            break
    assert walked == everything

    renamed = every_entry(client, action="destination.update")
    assert [e["changes"]["name"]["after"] for e in renamed] == [f"Folder {n}" for n in reversed(range(7))]
    assert {e["target"] for e in every_entry(client, target="retry")} == {"retry"}
    settings = every_entry(client, target="retry", action="settings.update")
    assert [e["changes"]["max_retries"]["after"] for e in settings if e["actor"] == ADMIN] == list(range(7, 0, -1))
    since = (start + dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    recent = every_entry(client, since=since)
    assert len(recent) == 6
    assert all(e["at"] >= since for e in recent)

    for params, parameter in (
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"action": "document.delete"}, "action"),
        ({"since": "yesterday"}, "since"),
        ({"per_page": 101}, "per_page"),
        ({"order": "asc"}, "order"),
    ):
        reply = client.get(AUDIT, query_string=params, headers=headers())
        assert reply.status_code == 400, params
        assert reply.get_json()["errors"][0]["status"] == "400"
        assert parameter in json.dumps(reply.get_json()), params


def test_only_admins_read_it_only_their_workspace_and_nothing_writes_it(populated: Runtime) -> None:
    client = create_app(runtime=populated).test_client()
    assert client.get(AUDIT, headers=headers(VIEWER_KEY)).status_code == 403
    assert client.get(AUDIT, headers=headers(MEMBER_KEY)).status_code == 403
    assert client.get(AUDIT, headers=headers(OTHER_KEY)).status_code == 404
    assert client.get(AUDIT).status_code == 401
    # globex/main's entries (its config file) are its own.
    theirs = client.get("/api/globex/main/audit?per_page=100", headers=headers(OTHER_KEY)).get_json()["data"]
    ours = every_entry(client)
    assert theirs
    assert ours
    assert not {e["id"] for e in theirs} & {e["id"] for e in ours}
    assert {e["target"] for e in theirs} >= {"globex/main", "dest_folder", "Z1"}
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert client.open(AUDIT, method=method, headers=headers(), json={}).status_code == 405
        assert client.open(f"{AUDIT}/{ours[0]['id']}", method=method, headers=headers(), json={}).status_code == 404
    assert every_entry(client) == ours
    spec = client.get("/openapi.json").get_json()
    assert set(spec["paths"]["/api/{owner}/{slug}/audit"]) - {"parameters"} == {"get"}
