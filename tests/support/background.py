"""A socket server of the test's own, serving from a daemon thread for the length of a block."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def in_background(server: socketserver.BaseServer, poll_interval: float = 0.05) -> Iterator[None]:
    """`server` serving until the block ends; then stopped, its thread joined and its socket closed."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
