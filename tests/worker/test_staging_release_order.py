"""Which staged bytes one sweep releases: `purgeable` takes at most `limit` documents, the longest
delivered first, and never counts a document whose bytes were already released against that limit
(else a backlog of released rows would starve the release of the ones still holding bytes)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import update

from filerelay.clock import FrozenClock
from filerelay.db.models import Document
from filerelay.db.session import session_scope
from filerelay.delivery import sweep
from filerelay.runtime import Runtime
from tests.support.documents import accept

PDF = b"%PDF-1.4\n%%EOF\n"


def delivered_document(runtime: Runtime, doc_id: str) -> tuple[str, str]:
    """A document delivered everywhere now (its rows set so: delivery itself is tested elsewhere)."""
    outcome, staged = accept(runtime, doc_id, PDF)
    document_id = outcome.documents[0].id
    with session_scope(runtime.sessions) as session:
        session.execute(
            update(Document)
            .where(Document.id == document_id)
            .values(status="delivered", updated_at=runtime.clock.now())
        )
    return document_id, staged.key


def purgeable(runtime: Runtime, limit: int) -> list[str]:
    with session_scope(runtime.sessions) as session:
        return sweep.purgeable(session, now=runtime.clock.now(), retention_seconds=10, limit=limit)


def test_the_longest_delivered_go_first_and_at_most_limit_per_pass(configured: Runtime, clock: FrozenClock) -> None:
    # Delivered in an order unrelated to creation (and to the random ids): the age must decide.
    created = [delivered_document(configured, f"DOC{n}") for n in range(5)]
    ages = [3, 0, 4, 1, 2]  # minutes before now
    with session_scope(configured.sessions) as session:
        for (document_id, _), age in zip(created, ages, strict=True):
            delivered_at = clock.now() - dt.timedelta(minutes=age)
            session.execute(update(Document).where(Document.id == document_id).values(updated_at=delivered_at))
    clock.advance(60)
    oldest_first = [key for _, (_, key) in sorted(zip(ages, created, strict=True), reverse=True)]

    assert purgeable(configured, limit=2) == oldest_first[:2]
    assert purgeable(configured, limit=2) == oldest_first[2:4]
    assert purgeable(configured, limit=2) == oldest_first[4:]
    assert purgeable(configured, limit=2) == []


def test_released_documents_do_not_take_up_the_limit(configured: Runtime, clock: FrozenClock) -> None:
    released, _ = delivered_document(configured, "RELEASED")
    with session_scope(configured.sessions) as session:
        session.execute(update(Document).where(Document.id == released).values(staging_key=None))
    clock.advance(60)
    _, key = delivered_document(configured, "HOLDING")
    clock.advance(60)

    assert purgeable(configured, limit=1) == [key]
