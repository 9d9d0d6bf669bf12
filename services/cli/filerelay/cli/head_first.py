"""Gunicorn's threaded worker, except that a connection takes one of its threads only once the client has
sent its whole request head.

Gunicorn's gthread worker hands every accepted connection to a thread, which waits up to 5 s for a first
byte and then reads the request line and headers with blocking reads that have no deadline: a client
sending its headers a byte a second holds that thread for as long as it likes, and `--workers` times
`--threads` such clients (16 by default) leave SAP's `create` waiting. Here the worker's main loop, which
already polls the listening socket and the kept-alive connections, also gathers each request head with
non-blocking reads; a slow client costs a socket and a few bytes of buffer, never a thread, and is
closed after HEAD_TIMEOUT_SECONDS. The body is still read by the thread, streamed as before (an
ArchiveLink `create` of 2 GiB goes to staging chunk by chunk), and the bytes that came with the head are
handed to gunicorn's own parser, which parses and limits the head as it always did.
"""

from __future__ import annotations

import contextlib
import selectors
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import ThreadWorker

# As long as nginx's client_header_timeout: plenty for any real client, whose head comes in one packet.
HEAD_TIMEOUT_SECONDS = 60.0
# Larger than any head gunicorn accepts with its default limits (a 4094-byte request line and 100 fields
# of 8190 bytes): a head that grows past it goes to a thread, where gunicorn's parser refuses it with 400.
MAX_HEAD_BYTES = 1 << 20
_RECV_SIZE = 64 * 1024
# A stopping worker still takes the heads that are arriving for this long, as gunicorn gives its kept-alive
# connections (their request is answered with Connection: close); then it closes the rest.
STOP_LINGER_SECONDS = 2.0


def head_complete(received: bytes | bytearray) -> bool:
    """Whether the bytes a client sent so far hold the end of a request head: the empty line after the
    headers (CRLF as HTTP/1.1 wants, or bare LF, which then reaches the parser to be judged)."""
    return b"\n\r\n" in received or b"\n\n" in received


@dataclass
class _Head:
    deadline: float
    received: bytearray = field(default_factory=bytearray)


class HeadFirstWorker(ThreadWorker):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Connections whose head is still coming, in the order they started (so by deadline).
        self._heads: dict[Any, _Head] = {}
        self._stop_deadline: float | None = None

    def enqueue_req(self, conn: Any) -> None:
        """Every path to a thread (a new connection, a kept-alive one that became readable, one with
        pipelined bytes after its response) comes through here: gather the head first."""
        if self.cfg.is_ssl or negotiation.prior_knowledge_allowed(self.cfg, conn.client):
            # TLS handshakes and HTTP/2 prefaces are read in the thread, as gunicorn does (FileRelay
            # serves plain HTTP/1.1 behind whatever terminates TLS).
            super().enqueue_req(conn)
            return
        # A body drain or a pipelining client may have left the next request's first bytes in the parser.
        already = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        deadline = time.monotonic() + HEAD_TIMEOUT_SECONDS
        if self._stop_deadline is not None:
            deadline = min(deadline, self._stop_deadline)
        head = _Head(deadline, bytearray(already))
        if head_complete(head.received):
            self._hand_off(conn, head)
            return
        conn.sock.setblocking(False)
        self._heads[conn] = head
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_head_readable, conn))
        # A kept-alive connection comes here because it is readable: its head is usually there already.
        self._on_head_readable(conn, conn.sock)

    def _on_head_readable(self, conn: Any, _sock: Any) -> None:
        head = self._heads[conn]
        try:
            data = conn.sock.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._drop(conn)  # gone before its head was complete
            return
        head.received += data
        if head_complete(head.received) or len(head.received) > MAX_HEAD_BYTES:
            self._unwatch(conn)
            self._hand_off(conn, head)

    def _hand_off(self, conn: Any, head: _Head) -> None:
        conn.data_ready = True  # gunicorn's thread must not wait for a first byte again
        conn.init()  # the HTTP/1.x parser over the socket (plain sockets only: see enqueue_req)
        conn.parser.unreader.unread(bytes(head.received))
        super().enqueue_req(conn)

    def _unwatch(self, conn: Any) -> None:
        del self._heads[conn]
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)

    def _drop(self, conn: Any) -> None:
        self._unwatch(conn)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        """Runs on every turn of the main loop, also while stopping: close heads past their deadline,
        which a stopping worker brings forward to STOP_LINGER_SECONDS from when it began to stop."""
        super().murder_pending()
        now = time.monotonic()
        if not self.alive and self._stop_deadline is None:
            self._stop_deadline = now + STOP_LINGER_SECONDS
            for head in self._heads.values():  # the same cap for all keeps them in deadline order
                head.deadline = min(head.deadline, self._stop_deadline)
        for conn, head in list(self._heads.items()):
            if head.deadline > now:
                break
            self._drop(conn)
