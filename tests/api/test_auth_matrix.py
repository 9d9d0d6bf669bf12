"""Every REST endpoint, found from the URL map (so none can be added without being checked):
no key → 401, revoked key → 401, too low a role → 403, another workspace's key → 404."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from filerelay.api import create_app
from filerelay.config_file import apply, load
from filerelay.db.models import ApiKey, Role
from filerelay.db.session import session_scope
from filerelay.runtime import Runtime
from tests.conftest import ADMIN_KEY

KEYS = {
    Role.VIEWER: "fr_live_matrix_viewer_0123456789",
    Role.MEMBER: "fr_live_matrix_member_0123456789",
    Role.ADMIN: ADMIN_KEY,
}
REVOKED = "fr_live_matrix_revoked_012345678"
OTHER = "fr_live_matrix_other_ws_01234567"
RANK = [Role.VIEWER, Role.MEMBER, Role.ADMIN]

CONFIG = textwrap.dedent(
    f"""
    workspaces:
      - owner: acme
        slug: production
        api_keys:
          - {{name: ops, role: admin, key: "{ADMIN_KEY}"}}
          - {{name: v, role: viewer, key: "{KEYS[Role.VIEWER]}"}}
          - {{name: m, role: member, key: "{KEYS[Role.MEMBER]}"}}
          - {{name: gone, role: admin, key: "{REVOKED}"}}
      - owner: globex
        slug: main
        api_keys:
          - {{name: ops, role: admin, key: "{OTHER}"}}
    """
)


def endpoints(app: Flask) -> list[tuple[str, str, Role]]:
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/<owner>/<slug>"):
            continue
        view = app.view_functions[rule.endpoint]
        role = view.__dict__.get("required_role")
        assert isinstance(role, Role), f"{rule.rule} has no @requires: every REST endpoint must authenticate"
        url = re.sub(
            r"<(?:[^:>]+:)?([^>]+)>", lambda m: {"owner": "acme", "slug": "production"}.get(m[1], "x1"), rule.rule
        )
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((method, url, role))
    return found


@pytest.fixture
def client(configured: Runtime, tmp_path: Path) -> FlaskClient:
    with session_scope(configured.sessions) as session:
        apply(session, load(CONFIG, {}), now=configured.clock.now())
        session.execute(update(ApiKey).where(ApiKey.name == "gone").values(revoked_at=configured.clock.now()))
    return create_app(runtime=configured).test_client()


def call(client: FlaskClient, method: str, url: str, key: str | None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.open(url, method=method, headers=headers, json={}).status_code


def test_the_matrix_covers_the_api(client: FlaskClient) -> None:
    found = endpoints(client.application)
    assert len(found) >= 4
    assert {("GET", "/api/acme/production/documents", Role.VIEWER)} <= set(found)


def test_every_endpoint_refuses_missing_revoked_low_and_foreign_keys(client: FlaskClient) -> None:
    failures = []
    for method, url, role in endpoints(client.application):
        expected = {"no key": 401, "revoked key": 401, "another workspace's key": 404}
        observed = {
            "no key": call(client, method, url, None),
            "revoked key": call(client, method, url, REVOKED),
            "another workspace's key": call(client, method, url, OTHER),
        }
        for lower in RANK[: RANK.index(role)]:
            expected[f"{lower.value} key"] = 403
            observed[f"{lower.value} key"] = call(client, method, url, KEYS[lower])
        # The right role gets past authentication (whatever the dummy ids then lead to).
        allowed = call(client, method, url, KEYS[role])
        if allowed in (401, 403) or observed != expected:
            failures.append(f"{method} {url} ({role.value}): {observed}, with the right key {allowed}")
    assert not failures, "\n".join(failures)


def test_a_bare_url_of_an_unknown_workspace_is_404_not_401_for_a_valid_key(client: FlaskClient) -> None:
    assert call(client, "GET", "/api/nobody/nothing/documents", ADMIN_KEY) == 404
    assert call(client, "GET", "/api/nobody/nothing/documents", None) == 401
