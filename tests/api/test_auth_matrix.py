"""Every REST endpoint, from a table of minimum roles written here (and checked against the URL map,
so none can be added without an entry): no key → 401, revoked key → 401, too low a role → 403,
another workspace's key → 404, the minimum role gets through."""

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
from tests.support.console import csrf_token, sign_in
from tests.support.keys import ADMIN_KEY
from tests.support.policy import LOOPBACK

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


V, M, A = Role.VIEWER, Role.MEMBER, Role.ADMIN
# Not behind an API key: operations endpoints and the API's own description (scrapers and probes),
# and ArchiveLink, which SAP authenticates with signed URLs (tests/api/test_signatures.py).
PUBLIC = "public"
ARCHIVELINK = "archivelink"
W = "/api/<owner>/<slug>"

# The minimum role of every route, written down here rather than read from the views, so a view whose
# @requires changes (or goes missing) fails this test instead of being believed.
ROUTES: dict[tuple[str, str], Role | str] = {
    ("GET", f"{W}/documents"): V,
    ("GET", f"{W}/documents/<document_id>"): V,
    ("POST", f"{W}/documents/<document_id>/retry"): M,
    ("POST", f"{W}/documents/retry"): M,
    ("PUT", f"{W}/documents/<document_id>/metadata"): M,
    ("POST", f"{W}/documents/metadata"): M,
    ("GET", f"{W}/files"): V,
    ("GET", f"{W}/files/<file_id>"): V,
    ("GET", f"{W}/files/<file_id>/content"): V,
    ("PATCH", f"{W}/files/<file_id>"): M,
    ("DELETE", f"{W}/files/<file_id>"): A,
    ("GET", f"{W}/destinations"): A,
    ("POST", f"{W}/destinations"): A,
    ("GET", f"{W}/destinations/<destination_id>"): A,
    ("PATCH", f"{W}/destinations/<destination_id>"): A,
    ("DELETE", f"{W}/destinations/<destination_id>"): A,
    ("POST", f"{W}/destinations/<destination_id>/test"): A,
    ("POST", f"{W}/destinations/<destination_id>/pause"): A,
    ("POST", f"{W}/destinations/<destination_id>/resume"): A,
    ("GET", f"{W}/repositories"): A,
    ("POST", f"{W}/repositories"): A,
    ("GET", f"{W}/repositories/<repo_id>"): A,
    ("PATCH", f"{W}/repositories/<repo_id>"): A,
    ("DELETE", f"{W}/repositories/<repo_id>"): A,
    ("GET", f"{W}/routes"): A,
    ("POST", f"{W}/routes"): A,
    ("DELETE", f"{W}/routes/<repo_id>/<destination_id>"): A,
    ("GET", f"{W}/settings"): A,
    ("PATCH", f"{W}/settings"): A,
    ("GET", f"{W}/api-keys"): A,
    ("POST", f"{W}/api-keys"): A,
    ("DELETE", f"{W}/api-keys/<path:name>"): A,
    ("GET", f"{W}/certificates"): A,
    ("POST", f"{W}/certificates/<repo_id>/<fingerprint>/activate"): A,
    ("POST", f"{W}/certificates/<repo_id>/<fingerprint>/revoke"): A,
    ("GET", f"{W}/audit"): A,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/static/<path:filename>"): PUBLIC,
    # The API's interactive page and its files: its calls carry the key the user enters.
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/static/<path:filename>"): PUBLIC,
    ("GET", "/docs/swagger-ui/swagger-ui.css"): PUBLIC,
    ("GET", "/docs/swagger-ui/images/<name>"): PUBLIC,
    ("GET", "/docs/swagger-ui/<name>"): PUBLIC,
    **{(method, "/archivelink/<owner>/<slug>"): ARCHIVELINK for method in ("GET", "PUT", "POST", "DELETE")},
}

