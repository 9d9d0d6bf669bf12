"""Two SAP work processes creating the same docId at the same instant: one wins (201), the other is
told the document exists (403), never a 5xx; the database and staging hold exactly the winner's copy.
Byte-identical creates both get 201 (the second is SAP's retry of the first), and one copy is kept."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

from sqlalchemy import select

from filerelay.db.models import Document
from filerelay.db.session import session_scope
from filerelay.runtime import Runtime
from tests.support.sapclient import Reply, SapClient

PAIRS = 50


def race(sap: SapClient, doc_id: str, bodies: tuple[bytes, bytes]) -> list[Reply]:
    start = threading.Barrier(2)
    replies: list[Reply | None] = [None, None]

    def send(n: int) -> None:
        start.wait()
        replies[n] = sap.create(doc_id, "data", bodies[n])

    threads = [threading.Thread(target=send, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(r is not None for r in replies)
    return [r for r in replies if r is not None]


def staged(runtime: Runtime) -> dict[str, str]:
    """Staged files by name, with the sha256 of their bytes."""
    root = Path(runtime.settings.staging_url.removeprefix("file://"))
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}


def test_racing_creates_of_one_doc_id_end_201_and_403(sap: SapClient, configured: Runtime) -> None:
    winners: dict[str, bytes] = {}
    for n in range(PAIRS):
        doc_id = f"RACE{n:03d}"
        bodies = (f"%PDF first {n}".encode() * 50, f"%PDF second {n}".encode() * 50)
        replies = race(sap, doc_id, bodies)
        assert sorted(r.status for r in replies) == [201, 403], [(r.status, r.error) for r in replies]
        loser = next(r for r in replies if r.status == 403)
        assert loser.error == f"document {doc_id} already exists"
        winners[doc_id] = bodies[[r.status for r in replies].index(201)]

    with session_scope(configured.sessions) as session:
        rows = {d.doc_id: (d.sha256, d.staging_key) for d in session.scalars(select(Document))}
    assert {doc_id: sha for doc_id, (sha, _) in rows.items()} == {
        doc_id: hashlib.sha256(body).hexdigest() for doc_id, body in winners.items()
    }
    # Exactly the winners' bytes are staged: the losers left nothing behind.
    assert staged(configured) == {key: sha for sha, key in rows.values() if key is not None}


def test_racing_identical_creates_both_end_201_with_one_copy(sap: SapClient, configured: Runtime) -> None:
    for n in range(PAIRS):
        body = f"%PDF same {n}".encode() * 50
        replies = race(sap, f"SAME{n:03d}", (body, body))
        assert [r.status for r in replies] == [201, 201], [(r.status, r.error) for r in replies]
    with session_scope(configured.sessions) as session:
        rows = {d.doc_id: (d.sha256, d.staging_key) for d in session.scalars(select(Document))}
    assert len(rows) == PAIRS
    assert staged(configured) == {key: sha for sha, key in rows.values() if key is not None}
