"""Signing in to the console the way a browser does: the form's CSRF token, then the key."""

from __future__ import annotations

import re
from typing import Any

import requests
from flask.testing import FlaskClient

from filerelay.api import create_app
from filerelay.runtime import Runtime

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


class Browser:
    """A signed-in console session against a real server over HTTP: its cookies, its forms' CSRF tokens."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.session = requests.Session()

    def get(self, page: str) -> requests.Response:
        return self.session.get(self.server + page, timeout=30)

    def post(self, page: str, data: dict[str, Any]) -> requests.Response:
        return self.session.post(self.server + page, data=data, timeout=30, allow_redirects=False)

    def csrf(self, page: str) -> str:
        found = TOKEN.search(self.get(page).text)
        assert found is not None, f"no form on {page}"
        return found[1]


def http_sign_in(server: str, ui: str, key: str) -> Browser:
    """`ui`: the workspace's console, e.g. /ui/acme/production."""
    browser = Browser(server)
    login = f"{ui}/login"
    reply = browser.post(login, {"api_key": key, "csrf_token": browser.csrf(login)})
    assert reply.status_code == 302, reply.text
    return browser


def signed_in(runtime: Runtime, key: str, workspace: str = "acme/production") -> FlaskClient:
    """A test client of the real app with a console session for `key`."""
    client = create_app(runtime=runtime).test_client()
    assert sign_in(client, key, workspace) == 302
    return client
