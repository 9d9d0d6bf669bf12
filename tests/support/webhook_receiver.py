"""A webhook receiver on loopback that does what a careful one does: it checks the Standard Webhooks
signature and refuses a bad one with 401, keeps each body on disk, and answers what the test scripted (a
503 with Retry-After, a 410…). It can be stopped and started again on the same port, for outages.

A text body is checked by the reference library (`standardwebhooks`), which only takes text; a binary
body (a PDF) by the same construction over its bytes, written here: HMAC-SHA256 of `id.timestamp.body`
with the key the `whsec_` secret carries, base64, `v1,` in front."""

from __future__ import annotations

import base64
import hashlib
import hmac
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    size: int
    sha256: str
    path: Path  # the body, as received


@dataclass
class Receiver:
    secret: str
    folder: Path
    port: int = 0
    received: list[Received] = field(default_factory=list)
    # Answers to give, in order, before answering 204 to everything: (status, headers).
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/filerelay"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self.send_response(405 if self.path == "/hooks/filerelay" else 404)
                self.end_headers()

            def do_POST(self) -> None:
                receiver._take(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _take(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("content-length", "0"))
        body = self.folder / f"body-{len(self.received)}-{threading.get_ident()}"
        digest = hashlib.sha256()
        with body.open("wb") as out:
            left = length
            while left:
                chunk = request.rfile.read(min(CHUNK, left))
                if not chunk:
                    break
                digest.update(chunk)
                out.write(chunk)
                left -= len(chunk)
        headers = {k.lower(): v for k, v in request.headers.items()}
        status, extra = self.script.pop(0) if self.script else (204, {})
        if not self._signed(body, headers):
            status, extra = 401, {}
        if status < 300:
            self.received.append(Received(headers, length, digest.hexdigest(), body))
        request.send_response(status)
        for name, value in extra.items():
            request.send_header(name, value)
        request.send_header("content-length", "0")
        request.end_headers()

    def _signed(self, body: Path, headers: dict[str, str]) -> bool:
        data = body.read_bytes()  # a test's documents: small enough, and the point is the verdict
        try:
            text = data.decode()
        except UnicodeDecodeError:
            key = base64.b64decode(self.secret.removeprefix("whsec_"))
            message = f"{headers.get('webhook-id')}.{headers.get('webhook-timestamp')}.".encode() + data
            expected = "v1," + base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
            return any(hmac.compare_digest(expected, sent) for sent in headers.get("webhook-signature", "").split())
        try:
            Webhook(self.secret).verify(text, headers, json_parse=False)
        except WebhookVerificationError:
            return False
        return True


@contextmanager
def webhook_receiver(secret: str) -> Iterator[Receiver]:
    with tempfile.TemporaryDirectory() as folder:
        receiver = Receiver(secret=secret, folder=Path(folder))
        receiver.start()
        try:
            yield receiver
        finally:
            receiver.stop()
