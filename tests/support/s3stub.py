"""A loopback HTTP server that answers every S3 request with one canned S3 error, and records what it got.

SeaweedFS never throttles, so the only way to see how FileRelay reacts to S3's `503 SlowDown` with a
`Retry-After` header, through the real boto3 client and its own retry layer, is a server that speaks
just enough of S3's wire protocol to send one: a status, headers and an XML error body.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.background import in_background


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body_bytes: int


@dataclass
class S3Refusal:
    endpoint: str
    requests: list[Received] = field(default_factory=list)


def _error_xml(code: str, message: str, resource: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message><Resource>{resource}</Resource>"
        "<RequestId>4442587FB7D0A2F9</RequestId><HostId>stub</HostId></Error>"
    ).encode()


@contextmanager
def refusing_s3(
    status: int = 503,
    code: str = "SlowDown",
    message: str = "Please reduce your request rate.",
    headers: Mapping[str, str] | None = None,
) -> Iterator[S3Refusal]:
    """Serve on 127.0.0.1 until the block ends; every request gets `status` with an S3 error body."""
    refusal = S3Refusal(endpoint="")
    lock = threading.Lock()
    extra = dict(headers or {})

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            # Read the whole body: answering early would make the client see a reset, not our error.
            remaining = length
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)
            with lock:
                refusal.requests.append(Received(self.command, self.path, dict(self.headers.items()), length))
            body = _error_xml(code, message, self.path.split("?")[0])
            self.send_response(status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-amz-request-id", "4442587FB7D0A2F9")
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        # http.server dispatches on these names.
        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _answer  # noqa: N815

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep the test output quiet

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    refusal.endpoint = f"http://127.0.0.1:{server.server_port}"
    with in_background(server):
        yield refusal
