"""A loopback HTTP forwarder that holds every request for a fixed delay: a far-away S3 endpoint, nearby.

    with delaying_proxy("http://127.0.0.1:8333", delay=0.05) as proxy:
        ... point the client at proxy.url ...

HTTP/1.1 keep-alive on both sides, one upstream connection per client connection. The Host header is
passed on unchanged, so SigV4 signatures made for the proxy's address still verify upstream. It answers
`Expect: 100-continue` itself, so each request pays the delay once (not once more for the body).
Bodies must carry Content-Length (boto3's do); a chunked request body gets 501.
"""

from __future__ import annotations

import contextlib
import http.client
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

# Hop-by-hop headers (RFC 9110 §7.6.1) and those this proxy sets itself.
_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "expect"})
_REPLY_SKIP = _HOP | {"transfer-encoding", "content-length"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: tuple[str, int], delay: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.delay = delay
        self.arrived = 0
        self.forwarded = 0
        self._lock = threading.Lock()

    def count(self, *, arrived: bool = False) -> None:
        with self._lock:
            if arrived:
                self.arrived += 1
            else:
                self.forwarded += 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a benchmark's terminal is for its table."""

    def finish(self) -> None:
        super().finish()
        if self._upstream is not None:
            self._upstream.close()

    def _connection(self) -> http.client.HTTPConnection:
        if self._upstream is None:
            host, port = self.server.upstream
            self._upstream = http.client.HTTPConnection(host, port, timeout=120)
        return self._upstream

    def _send_upstream(self, body: bytes | None) -> tuple[http.client.HTTPResponse, bytes]:
        # The upstream may have closed an idle keep-alive connection: one retry on a fresh one.
        for attempt in (1, 2):
            conn = self._connection()
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in _HOP:
                        conn.putheader(name, value)
                conn.endheaders(body)
                reply = conn.getresponse()
                return reply, reply.read()
            except (http.client.RemoteDisconnected, ConnectionError, http.client.CannotSendRequest):
                conn.close()
                self._upstream = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _forward(self) -> None:
        self.server.count(arrived=True)
        time.sleep(self.server.delay)
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.send_error(501, "chunked request bodies are not supported by this proxy")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        reply, data = self._send_upstream(body)
        self.server.count()
        # send_response would add a second Server and Date header: the upstream's are passed on.
        self.send_response_only(reply.status, reply.reason)
        for name, value in reply.getheaders():
            if name.lower() not in _REPLY_SKIP:
                self.send_header(name, value)
        announced = reply.getheader("Content-Length")
        head_length = announced if self.command == "HEAD" and announced is not None else None
        self.send_header("Content-Length", head_length or str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    # http.server dispatches on these names.
    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward  # noqa: N815


class DelayingProxy:
    def __init__(self, server: _Server) -> None:
        self._server = server

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def arrived(self) -> int:
        """Requests received so far, held or passed on."""
        return self._server.arrived

    @property
    def forwarded(self) -> int:
        """Requests passed upstream so far: proof that a client really went through the proxy."""
        return self._server.forwarded


@contextmanager
def delaying_proxy(upstream_url: str, delay: float) -> Iterator[DelayingProxy]:
    parts = urlsplit(upstream_url)
    if parts.hostname is None or parts.port is None:
        raise ValueError(f"give the upstream as http://host:port, not {upstream_url!r}")
    server = _Server((parts.hostname, parts.port), delay)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield DelayingProxy(server)
    finally:
        server.shutdown()
        server.server_close()
        with contextlib.suppress(RuntimeError):
            thread.join(timeout=5)
