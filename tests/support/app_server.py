"""The real app on a runtime of the test's own, behind a threaded HTTP server on loopback, as SAP sees it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from werkzeug.serving import make_server

from filerelay.api import create_app
from filerelay.runtime import Runtime
from tests.support.background import in_background
from tests.support.sapclient import SapClient


@contextmanager
def serving(runtime: Runtime, workspace: str = "acme/production") -> Iterator[SapClient]:
    """SAP's client of the ArchiveLink endpoint of `workspace`, served from `runtime` until the block ends."""
    server = make_server("127.0.0.1", 0, create_app(runtime=runtime), threaded=True)
    with in_background(server):
        yield SapClient(f"http://127.0.0.1:{server.server_port}/archivelink/{workspace}")
