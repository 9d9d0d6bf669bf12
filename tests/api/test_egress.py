"""The egress guard through the real API over HTTP: a destination's address the operator's policy refuses
is a 400 when written (POST, PATCH, and a config file applied), and neither `test` nor a delivery's
recorded error repeats what the peer answered, nor the credentials a URL carries.

The tests that write run the API under the egress defaults (DEFAULT); those that deliver or `test`
against servers on loopback run it under the tests' LOOPBACK policy, which allows loopback as
FILERELAY_EGRESS_ALLOW=127.0.0.0/8,::1 would."""

from __future__ import annotations

import base64
import json
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import select
from werkzeug.serving import make_server

from filerelay.api import create_app
from filerelay.config_file import ConfigError, apply, load
from filerelay.db.models import Destination
from filerelay.db.session import session_scope
from filerelay.delivery import service
from filerelay.runtime import Runtime, build_runtime
from tests.support.answering_server import SECRET, Answering, answering_server
from tests.support.clock import half
from tests.support.destination_kinds import PDF, create, wire
from tests.support.documents import delivery
from tests.support.fake_gcs import service_account
from tests.support.keys import ADMIN_KEY
from tests.support.policy import DEFAULT

BASE = "/api/acme/production"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
REFUSED = [
    "169.254.169.254",
    "127.0.0.1",
    "[::1]",
    "[::ffff:7f00:1]",  # ::ffff:127.0.0.1, spelt as a URL may carry it
    "0.0.0.0",  # connecting to it reaches this host
    "localhost",
]


@pytest.fixture
def serve() -> Iterator[Any]:
    """Serves a runtime's API on loopback, over real HTTP; yields a function that starts one."""
    servers: list[Any] = []

    def start(runtime: Runtime) -> str:
        srv = make_server("127.0.0.1", 0, create_app(runtime=runtime), threaded=True)
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        servers.append(srv)
        return f"http://127.0.0.1:{srv.server_port}"

    yield start
    for srv in servers:
        srv.shutdown()


@pytest.fixture
def strict(configured: Runtime, serve: Any) -> Iterator[str]:
    """The API of the configured workspace, run under the egress defaults."""
    runtime = build_runtime(configured.settings.with_overrides(operator_policy=DEFAULT), clock=configured.clock)
    yield serve(runtime)
    runtime.close()


def call(base: str, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(
        method, base + BASE + path, json=body, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    )


def refused(reply: requests.Response, field: str) -> None:
    """A 400 naming the field, for the egress policy's reason (not any other problem with the value)."""
    assert reply.status_code == 400, reply.text
    [error] = reply.json()["errors"]
    assert field in error["detail"]
    assert "may not reach" in error["detail"] or "names this host" in error["detail"]


@pytest.mark.parametrize("host", REFUSED)
def test_a_webhook_url_the_policy_refuses_is_a_400_when_posted(strict: str, host: str) -> None:
    body = {"id": "dest_hook", "name": "Hook", "kind": "webhook"}
    settings = {"url": f"http://{host}:8080/in", "secret": WEBHOOK_SECRET}
    refused(call(strict, "POST", "/destinations", {**body, "settings": settings}), "url")
    assert call(strict, "GET", "/destinations/dest_hook").status_code == 404


@pytest.mark.parametrize("host", REFUSED)
def test_an_endpoint_the_policy_refuses_is_a_400_when_patched(strict: str, host: str) -> None:
    reply = call(strict, "PATCH", "/destinations/dest_s3prod", {"settings": {"endpoint_url": f"http://{host}:9"}})
    refused(reply, "endpoint_url")


def test_a_name_is_not_resolved_when_written(strict: str) -> None:
    settings = {"url": "https://hooks.erp.example.com/in", "secret": WEBHOOK_SECRET}
    reply = call(
        strict, "POST", "/destinations", {"id": "dest_hook", "name": "H", "kind": "webhook", "settings": settings}
    )
    assert reply.status_code == 201, reply.text


def test_a_config_file_naming_a_refused_address_is_refused(configured: Runtime) -> None:
    config = textwrap.dedent(
        """
        workspaces:
          - owner: acme
            slug: production
            destinations:
              - {id: dest_mail, name: Mail, kind: email, smtp_host: "::ffff:169.254.169.254",
                 from: sap@acme.example, to: [ap@acme.example]}
        """
    )
    with session_scope(configured.sessions) as session, pytest.raises(ConfigError, match="smtp_host"):
        apply(session, load(config, {}), now=configured.clock.now(), policy=DEFAULT)


def test_test_shows_no_body_from_the_peer(configured: Runtime, serve: Any) -> None:
    """A GCS destination whose key's token_uri answers an error with a secret in its body: `test`
    (run by the API under LOOPBACK, which lets it reach the peer) names the OAuth error code only."""
    answer = Answering(
        status=400,
        body=json.dumps({"error": "invalid_grant", "error_description": SECRET}).encode(),
        headers={"content-type": "application/json"},
    )
    base = serve(configured)
    with answering_server(answer) as peer:
        key, _ = service_account(f"{peer.url}/token")
        settings = {"bucket": "docs", "credentials_json": json.dumps(key), "endpoint_url": f"{peer.url}/storage"}
        body = {"id": "dest_gcs", "name": "GCS", "kind": "gcs", "settings": settings}
        assert call(base, "POST", "/destinations", body).status_code == 201
        reply = call(base, "POST", "/destinations/dest_gcs/test")
    assert reply.status_code == 200, reply.text
    result = reply.json()["data"]
    assert result["ok"] is False
    assert result["detail"].endswith("the service account key was refused: invalid_grant")
    assert SECRET not in reply.text
    assert peer.asked == ["POST /token"]


def test_a_delivery_error_shows_neither_the_peers_body_nor_the_urls_credentials(
    configured: Runtime, serve: Any, engine: object
) -> None:
    base = serve(configured)
    with answering_server() as peer:  # 500, with the secret in its body
        wire(
            configured,
            "webhook",
            {"url": peer.url.replace("://", "://relay:pa55w0rd@") + "/in", "secret": WEBHOOK_SECRET},
        )
        delivery_id = create(configured, "webhook", PDF)
        assert service.run(configured, delivery_id, rand=half) is True
        checked = call(base, "POST", "/destinations/dest_webhook/test")
    error = delivery(configured, delivery_id).last_error or ""
    assert "HTTP 500" in error
    for text in (error, checked.text):
        assert SECRET not in text
        assert "pa55w0rd" not in text
    assert checked.json()["data"]["ok"] is False


def test_a_urls_credentials_are_not_shown_to_readers_and_still_used(strict: str, configured: Runtime) -> None:
    settings = {"url": "https://relay:pa55w0rd@hooks.erp.example.com/in", "secret": WEBHOOK_SECRET}
    body = {"id": "dest_hook", "name": "H", "kind": "webhook", "settings": settings}
    created = call(strict, "POST", "/destinations", body)
    assert created.status_code == 201, created.text
    for reply in (created, call(strict, "GET", "/destinations/dest_hook"), call(strict, "GET", "/destinations")):
        assert "pa55w0rd" not in reply.text
    assert created.json()["data"]["settings"]["url"] == "https://hooks.erp.example.com/in"
    # A PATCH of another field keeps the stored URL whole: what was hidden is not lost.
    assert call(strict, "PATCH", "/destinations/dest_hook", {"name": "Hook"}).status_code == 200
    with session_scope(configured.sessions) as session:
        stored = session.scalars(select(Destination).where(Destination.public_id == "dest_hook")).one()
        assert stored.settings["url"] == settings["url"]
