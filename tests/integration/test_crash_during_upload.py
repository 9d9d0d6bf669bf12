"""An API process killed while SAP is uploading leaves nothing behind, and SAP's retry succeeds."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from filerelay.db.models import ArchiveDocument, Document
from tests.support.processes import environment, filerelay, free_port, kill_group, stream_put
from tests.support.sapclient import SapClient

pytestmark = pytest.mark.slow

SIZE = 256 * 1024 * 1024
QUERY = "create&pVersion=0047&contRep=Z1&docId=CRASH0001&compId=data"


def files_under(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def rows(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        docs = conn.scalar(select(func.count()).select_from(Document))
        headers = conn.scalar(select(func.count()).select_from(ArchiveDocument))
    return int(docs or 0), int(headers or 0)


def test_kill_mid_upload_leaves_no_row_and_no_staged_file(tmp_path: Path, db_url: str, engine: Engine) -> None:
    home = tmp_path / "home"
    port = free_port()
    env = environment(home, db_url)
    staging = home / "staging"
    with filerelay(["up", "--port", str(port)], env, port) as proc:
        sock = stream_put(port, f"/archivelink/acme/production?{QUERY}", SIZE, stop_after=SIZE // 4)
        # Wait until the server has really written part of the body to staging.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            parts = list((staging / "tmp").glob("*.part"))
            if parts and parts[0].stat().st_size > 0:
                break
            time.sleep(0.05)
        assert parts, "the upload never reached staging"
        kill_group(proc)
        sock.close()

    assert rows(engine) == (0, 0)
    with filerelay(["up", "--port", str(port)], env, port):
        # The restart cleared what the killed writer left; no document row was ever written.
        assert files_under(staging) == []
        assert rows(engine) == (0, 0)
        sap = SapClient(f"http://127.0.0.1:{port}/archivelink/acme/production")
        body = b"%PDF-1.4 retry after crash\n" * 1000
        reply = sap.create("CRASH0001", "data", body)
        assert reply.status == 201, reply.error
        assert sap.get("CRASH0001", "data").body == body
    assert rows(engine) == (1, 1)
