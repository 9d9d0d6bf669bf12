"""Two deliveries of one document finishing at the same moment: the second to get the document's lock
must roll up from the first one's committed outcome, never from what it read before waiting."""

from __future__ import annotations

import threading

from filerelay.db.session import session_scope
from filerelay.delivery import service
from filerelay.runtime import Runtime
from tests.support.clock import half
from tests.support.documents import create_document, delivery, document


def test_the_second_finish_rolls_up_from_the_first_s_outcome(configured: Runtime) -> None:
    created = create_document(configured)
    taken = {}
    for delivery_id in (created.folder, created.s3):
        with session_scope(configured.sessions) as session:
            claim = service.claim(session, delivery_id=delivery_id, now=configured.clock.now(), lease_seconds=300)
        assert claim is not None
        taken[delivery_id] = claim
    ok = service.Result(True, size=10)

    first = configured.sessions()
    second_done = threading.Event()
    errors: list[BaseException] = []
    try:
        service.finish(first, taken[created.folder], ok, now=configured.clock.now(), rand=half)  # holds the lock

        def second() -> None:
            try:
                with session_scope(configured.sessions) as session:
                    service.finish(session, taken[created.s3], ok, now=configured.clock.now(), rand=half)
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)
            finally:
                second_done.set()

        thread = threading.Thread(target=second)
        thread.start()
        # The second finish waits for the lock (PostgreSQL: the row lock; SQLite: the write lock).
        assert not second_done.wait(timeout=1.0)
        first.commit()
    finally:
        first.close()
    thread.join(timeout=30)
    assert not errors, errors
    assert (delivery(configured, created.folder).status, delivery(configured, created.s3).status) == (
        "delivered",
        "delivered",
    )
    assert document(configured, created.document_id).status == "delivered"
