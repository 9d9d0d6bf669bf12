"""A loopback TCP forwarder that can be switched off: a server that goes away and comes back.

    with outage_proxy(("127.0.0.1", 8333)) as proxy:
        ... point the client at proxy.url ...
        proxy.down()   # open connections are reset, new ones refused at once
        proxy.up()

Bytes are relayed as they come (any protocol, streaming bodies of any size). While down, the listening
socket stays open but every connection is accepted and reset at once: the client sees the connection
refused or reset, as when a server's process is gone, without waiting on a timeout.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_CHUNK = 256 * 1024


def _reset(sock: socket.socket) -> None:
    """Close with an RST rather than a FIN: the peer sees `connection reset`, as from a dead process."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class OutageProxy:
    def __init__(self, upstream: tuple[str, int], *, port: int = 0) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", port))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._is_down = False
        self._open: set[socket.socket] = set()
        self._closed = False
        threading.Thread(target=self._accept, name="outage-proxy", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def down(self) -> None:
        with self._lock:
            self._is_down = True
            doomed, self._open = self._open, set()
        for sock in doomed:
            _reset(sock)

    def up(self) -> None:
        with self._lock:
            self._is_down = False

    def close(self) -> None:
        self._closed = True
        self.down()
        with contextlib.suppress(OSError):
            self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                refused = self._is_down
            if refused:
                _reset(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=10)
                server.settimeout(None)
            except OSError:
                _reset(client)
                continue
            with self._lock:
                self._open.update((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        """One direction of a connection; when either side ends, both are closed (HTTP clients do not
        half-close), and shutdown() wakes the other direction's blocked recv."""
        try:
            while data := source.recv(_CHUNK):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._open.difference_update((source, sink))
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()


@contextmanager
def outage_proxy(upstream: tuple[str, int], *, port: int = 0) -> Iterator[OutageProxy]:
    """A proxy to `upstream`, on `port` (a free one by default; a given one, to bring a server back at the
    address a destination names)."""
    proxy = OutageProxy(upstream, port=port)
    try:
        yield proxy
    finally:
        proxy.close()
