"""The console's session cookie is Secure whenever the public URL is https, whatever FILERELAY_COOKIE_SECURE
says: a console reached over TLS never has its session sent in clear."""

from __future__ import annotations

import dataclasses

import pytest

from filerelay.api import create_app
from filerelay.runtime import Runtime
from filerelay.settings import Settings
from tests.support.console import csrf_token
from tests.support.keys import ADMIN_KEY

UI = "/ui/acme/production"


def session_cookie(runtime: Runtime, settings: Settings) -> str:
    client = create_app(runtime=dataclasses.replace(runtime, settings=settings)).test_client()
    reply = client.post(f"{UI}/login", data={"api_key": ADMIN_KEY, "csrf_token": csrf_token(client, f"{UI}/login")})
    assert reply.status_code == 302, reply.get_data(as_text=True)
    return next(c for c in reply.headers.getlist("Set-Cookie") if c.startswith("filerelay_console="))


@pytest.mark.parametrize(
    ("environ", "secure"),
    [
        ({"FILERELAY_PUBLIC_URL": "https://filerelay.example.com"}, True),
        ({"FILERELAY_PUBLIC_URL": "HTTPS://filerelay.example.com", "FILERELAY_COOKIE_SECURE": "false"}, True),
        ({"FILERELAY_PUBLIC_URL": "http://127.0.0.1:8080"}, False),
        ({}, False),
        ({"FILERELAY_COOKIE_SECURE": "true"}, True),
    ],
)
def test_the_session_cookie_is_secure_when_the_public_url_is_https(
    configured: Runtime, environ: dict[str, str], secure: bool
) -> None:
    settings = Settings.from_env({**configured.settings.environ(), **environ})
    assert settings.session_cookie_secure is secure
    attributes = [part.strip() for part in session_cookie(configured, settings).split(";")]
    assert ("Secure" in attributes) is secure
