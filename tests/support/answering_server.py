"""An HTTP server on loopback that answers every request with what the test set (a status, headers, a
body), and remembers which paths were asked: a peer that answers a secret in its body, or a redirect,
for the tests that show neither the body nor the redirect's target is ever reached or repeated."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# What a peer the workspace chose might say and FileRelay must never repeat.
SECRET = "redis-password-9f2c1e7d"


@dataclass
class Answering:
    status: int = 500
    body: bytes = f"internal error; config: {SECRET}".encode()
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "text/plain"})
    asked: list[str] = field(default_factory=list)  # "METHOD /path", in order
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@contextmanager
def answering_server(answer: Answering | None = None) -> Iterator[Answering]:
    state = answer or Answering()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

        def _answer(self) -> None:
            state.asked.append(f"{self.command} {self.path}")
            length = int(self.headers.get("content-length", "0") or 0)
            while length > 0:  # the request's body, read so the client sees our answer, not a reset
                chunk = self.rfile.read(min(length, 1 << 20))
                if not chunk:
                    break
                length -= len(chunk)
            self.send_response(state.status)
            for name, value in state.headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(state.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(state.body)

        def do_GET(self) -> None:
            self._answer()

        def do_HEAD(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def do_PUT(self) -> None:
            self._answer()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
