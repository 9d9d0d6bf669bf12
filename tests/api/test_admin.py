"""The configuration endpoints over the real app: round trips, write-only secrets, the test action,
keys that work and stop working, roles, and bad bodies in the contract's error shape."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import textwrap
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from filerelay.api import create_app
from filerelay.clock import FrozenClock
from filerelay.config_file import apply, load
from filerelay.db.models import Destination
from filerelay.db.session import session_scope
from filerelay.delivery import service, sweep
from filerelay.runtime import Runtime
from tests.support.documents import accept, delivery
from tests.support.keys import ADMIN_KEY
from tests.support.policy import LOOPBACK
from tests.support.sapclient import SapClient
from tests.support.wakeups import take_wakeups, woken_kinds

BASE = "/api/acme/production"
S3_SECRET = "s3cr3t"  # the configured fixture's secret for dest_s3prod
NEW_SECRET = "n3w-s3cret-value-0123456789"
OTHER_KEY = "fr_live_other_workspace_0123456789"


@pytest.fixture
def client(configured: Runtime) -> FlaskClient:
    return create_app(runtime=configured).test_client()


def call(
    client: FlaskClient, method: str, path: str, body: Any = None, *, key: str = ADMIN_KEY, **kwargs: Any
) -> TestResponse:
    if body is not None:
        kwargs["json"] = body
    return client.open(BASE + path, method=method, headers={"Authorization": f"Bearer {key}"}, **kwargs)


def ok(response: TestResponse, status: int = 200) -> Any:
    assert response.status_code == status, response.get_data(as_text=True)
    return None if status == 204 else response.get_json()["data"]


def stored_secrets(runtime: Runtime, destination_id: str) -> dict[str, Any]:
    with session_scope(runtime.sessions) as session:
        row = session.scalars(select(Destination).where(Destination.public_id == destination_id)).one()
        return dict(row.secrets)


S3_BODY = {
    "id": "dest_s3new",
    "name": "S3 New",
    "kind": "s3",
    "settings": {
        "bucket": "archive-two",
        "endpoint_url": "http://127.0.0.1:9",
        "access_key_id": "AKIA-TEST",
        "secret_access_key": NEW_SECRET,
    },
    "path": "/{repo_id}/{doc_id}{ext}",
}


# --- destinations -----------------------------------------------------------------------------------

RUNNING = {
    "paused": False,
    "paused_at": None,
    "breaker": "closed",
    "breaker_opened_at": None,
    "consecutive_failures": 0,
    "held_since": None,
}


def test_destination_create_get_patch_delete_round_trip(client: FlaskClient, configured: Runtime) -> None:
    created = ok(call(client, "POST", "/destinations", S3_BODY), 201)
    assert created == {
        "id": "dest_s3new",
        "name": "S3 New",
        "kind": "s3",
        "settings": {
            "bucket": "archive-two",
            "endpoint_url": "http://127.0.0.1:9",
            "region": "us-east-1",
            "access_key_id": "AKIA-TEST",
        },
        "secrets_set": ["secret_access_key"],
        "path": "/{repo_id}/{doc_id}{ext}",
        "enabled": True,
        "max_retries": None,
        "retry_ttl": None,
        "retry_ttl_seconds": None,
        "created_at": "2026-04-04T10:30:00Z",
        "updated_at": "2026-04-04T10:30:00Z",
        "health": RUNNING,
    }
    assert ok(call(client, "GET", "/destinations/dest_s3new")) == created
    assert [d["id"] for d in ok(call(client, "GET", "/destinations"))] == ["dest_folder", "dest_s3new", "dest_s3prod"]

    configured.clock.advance(60)  # type: ignore[attr-defined]
    patched = ok(
        call(
            client,
            "PATCH",
            "/destinations/dest_s3new",
            {"name": "S3 Renamed", "settings": {"bucket": "archive-three"}, "max_retries": 2, "retry_ttl": "2h"},
        )
    )
    assert patched["name"] == "S3 Renamed"
    assert patched["settings"]["bucket"] == "archive-three"
    assert patched["settings"]["access_key_id"] == "AKIA-TEST"  # merged, not replaced
    assert (patched["max_retries"], patched["retry_ttl"], patched["retry_ttl_seconds"]) == (2, "2h", 7200)
    assert patched["updated_at"] == "2026-04-04T10:31:00Z"
    assert patched["created_at"] == "2026-04-04T10:30:00Z"

    cleared = ok(call(client, "PATCH", "/destinations/dest_s3new", {"max_retries": None, "retry_ttl": None}))
    assert (cleared["max_retries"], cleared["retry_ttl"]) == (None, None)

    ok(call(client, "DELETE", "/destinations/dest_s3new"), 204)
    assert call(client, "GET", "/destinations/dest_s3new").status_code == 404
    assert call(client, "DELETE", "/destinations/dest_s3new").status_code == 404


def test_patch_without_secrets_keeps_them_and_a_new_secret_replaces_them(
    client: FlaskClient, configured: Runtime
) -> None:
    ok(call(client, "PATCH", "/destinations/dest_s3prod", {"settings": {"bucket": "other-bucket"}, "enabled": False}))
    assert stored_secrets(configured, "dest_s3prod") == {"secret_access_key": S3_SECRET}

    ok(call(client, "PATCH", "/destinations/dest_s3prod", {"settings": {"secret_access_key": NEW_SECRET}}))
    assert stored_secrets(configured, "dest_s3prod") == {"secret_access_key": NEW_SECRET}

    # A secret set to null is no longer set: here that leaves half a key pair, which is refused.
    cleared = call(client, "PATCH", "/destinations/dest_s3prod", {"settings": {"secret_access_key": None}})
    assert cleared.status_code == 400
    assert cleared.get_json()["errors"][0]["detail"] == (
        "settings.secret_access_key: give both access_key_id and secret_access_key"
    )
    assert stored_secrets(configured, "dest_s3prod") == {"secret_access_key": NEW_SECRET}


def test_secrets_appear_in_no_response(client: FlaskClient) -> None:
    bodies = [
        call(client, "POST", "/destinations", S3_BODY),
        call(client, "GET", "/destinations"),
        call(client, "GET", "/destinations/dest_s3prod"),
        call(client, "GET", "/destinations/dest_s3new"),
        call(client, "PATCH", "/destinations/dest_s3new", {"name": "x"}),
        call(client, "PATCH", "/destinations/dest_s3new", {"settings": {"secret_access_key": NEW_SECRET + "2"}}),
        call(client, "POST", "/destinations/dest_s3prod/test"),
        call(client, "GET", "/repositories"),
        call(client, "GET", "/routes"),
    ]
    assert all(r.status_code < 500 for r in bodies)
    text = "".join(r.get_data(as_text=True) for r in bodies)
    for secret in (S3_SECRET, NEW_SECRET):
        assert secret not in text


def test_changing_kind_starts_from_the_new_kinds_settings(client: FlaskClient, tmp_path: Any) -> None:
    missing = call(client, "PATCH", "/destinations/dest_s3prod", {"kind": "folder"})
    assert missing.status_code == 400
    assert missing.get_json()["errors"][0]["source"] == {"pointer": "/settings/root"}

    folder = ok(
        call(client, "PATCH", "/destinations/dest_s3prod", {"kind": "folder", "settings": {"root": str(tmp_path)}})
    )
    assert (folder["kind"], folder["settings"], folder["secrets_set"]) == ("folder", {"root": str(tmp_path)}, [])


def test_the_test_action_reports_ok_and_a_clear_failure(client: FlaskClient) -> None:
    assert ok(call(client, "POST", "/destinations/dest_folder/test")) == {
        "ok": True,
        "detail": "dest_folder: the folder destination passed its check",
    }
    failed = ok(call(client, "POST", "/destinations/dest_s3prod/test"))
    assert failed["ok"] is False
    assert failed["detail"].startswith("bucket archive is not usable: EndpointConnectionError")
    assert "http://127.0.0.1:9" in failed["detail"]
    assert call(client, "POST", "/destinations/dest_nope/test").status_code == 404


def test_a_destination_or_repository_with_deliveries_cannot_be_deleted(
    client: FlaskClient, sap: SapClient, configured: Runtime
) -> None:
    assert sap.create("DOC1", "data", b"%PDF-1.4 x", "application/pdf").status == 201

    refused = call(client, "DELETE", "/destinations/dest_folder")
    assert refused.status_code == 409
    assert refused.get_json()["errors"][0]["detail"] == (
        "destination dest_folder has 1 delivery record(s), which deleting it would erase; "
        'disable it instead with PATCH {"enabled": false}'
    )
    assert ok(call(client, "PATCH", "/destinations/dest_folder", {"enabled": False}))["enabled"] is False

    refused = call(client, "DELETE", "/repositories/Z1")
    assert refused.status_code == 409
    assert refused.get_json()["errors"][0]["detail"] == "repository Z1 holds documents; it cannot be deleted"
    assert [r["repo_id"] for r in ok(call(client, "GET", "/repositories"))] == ["Z1", "Z2"]


def test_deleting_a_destination_unwires_it(client: FlaskClient) -> None:
    ok(call(client, "DELETE", "/destinations/dest_s3prod"), 204)
    assert ok(call(client, "GET", "/routes")) == [{"repo_id": "Z1", "destination_id": "dest_folder"}]
    assert ok(call(client, "GET", "/repositories/Z1"))["destinations"] == ["dest_folder"]


# --- repositories and routes ------------------------------------------------------------------------


def test_repository_round_trip_and_its_wiring(client: FlaskClient) -> None:
    created = ok(
        call(
            client,
            "POST",
            "/repositories",
            {"repo_id": "Z3", "description": "Orders", "signature": "optional", "destinations": ["dest_folder"]},
        ),
        201,
    )
    assert created == {
        "repo_id": "Z3",
        "description": "Orders",
        "signature": "optional",
        "metadata_wait": "0s",
        "metadata_wait_seconds": 0,
        "destinations": ["dest_folder"],
        "created_at": "2026-04-04T10:30:00Z",
    }
    assert ok(call(client, "GET", "/repositories/Z3")) == created

    rewired = ok(call(client, "PATCH", "/repositories/Z3", {"destinations": ["dest_s3prod"], "signature": "none"}))
    assert (rewired["destinations"], rewired["signature"], rewired["description"]) == (
        ["dest_s3prod"],
        "none",
        "Orders",
    )
    assert {"repo_id": "Z3", "destination_id": "dest_s3prod"} in ok(call(client, "GET", "/routes"))

    assert call(client, "POST", "/repositories", {"repo_id": "Z3"}).status_code == 409
    ok(call(client, "DELETE", "/repositories/Z3"), 204)
    assert call(client, "GET", "/repositories/Z3").status_code == 404
    assert all(r["repo_id"] != "Z3" for r in ok(call(client, "GET", "/routes")))


def test_a_repository_waits_for_metadata_as_long_as_set(client: FlaskClient) -> None:
    created = ok(call(client, "POST", "/repositories", {"repo_id": "Z5", "metadata_wait": "10m"}), 201)
    assert (created["metadata_wait"], created["metadata_wait_seconds"]) == ("10m", 600)
    changed = ok(call(client, "PATCH", "/repositories/Z5", {"metadata_wait": 90}))
    assert (changed["metadata_wait"], changed["metadata_wait_seconds"]) == ("90s", 90)
    assert ok(call(client, "PATCH", "/repositories/Z5", {"metadata_wait": "0"}))["metadata_wait_seconds"] == 0
    for bad in ("-1s", "8d", "soon", True):
        reply = call(client, "PATCH", "/repositories/Z5", {"metadata_wait": bad})
        assert reply.status_code == 400, bad
        assert reply.get_json()["errors"][0]["source"] == {"pointer": "/metadata_wait"}
    assert ok(call(client, "GET", "/repositories/Z5"))["metadata_wait_seconds"] == 0


def test_a_new_repository_defaults_to_required_signatures_and_no_wiring(client: FlaskClient) -> None:
    created = ok(call(client, "POST", "/repositories", {"repo_id": "Z4"}), 201)
    assert (created["signature"], created["description"], created["destinations"]) == ("required", "", [])
    assert created["metadata_wait_seconds"] == 0


def test_routes_add_list_remove(client: FlaskClient) -> None:
    assert ok(call(client, "GET", "/routes")) == [
        {"repo_id": "Z1", "destination_id": "dest_folder"},
        {"repo_id": "Z1", "destination_id": "dest_s3prod"},
    ]
    route = {"repo_id": "Z2", "destination_id": "dest_folder"}
    assert ok(call(client, "POST", "/routes", route), 201) == route
    assert call(client, "POST", "/routes", route).status_code == 409
    assert ok(call(client, "GET", "/repositories/Z2"))["destinations"] == ["dest_folder"]

    ok(call(client, "DELETE", "/routes/Z2/dest_folder"), 204)
    assert call(client, "DELETE", "/routes/Z2/dest_folder").status_code == 404
    assert call(client, "DELETE", "/routes/Z9/dest_folder").status_code == 404
    assert len(ok(call(client, "GET", "/routes"))) == 2


# --- settings ---------------------------------------------------------------------------------------


def test_settings_answer_seconds_and_short_form_and_accept_both(client: FlaskClient) -> None:
    assert ok(call(client, "GET", "/settings")) == {
        "max_retries": 3,
        "ttl": "1h",
        "ttl_seconds": 3600,
        "backoff_base": "1s",
        "backoff_base_seconds": 1,
        "backoff_max": "10s",
        "backoff_max_seconds": 10,
    }
    changed = ok(call(client, "PATCH", "/settings", {"ttl": "24h", "backoff_max": 90, "max_retries": 7}))
    assert (changed["ttl"], changed["ttl_seconds"]) == ("1d", 86400)
    assert (changed["backoff_max"], changed["backoff_max_seconds"]) == ("90s", 90)
    assert (changed["max_retries"], changed["backoff_base_seconds"]) == (7, 1)
    assert ok(call(client, "GET", "/settings")) == changed


def test_settings_that_break_a_rule_between_two_values_change_nothing(client: FlaskClient) -> None:
    before = ok(call(client, "GET", "/settings"))
    refused = call(client, "PATCH", "/settings", {"backoff_base": "1h", "ttl": "2d"})
    assert refused.status_code == 400
    assert refused.get_json()["errors"][0]["detail"] == "backoff_base must not exceed backoff_max"
    assert ok(call(client, "GET", "/settings")) == before


# --- API keys ---------------------------------------------------------------------------------------


def test_a_created_key_works_once_shown_and_stops_working_when_revoked(client: FlaskClient) -> None:
    created = ok(call(client, "POST", "/api-keys", {"name": "robot", "role": "viewer"}), 201)
    key = created["key"]
    assert key.startswith("fr_live_")
    assert len(key) >= 40
    assert created["prefix"] == key[:12]
    assert (created["role"], created["revoked_at"], created["last_used_at"]) == ("viewer", None, None)

    assert call(client, "GET", "/documents", key=key).status_code == 200
    listing = call(client, "GET", "/api-keys")
    assert key not in listing.get_data(as_text=True)
    assert hashlib.sha256(key.encode()).hexdigest() not in listing.get_data(as_text=True)
    robot = next(k for k in listing.get_json()["data"] if k["name"] == "robot")
    assert set(robot) == {"name", "role", "prefix", "created_at", "last_used_at", "revoked_at"}
    assert robot["last_used_at"] == "2026-04-04T10:30:00Z"

    revoked = ok(call(client, "DELETE", "/api-keys/robot"))
    assert revoked["revoked_at"] == "2026-04-04T10:30:00Z"
    assert call(client, "GET", "/documents", key=key).status_code == 401
    assert ok(call(client, "DELETE", "/api-keys/robot"))["revoked_at"] == "2026-04-04T10:30:00Z"
    assert call(client, "POST", "/api-keys", {"name": "robot", "role": "admin"}).status_code == 409
    assert call(client, "DELETE", "/api-keys/nobody").status_code == 404


def test_a_key_whose_name_has_a_slash_can_still_be_revoked(client: FlaskClient) -> None:
    ok(call(client, "POST", "/api-keys", {"name": "erp/sap", "role": "member"}), 201)
    assert ok(call(client, "DELETE", "/api-keys/erp/sap"))["name"] == "erp/sap"


# Real ids in every URL, so that a refusal cannot pass for "no such thing".
REAL_IDS = {"owner": "acme", "slug": "production", "repo_id": "Z1", "name": "ops"}


def admin_routes(client: FlaskClient) -> list[tuple[str, str]]:
    app = client.application
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("admin."):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: REAL_IDS.get(m[1], "dest_folder"), rule.rule)
            assert "<" not in path
            found += [(m, path) for m in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})]
    return found


@pytest.fixture
def other_workspace(configured: Runtime) -> None:
    config = f"""
    workspaces:
      - owner: globex
        slug: main
        api_keys: [{{name: ops, role: admin, key: "{OTHER_KEY}"}}]
    """
    with session_scope(configured.sessions) as session:
        apply(session, load(textwrap.dedent(config), {}), now=configured.clock.now(), policy=LOOPBACK)


def test_member_and_viewer_keys_get_403_and_other_workspaces_404_everywhere(
    client: FlaskClient, other_workspace: None
) -> None:
    routes = admin_routes(client)
    assert len(routes) == 21
    keys = {
        role: ok(call(client, "POST", "/api-keys", {"name": role, "role": role}), 201)["key"]
        for role in ("viewer", "member")
    }
    for method, path in routes:
        for role, key in keys.items():
            response = client.open(path, method=method, json={}, headers={"x-api-key": key})
            assert response.status_code == 403, (method, path, role)
        response = client.open(path, method=method, json={}, headers={"x-api-key": OTHER_KEY})
        assert response.status_code == 404, (method, path)
    # Nothing was changed by the refused calls: the admin key still works and its destinations are all there.
    assert len(ok(call(client, "GET", "/destinations"))) == 2


# --- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "pointer", "detail"),
    [
        ("POST", "/destinations", {**S3_BODY, "kind": "ftp"}, "/kind", "unknown destination kind 'ftp'"),
        ("POST", "/destinations", {**S3_BODY, "path": "/{nope}"}, "/path", "unknown field {nope}"),
        ("POST", "/destinations", {**S3_BODY, "path": "/fixed.pdf"}, "/path", "names no field"),
        ("POST", "/destinations", {**S3_BODY, "name": 5}, "/name", "Not a valid string"),
        ("POST", "/destinations", {**S3_BODY, "id": "bad id!"}, "/id", "letters, digits"),
        ("POST", "/destinations", {**S3_BODY, "settings": {"bucket": "A"}}, "/settings/bucket", "not a valid bucket"),
        ("POST", "/destinations", {**S3_BODY, "settings": {"bucket": "ok-b", "x": 1}}, "/settings/x", "Unknown field"),
        ("POST", "/destinations", {**S3_BODY, "id": "dest_folder"}, None, "a destination dest_folder already exists"),
        ("POST", "/destinations", {**S3_BODY, "surprise": 1}, "/surprise", "Unknown field"),
        ("PATCH", "/destinations/dest_folder", {"retry_ttl": "soon"}, "/retry_ttl", "'soon' is not a duration"),
        ("PATCH", "/destinations/dest_folder", {"max_retries": 101}, "/max_retries", "less than or equal to 100"),
        (
            "POST",
            "/repositories",
            {"repo_id": "Z5", "destinations": ["dest_gone"]},
            "/destinations",
            "no destination dest_gone",
        ),
        ("POST", "/repositories", {"repo_id": "Z5", "signature": "maybe"}, "/signature", "Must be one of"),
        (
            "POST",
            "/routes",
            {"repo_id": "Z2", "destination_id": "dest_gone"},
            "/destination_id",
            "no destination dest_gone",
        ),
        ("POST", "/routes", {"repo_id": "ZZ", "destination_id": "dest_folder"}, "/repo_id", "no repository ZZ"),
        ("PATCH", "/settings", {"ttl": "soon"}, "/ttl", "'soon' is not a duration"),
        ("PATCH", "/settings", {"ttl": "9999999999d"}, "/ttl", "a duration must not exceed 3650d"),
        ("PATCH", "/destinations/dest_folder", {"path": "/{doc_id}" + "x" * 600}, "/path", "Length must be between"),
        ("PATCH", "/destinations/dest_folder", {"name": "a\x00b"}, "/name", "must not contain NUL characters"),
        ("PATCH", "/repositories/Z1", {"description": "a\x00b"}, "/description", "must not contain NUL"),
        ("PATCH", "/settings", {"max_retries": "many"}, "/max_retries", "Not a valid integer"),
        ("POST", "/api-keys", {"name": "x", "role": "root"}, "/role", "Must be one of"),
        ("POST", "/api-keys", {"name": "", "role": "admin"}, "/name", "Length must be between 1 and 100"),
        ("POST", "/api-keys", ["name", "role"], None, "Invalid input type"),
    ],
)
def test_bad_bodies_are_400_in_the_error_shape(
    client: FlaskClient, method: str, path: str, body: Any, pointer: str | None, detail: str
) -> None:
    response = call(client, method, path, body)
    expected = 409 if "already exists" in detail else 400
    assert response.status_code == expected, response.get_data(as_text=True)
    (error,) = response.get_json()["errors"]
    assert error["status"] == str(expected)
    assert {"code", "title", "detail"} <= set(error)
    assert detail in error["detail"]
    if pointer is not None:
        assert error["source"] == {"pointer": pointer}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/destinations/a%00b"),
        ("POST", "/destinations/a%00b/test"),
        ("PATCH", "/repositories/a%00b"),
        ("DELETE", "/routes/Z1/a%00b"),
        ("DELETE", "/api-keys/a%00b"),
    ],
)
def test_an_id_that_cannot_exist_is_404_on_every_database(client: FlaskClient, method: str, path: str) -> None:
    # PostgreSQL refuses NUL in a query: the lookup must answer "no such thing", not fail.
    assert call(client, method, path, {}).status_code == 404


@pytest.mark.parametrize(
    ("path", "data", "content_type"),
    [
        ("/api-keys", "name=x&role=admin", "application/x-www-form-urlencoded"),
        ("/destinations", '{"id": "x"', "application/json"),
        ("/settings", "max_retries: 3", "text/plain"),
    ],
)
def test_a_body_that_is_not_json_is_400(client: FlaskClient, path: str, data: str, content_type: str) -> None:
    method = "PATCH" if path == "/settings" else "POST"
    response = call(client, method, path, data=data, content_type=content_type)
    assert response.status_code == 400
    (error,) = response.get_json()["errors"]
    assert error["status"] == "400"
    assert "JSON" in error["detail"]
    assert ok(call(client, "GET", "/settings"))["max_retries"] == 3


# --- pause and resume -------------------------------------------------------------------------------


def test_a_paused_destination_holds_its_deliveries_and_resume_sends_them_with_their_ttl_moved(
    client: FlaskClient, configured: Runtime, clock: FrozenClock
) -> None:
    outcome, _ = accept(configured, "DOC1", b"%PDF-1.4 paused")
    folder = next(d for d, kind in outcome.enqueue if kind == "folder")
    expires = delivery(configured, folder).expires_at
    assert expires is not None

    paused = ok(call(client, "POST", "/destinations/dest_folder/pause"))
    assert paused["health"] == RUNNING | {
        "paused": True,
        "paused_at": "2026-04-04T10:30:00Z",
        "held_since": "2026-04-04T10:30:00Z",
    }
    assert service.run(configured, folder) is False  # held: not attempted
    assert call(client, "POST", "/destinations/dest_folder/pause").status_code == 409

    clock.advance(2 * 3600)  # past the TTL (1 h)
    with session_scope(configured.sessions) as session:
        assert sweep.expire(session, now=clock.now(), limit=10) == 1  # the S3 delivery; not the held one
    take_wakeups(configured)  # a worker took every wake-up sent so far

    resumed = ok(call(client, "POST", "/destinations/dest_folder/resume"))

    assert resumed["health"] == RUNNING
    assert delivery(configured, folder).expires_at == expires + dt.timedelta(hours=2)
    assert woken_kinds(configured) == ["folder"]  # woken at once
    assert service.run(configured, folder)
    assert delivery(configured, folder).status == "delivered"
    assert call(client, "POST", "/destinations/dest_folder/resume").status_code == 409


def test_pause_of_an_unknown_destination_is_404_and_a_pull_one_409(client: FlaskClient) -> None:
    assert call(client, "POST", "/destinations/dest_nope/pause").status_code == 404
    pull = {"id": "dest_erp", "name": "ERP", "kind": "pull", "settings": {}}
    ok(call(client, "POST", "/destinations", pull), 201)
    refused = call(client, "POST", "/destinations/dest_erp/pause")
    assert refused.status_code == 409
    assert "pull destination" in refused.get_json()["errors"][0]["detail"]
