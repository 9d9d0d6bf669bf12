"""A socket server of the test's own, serving from a daemon thread for the length of a block."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar


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


class Startable(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


S = TypeVar("S", bound=Startable)


@contextmanager
def running(server: S) -> Iterator[S]:
    """`server` started for the block and stopped after it, however the block ends."""
    server.start()
    try:
        yield server
    finally:
        server.stop()
