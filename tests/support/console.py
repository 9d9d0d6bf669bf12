"""Signing in to the console the way a browser does: the form's CSRF token, then the key."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(client: FlaskClient, page: str) -> str:
    """The CSRF token of the forms on `page` (a console URL), as the browser would find it."""
    reply = client.get(page)
    found = TOKEN.search(reply.get_data(as_text=True))
    assert found is not None, f"no form on {page} ({reply.status_code})"
    return found[1]


def sign_in(client: FlaskClient, key: str, workspace: str = "acme/production") -> int:
    login = f"/ui/{workspace}/login"
    token = csrf_token(client, login)
    return client.post(login, data={"api_key": key, "csrf_token": token}).status_code