# The console's pages and forms, by the minimum role of the signed-in key (a session, not a header).
U = "/ui/<owner>/<slug>"
CONSOLE_PUBLIC = "console, no session needed"
CONSOLE: dict[tuple[str, str], Role | str] = {
    ("GET", f"{U}/login"): CONSOLE_PUBLIC,
    ("POST", f"{U}/login"): CONSOLE_PUBLIC,
    ("POST", f"{U}/logout"): CONSOLE_PUBLIC,
    ("GET", "/ui/static/<path:filename>"): CONSOLE_PUBLIC,
    ("GET", f"{U}/"): V,
    ("GET", f"{U}/documents"): V,
    ("GET", f"{U}/documents/<document_id>"): V,
    ("GET", f"{U}/documents/<document_id>/content"): V,
    ("POST", f"{U}/documents/<document_id>/retry"): M,
    ("GET", f"{U}/documents/retry"): M,
    ("POST", f"{U}/documents/retry"): M,
    ("GET", f"{U}/destinations"): V,
    ("POST", f"{U}/destinations/<destination_id>/test"): A,
    ("POST", f"{U}/destinations/<destination_id>/<any(pause, resume):action>"): A,
    ("GET", f"{U}/certificates"): A,
    ("POST", f"{U}/certificates/<repo_id>/<fingerprint>/<any(activate, revoke):action>"): A,
    ("GET", f"{U}/audit"): A,
}


def url_map_routes(app: Flask) -> set[tuple[str, str]]:
    return {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }


def concrete(rule: str) -> str:
    """The rule with our workspace filled in, the first choice of an `any(…)`, a dummy for every other parameter."""
    rule = re.sub(r"<any\(([^,)]+)[^>]*>", lambda m: m[1], rule)
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: {"owner": "acme", "slug": "production"}.get(m[1], "x1"), rule)


def protected() -> list[tuple[str, str, Role]]:
    return [(method, concrete(rule), role) for (method, rule), role in ROUTES.items() if isinstance(role, Role)]


@pytest.fixture
def client(configured: Runtime, tmp_path: Path) -> FlaskClient:
    with session_scope(configured.sessions) as session:
        apply(session, load(CONFIG, {}), now=configured.clock.now(), policy=LOOPBACK)
        session.execute(update(ApiKey).where(ApiKey.name == "gone").values(revoked_at=configured.clock.now()))
    return create_app(runtime=configured).test_client()


def call(client: FlaskClient, method: str, url: str, key: str | None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return client.open(url, method=method, headers=headers, json={}).status_code


def test_every_route_of_the_app_has_an_entry_and_every_entry_a_route(client: FlaskClient) -> None:
    routes = url_map_routes(client.application)
    known = set(ROUTES) | set(CONSOLE)
    assert sorted(routes - known) == [], "new routes: give each its minimum role in ROUTES (or CONSOLE)"
    assert sorted(known - routes) == [], "ROUTES or CONSOLE name routes the app no longer has"


def test_public_routes_need_no_key(client: FlaskClient) -> None:
    for (method, rule), role in ROUTES.items():
        if role == PUBLIC and "<" not in rule:
            assert call(client, method, rule, None) not in (401, 403), rule


def test_every_endpoint_refuses_missing_revoked_low_and_foreign_keys(client: FlaskClient) -> None:
    failures = []
    for method, url, role in protected():
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


def test_every_console_page_and_form_by_role(client: FlaskClient) -> None:
    """Without a session a page sends to sign-in and a form is refused; below the minimum role, 403; at it,
    through (whatever the dummy ids then lead to). Forms carry the session's own CSRF token."""
    app = client.application
    failures = []
    for (method, rule), role in CONSOLE.items():
        if not isinstance(role, Role):
            continue
        url = concrete(rule)
        anonymous = app.test_client().open(url, method=method).status_code
        if anonymous != (302 if method == "GET" else 400):
            failures.append(f"{method} {url} without a session: {anonymous}")
        for held in RANK:
            browser = app.test_client()
            assert sign_in(browser, KEYS[held]) == 302
            token = csrf_token(browser, "/ui/acme/production/")
            status = browser.open(
                url, method=method, data={"csrf_token": token} if method == "POST" else None
            ).status_code
            below = RANK.index(held) < RANK.index(role)
            if (status == 403) != below or status in (400, 401):
                failures.append(f"{method} {url} as {held.value}: {status}")
    assert not failures, "\n".join(failures)
